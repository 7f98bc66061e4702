"""Train tab: run `run_compare` in a background thread (one job per process), poll it, cancel it."""

from __future__ import annotations

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
from sicsrec.eval.compare import MODEL_ORDER, run_compare
from sicsrec.utils import resolve_device

log = logging.getLogger("sicsrec.app")

STAGES = {  # checkbox label -> model trained by run_compare
    "Step 1 · SASRec (ID only)": "sasrec",
    "Content-only baseline": "content",
    "Step 2 · SICSRec (content + mix decoder on the frozen step-1 encoder)": "sicsrec",
}
COMING = ["Stage A · pair mining (coming: stage A)", "Stage A · encoder alignment (coming: stage A)"]
SPEC_MODEL, SPEC_TRAIN = ModelConfig(), TrainConfig()  # the spec's defaults, shown as the form's defaults


class JobBusy(Exception):
    """A training job is already running in this process."""


@dataclass
class TrainJob:
    """One background `run_compare`: its config, progress events, outcome, and its cancel switch."""

    cfg: RunConfig
    models: tuple[str, ...]
    out: Path
    device: str
    cancel: threading.Event = field(default_factory=threading.Event)
    events: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    error: str = ""
    results: dict[str, Any] | None = None
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True until the thread has finished (successfully or not)."""
        return self.finished is None

    def record(self, event: dict[str, Any]) -> None:
        """The progress hook: keep every event with its arrival time (list.append is thread-safe)."""
        self.events.append({**event, "t": time.time()})

    def run(self) -> None:
        """The thread body: train, evaluate, save; any failure becomes a message, never a crash."""
        try:
            self.results = run_compare(self.cfg, self.out, self.models, progress=self.record, cancel=self.cancel,
                                       show_bar=False)
        except Exception as e:  # the app must survive any failure of a job (bad data, out of memory, ...)
            log.exception("training job failed")
            self.error = "cancelled before a model was trained" if self.cancel.is_set() else f"{type(e).__name__}: {e}"
        finally:
            self.finished = time.time()


def start_job(studio: Studio, cfg: RunConfig, models: tuple[str, ...], out: Path) -> TrainJob:
    """Start a training thread unless one is running (JobBusy)."""
    with studio.job_lock:
        if studio.job is not None and studio.job.running:
            raise JobBusy("A training job is already running; wait for it or cancel it first.")
        job = TrainJob(cfg, models, out, str(resolve_device(cfg.train.device)))
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
        last = next((e for e in reversed(job.events) if e["kind"] in ("step", "epoch")), None)
        stopping = " · **stopping** after the current batch…" if job.cancel.is_set() else ""
        if last is None:
            return f"**Preparing** data and content features… ({_clock(elapsed)} elapsed, {where}){stopping}"
        step = f" · step {last['step']}/{last['steps']}" if last["kind"] == "step" else " · validating"
        return (f"**Training {last['stage']}** · epoch {last['epoch']}/{job.cfg.train.max_epochs}{step} · "
                f"{_clock(elapsed)} elapsed · {where}{stopping}\n\n{eta_text(job)}")
    if job.error:
        return f"**Training stopped:** {job.error} ({_clock(elapsed)})."
    trained = [m for m in MODEL_ORDER if m != "pop" and m in (job.results or {}).get("models", {})]
    if not trained:
        return f"**Cancelled** before any model finished ({_clock(elapsed)}); no checkpoint was saved."
    head = "**Cancelled**; kept the best checkpoint so far of" if (job.results or {}).get("cancelled") else "**Finished**:"
    names = ", ".join(MODEL_NAMES[m] for m in trained)
    return (f"{head} {names} in {_clock(elapsed)} → `{job.out}`. Pick it in **Run** at the top "
            "to explore it, or see its test metrics in **Evaluate**.")


def metrics_text(job: TrainJob | None) -> str:
    """Markdown table of the last validation metrics of each stage."""
    if job is None:
        return ""
    last: dict[str, dict[str, Any]] = {}
    for e in job.events:
        if e["kind"] == "epoch":
            last[e["stage"]] = e
    if not last:
        return ""
    rows = ["| stage | epoch | loss | valid HR@10 | valid NDCG@10 | best epoch |", "|---|---|---|---|---|---|"]
    for stage, e in last.items():
        loss = sum(e["loss"].values())
        rows.append(f"| {stage} | {e['epoch']} | {loss:.4f} | {e['valid']['hr@10']:.4f} | {e['valid']['ndcg@10']:.4f} "
                    f"| {e['best_epoch']} |")
    return "\n".join(rows)


class TrainTab:
    """Handlers of the Train tab over the shared `studio` (one job at a time per process)."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    def datasets(self, current: str) -> gr.Dropdown:
        """The dataset choices (demo + validated uploads)."""
        choices = self.studio.dataset_choices()
        return gr.Dropdown(choices=choices, value=current if current in self.studio.datasets else self.studio.default_dataset)

    def start(self, dataset: str, stages: list[str], hidden: float, epochs: float, patience: float, alpha: float,
              lr: float, batch: float, device: str) -> tuple[str, gr.Timer]:
        """Start a job from the form; returns a message and the polling timer (active while it runs)."""
        models = tuple(m for m in MODEL_ORDER if m in {STAGES[s] for s in stages or [] if s in STAGES})
        if not models:
            return "Pick at least one stage to train.", gr.Timer(active=False)
        if dataset not in self.studio.datasets:
            return f"Unknown dataset {dataset!r}: upload it in the **Data** tab first.", gr.Timer(active=False)
        try:
            hidden, epochs, patience, batch = int(hidden), int(epochs), int(patience), int(batch)
            alpha, lr = float(alpha), float(lr)
        except (TypeError, ValueError):
            return "Hyperparameters must be numbers.", gr.Timer(active=False)
        if hidden < 2 or hidden % 2 or epochs < 1 or patience < 1 or batch < 1 or not 0 < lr < 1 or alpha < 0:
            return ("Check the hyperparameters: hidden must be even (2 heads), epochs, patience and batch ≥ 1, "
                    "0 < lr < 1, alpha ≥ 0."), gr.Timer(active=False)
        images = str(self.studio.config.images) if dataset == "demo" and self.studio.config.images else None
        cfg = RunConfig(
            models[-1], DataConfig(path=self.studio.datasets[dataset], images=images),
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
            job = start_job(self.studio, cfg, models, out)
        except JobBusy as e:
            return str(e), gr.Timer(active=True)
        names = ", ".join(MODEL_NAMES[m] for m in models)
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


__all__ = ["COMING", "STAGES", "JobBusy", "SPEC_MODEL", "SPEC_TRAIN", "TrainJob", "TrainTab", "device_choices",
           "device_note", "eta_text", "metrics_text", "start_job", "status_text"]
