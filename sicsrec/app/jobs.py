"""Background training jobs: one thread per job calls `run_experiment` with a typed-event hook and a cancel
switch, and keeps every event it reports; one job runs at a time per process. A job can also continue an
interrupted run (`continue_run`): one whose folder holds a saved training state (`interrupted_runs`)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sicsrec.config import RunConfig
from sicsrec.eval.results import Results
from sicsrec.events import STAGE_MINING, ProgressEvent
from sicsrec.run.experiment import ExperimentResult, StageAPlan, StageCancelled, run_experiment
from sicsrec.train.state import SavedRun, saved_run
from sicsrec.utils import resolve_device

log = logging.getLogger("sicsrec.app")


class JobBusy(Exception):
    """A training job is already running in this process."""


@dataclass
class TrainJob:
    """One background `run_experiment`: its config, the typed progress events, the outcome, its cancel switch."""

    cfg: RunConfig
    models: tuple[str, ...]
    out: Path
    plan: StageAPlan | None = None
    device: str = ""
    continue_run: bool = False  # continue the interrupted run in `out` from its saved training state
    cancel: threading.Event = field(default_factory=threading.Event)
    events: list[ProgressEvent] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    error: str = ""
    result: ExperimentResult | None = None
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True until the thread has finished (successfully or not)."""
        return self.finished is None

    @property
    def results(self) -> Results | None:
        """The run's results.json content, once `run_experiment` returned."""
        return self.result.results if self.result is not None else None

    def run(self) -> None:
        """The thread body: stage A, train, evaluate, save; any failure becomes a message, never a crash."""
        try:
            self.result = run_experiment(
                self.cfg,
                self.out,
                self.models,
                stage_a=self.plan,
                progress=self.events.append,
                cancel=self.cancel,
                show_bar=False,
                continue_run=self.continue_run,
            )
        except StageCancelled as e:
            kept = (
                "the replies answered so far stay cached in `pairs/replies.jsonl`"
                if e.stage == STAGE_MINING
                else "nothing was cached; the raw features are untouched"
            )
            self.error = f"cancelled during {e.stage}: {kept}"
        except Exception as e:  # the app must survive any failure of a job (bad data, out of memory, ...)
            log.exception("training job failed")
            self.error = "cancelled before a model was trained" if self.cancel.is_set() else f"{type(e).__name__}: {e}"
        finally:
            self.finished = time.time()


class JobSlot:
    """The process's one training job: the current (or last) job, and a start that refuses while it runs."""

    def __init__(self) -> None:
        self.current: TrainJob | None = None
        self._lock = threading.Lock()

    def start(
        self,
        cfg: RunConfig,
        models: tuple[str, ...],
        out: Path,
        plan: StageAPlan | None = None,
        continue_run: bool = False,
    ) -> TrainJob:
        """Start a training thread for `run_experiment(cfg, out, models, plan)` unless one is running (JobBusy)."""
        with self._lock:
            if self.current is not None and self.current.running:
                raise JobBusy("A training job is already running; wait for it or cancel it first.")
            job = TrainJob(cfg, models, out, plan, str(resolve_device(cfg.train.device)), continue_run)
            job.thread = threading.Thread(target=job.run, name="sicsrec-train", daemon=True)
            self.current = job
            job.thread.start()
            return job


def new_run_folder(workdir: Path) -> Path:
    """workdir/<timestamp>, with a suffix when a run started in the same second already has that folder."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = workdir / stamp
    for n in range(2, 100):
        if not out.exists():
            break
        out = workdir / f"{stamp}-{n}"
    return out


def interrupted_runs(workdir: Path) -> list[SavedRun]:
    """Runs under `workdir` that stopped (killed, cancelled or failed) with a saved training state, newest first."""
    found = (saved_run(p) for p in sorted(workdir.iterdir(), reverse=True) if p.is_dir()) if workdir.is_dir() else ()
    return [run for run in found if run is not None]


__all__ = ["JobBusy", "JobSlot", "TrainJob", "interrupted_runs", "new_run_folder"]
