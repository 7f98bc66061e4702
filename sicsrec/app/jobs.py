"""Background training jobs, one at a time per process, each keeping the typed progress events it reports, with a
cancel switch. A job trains in its own process (`ProcessJob`: `python -m sicsrec compare`, or torchrun with one
process per local GPU), at a lower CPU priority than the app, so that training neither holds the app's GIL nor
outruns the clicks of a class; its events arrive through a JSON-lines file. A job with stage A runs
`run_experiment` in a thread of the app (`TrainJob`). A job can also continue an interrupted run (`continue_run`):
one whose folder holds a saved training state (`interrupted_runs`).

`estimate_seconds` says how long a job will take at most: from reference timings until this machine has finished a job,
then from that job's own speed (`measure`, kept per device in the workdir's TIMINGS file)."""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sicsrec.app.runs import read_json
from sicsrec.config import RunConfig
from sicsrec.eval.results import Results
from sicsrec.events import (
    PHASE_PREPARE,
    PHASE_TRAIN,
    STAGE_MINING,
    EpochEvent,
    FeatureProgress,
    PhaseEvent,
    ProgressEvent,
    event_from_json,
)
from sicsrec.run.experiment import ExperimentResult, StageAPlan, StageCancelled, run_experiment
from sicsrec.train.state import SavedRun, saved_run
from sicsrec.utils import atomic_write_text, resolve_device

log = logging.getLogger("sicsrec.app")


# the folder holding `sicsrec`: a training process imports it from there
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
BACKGROUND_NICE = 10  # a training process's CPU priority below the app's: clicks are answered first


# Seconds measured on this app's machine (2 CPU cores, torch threads 2) when it was otherwise idle: the shipped
# demo run (checkpoints/demo: 79,286 training targets, d 64, batch 1024, 40 epochs a model) took 2.9 s an epoch for
# SASRec, 4.2 s for content-only and 8.1 s for SICSRec's step 2 (training + validation); preparing the demo (load,
# split, cached content features) ~8 s. An epoch costs targets * (a + b * hidden): half of it scales with the width
# at d 64 (the item-scoring and attention layers), half does not (batching, the optimiser, validation).
EPOCH_COST = {  # model -> (a, b): seconds per training target per epoch = a + b * hidden
    "sasrec": (1.83e-5, 2.86e-7),
    "content": (2.62e-5, 4.09e-7),
    "id_control": (2.2e-5, 3.4e-7),
    "sicsrec": (5.1e-5, 8.0e-7),
}
PREPARE_BASE, PREPARE_PER_INTERACTION = 3.0, 5e-5
MODEL_OVERHEAD = 2.0  # s per model: building it, the test evaluation, the checkpoint
STEP2 = ("sicsrec", "id_control")  # trained from SASRec's step 1, which runs first when it is not asked for


TIMINGS = ".timings.json"  # in the workdir (hidden: not a run folder): this machine's measured speed per device


def timing_key(device_type: str, nproc: int = 1) -> str:
    """The TIMINGS key of jobs on `device_type` ("cpu", "cuda") in `nproc` processes: N processes train an epoch
    ~N times faster than one, so their speed is kept apart."""
    return device_type if nproc == 1 else f"{device_type} x{nproc}"


@dataclass(frozen=True)
class Calibration:
    """This machine's speed, measured on its last finished job: multiples of the reference timings (`epoch`,
    `prepare`) and the seconds a model costs outside its epochs (`overhead`). The default is the reference."""

    epoch: float = 1.0
    prepare: float = 1.0
    overhead: float = MODEL_OVERHEAD
    measured: str = ""  # when ("YYYY-MM-DD HH:MM"); "" for the reference timings

    @classmethod
    def read(cls, workdir: Path, device: str) -> Calibration:
        """The calibration saved for `device` ("cpu", "cuda") under `workdir`; the reference when there is none
        or the file is unreadable (it is only a hint: never an error)."""
        try:
            d = (read_json(workdir / TIMINGS) or {})[device]
            cal = cls(float(d["epoch"]), float(d["prepare"]), float(d["overhead"]), str(d["measured"]))
        except (ValueError, KeyError, TypeError):
            return cls()
        sane = all(0.01 <= f <= 100 for f in (cal.epoch, cal.prepare)) and 0 <= cal.overhead <= 3600
        return cal if sane else cls()

    def save(self, workdir: Path, device: str) -> None:
        """Keep this calibration for `device` (atomically; other devices' entries stay)."""
        path = workdir / TIMINGS
        saved = read_json(path) or {}
        saved[device] = self.__dict__
        atomic_write_text(path, json.dumps(saved, indent=1))


@dataclass(frozen=True)
class Estimate:
    """How long a job should take, in seconds: preparing the data, and training at most (every epoch run); with
    the reference figures it was scaled from, so the job can measure this machine against them (`measure`)."""

    prepare: float
    train: float
    epoch_ref: dict[str, float] = field(default_factory=dict)  # model -> reference seconds of one epoch
    prepare_ref: float = 0.0  # reference seconds of the preparation
    calibration: Calibration = field(default_factory=Calibration)

    @property
    def total(self) -> float:
        return self.prepare + self.train


def estimate_seconds(
    interactions: int,
    users: int,
    models: tuple[str, ...],
    hidden: int,
    epochs: int,
    calibration: Calibration | None = None,
) -> Estimate:
    """The time a training job takes on this machine at most (early stopping often ends it sooner): preparing a
    dataset of `interactions` by `users`, then `epochs` epochs of each of `models` at width `hidden`; the
    reference timings scaled by `calibration` (this machine's last job) when given."""
    cal = calibration or Calibration()
    trained = {"sasrec"} if any(m in STEP2 for m in models) else set()
    targets = max(interactions - 2 * users, 0)  # leave-one-out: each user's last two items are valid and test
    trained |= set(models)
    epoch_ref = {m: targets * (a + b * hidden) for m, (a, b) in EPOCH_COST.items() if m in trained}
    train = sum(cal.epoch * ref * epochs + cal.overhead for ref in epoch_ref.values())
    prepare_ref = PREPARE_BASE + PREPARE_PER_INTERACTION * interactions
    return Estimate(cal.prepare * prepare_ref, train, epoch_ref, prepare_ref, cal)


def busy_factor() -> float:
    """How many times more runnable work the machine has than cores right now (1 when idle; the 1-minute load
    average over the CPU count): an estimate measured on an idle machine is that many times too short at least."""
    try:
        load = os.getloadavg()[0]
    except OSError:  # not available on this platform
        return 1.0
    return max(1.0, load / (os.cpu_count() or 1))


class JobBusy(Exception):
    """A training job is already running in this process."""


@dataclass
class TrainJob:
    """One background `run_experiment` in a thread of the app: its config, the typed progress events, the outcome,
    its cancel switch (stops after the current batch, keeping each model's best epoch)."""

    cfg: RunConfig
    models: tuple[str, ...]
    out: Path
    plan: StageAPlan | None = None
    device: str = ""
    continue_run: bool = False  # continue the interrupted run in `out` from its saved training state
    estimate: Estimate | None = None  # what the form estimated before starting
    cancel: threading.Event = field(default_factory=threading.Event)
    events: list[ProgressEvent] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    error: str = ""
    result: ExperimentResult | None = None
    thread: threading.Thread | None = None

    @property
    def placement(self) -> str:
        """Where it trains, in words ("cpu", "cuda", "2 × cuda (torchrun)")."""
        return self.device

    @property
    def processes(self) -> int:
        """How many processes train it."""
        return 1

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
        self.calibrate()

    def calibrate(self) -> None:
        """Keep this job's measured speed for the next estimates on this device (a failure is only logged)."""
        try:
            cal = measure(self)
            if cal is not None:
                cal.save(self.out.parent, timing_key(self.device.split(":")[0] or "cpu", self.processes))
        except Exception:
            log.warning("could not keep the job's timings", exc_info=True)


@dataclass
class ProcessJob(TrainJob):
    """A job trained in its own process group: `python -m sicsrec compare`, the command a user would type, or with
    `nproc` > 1 torchrun running it once per local GPU (gloo processes on a CPU). Its main rank appends progress
    events to a file this job follows. Cancel interrupts one process as Ctrl-C does (it stops after the current
    batch, keeps each model's best epoch and writes results.json); torchrun's processes are stopped, and the run
    continues from its last saved epoch (`continue_run`)."""

    nproc: int = 1
    nice: int = BACKGROUND_NICE
    process: subprocess.Popen | None = None

    @property
    def placement(self) -> str:
        return f"{self.nproc} × {self.device} (torchrun)" if self.nproc > 1 else f"{self.device}, own process"

    @property
    def processes(self) -> int:
        return self.nproc

    def command(self, config: Path, events: Path) -> list[str]:
        """The command line: `python -m sicsrec compare` with this job's settings, under torchrun (standalone
        rendezvous) when more than one process trains."""
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(self.nproc)]
        run = ["-m", "sicsrec", "compare", "--run-config", str(config), "--models", ",".join(self.models)]
        return [*(launcher if self.nproc > 1 else [sys.executable]), *run, "--out", str(self.out)] + (
            ["--events", str(events)] + (["--continue"] if self.continue_run else [])
        )

    def run(self) -> None:
        """Write the settings, launch, follow the events until the processes exit, then read results.json."""
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            config, events = self.out / "job-config.json", self.out / "job-events.jsonl"
            settings = self.cfg.to_dict()  # each process gets its share of the app's training threads
            settings["train"]["threads"] = max(1, (self.cfg.train.threads or os.cpu_count() or 1) // self.nproc)
            atomic_write_text(config, json.dumps(settings))
            events.unlink(missing_ok=True)
            path = os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")) if p)
            env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": str(settings["train"]["threads"])}
            self.events.append(PhaseEvent(PHASE_PREPARE))  # starting Python and torch is part of preparing
            with open(self.out / "job.log", "w", encoding="utf-8") as log_file:
                self.process = subprocess.Popen(
                    self.command(config, events),
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # its own process group: a cancel stops every rank and nothing else
                )
                lower_priority(self.process.pid, self.nice)
                self._follow(events)
            code = self.process.returncode
            # one interrupted process ends as an in-app cancel does: with the models it finished (even when the
            # interrupt hit a model's final evaluation and the process exited 130)
            kept = code == 0 or (self.cancel.is_set() and self.nproc == 1)
            results = Results.read(self.out / "results.json") if kept else None
            if results is not None:
                results.cancelled = results.cancelled or code != 0
                self.result = ExperimentResult(results)
            elif self.cancel.is_set():
                self.error = (
                    "cancelled: the run continues from its last finished epoch (Continue interrupted run)"
                    if self.nproc > 1
                    else "cancelled before a model was trained"
                )
            else:
                self.error = f"the training {self._who()} stopped (exit {code}): {self._cause()}"
        except Exception as e:  # the app must survive any failure of a job
            log.exception("training job failed")
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self.finished = time.time()
        self.calibrate()

    def stop(self) -> None:
        """Stop the training processes now (SIGTERM to the group; torchrun's cancel, and the app's exit): the run keeps
        its last finished epoch and is offered as an interrupted run, rather than training on without an app."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)

    def _who(self) -> str:
        return f"{self.nproc} processes" if self.nproc > 1 else "process"

    def _cause(self) -> str:
        """The error line from the job's log: the CLI's `error:` line or a rank's exception (torchrun's own report is
        a banner), else the log's end."""
        text = (self.out / "job.log").read_text(encoding="utf-8", errors="replace")
        errors = [
            line.split("]: ", 1)[-1] if line.startswith("[rank") else line.removeprefix("error: ")
            for line in text.splitlines()
            if line.startswith("error: ") or (line.startswith("[rank") and "Error" in line)
        ]
        return errors[-1] if errors else text.strip()[-300:]

    def _follow(self, events: Path) -> None:
        """Append the events the main rank writes until the processes exit; on cancel, interrupt the one process
        (Ctrl-C: it keeps its best epochs) or stop torchrun's, once."""
        assert self.process is not None
        offset, partial, stopped = 0, "", False
        while True:
            done = self.process.poll() is not None
            if self.cancel.is_set() and not done and not stopped:
                if self.nproc > 1:
                    self.stop()
                else:
                    self.process.send_signal(signal.SIGINT)
                stopped = True
            if events.is_file():
                with open(events, encoding="utf-8") as f:
                    f.seek(offset)
                    chunk = f.read()
                    offset = f.tell()
                *lines, partial = (partial + chunk).split("\n")
                self.events += [e for e in map(event_from_json, lines) if e is not None]
            if done:
                return
            time.sleep(0.5)


def lower_priority(pid: int, nice: int) -> None:
    """Run `pid` `nice` levels below this process (where the OS has nice levels): called as it starts, before torch
    creates the threads that inherit it."""
    if nice > 0 and hasattr(os, "setpriority"):
        try:
            os.setpriority(os.PRIO_PROCESS, pid, os.getpriority(os.PRIO_PROCESS, 0) + nice)
        except OSError:  # already exited, or not permitted: it trains at the app's priority
            log.warning("could not lower the training process's priority", exc_info=True)


def measure(job: TrainJob) -> Calibration | None:
    """This machine's speed from a job that trained at least one epoch: its epochs' seconds against the reference
    of its own estimate; its preparation when the features were cached (a first encoding is not representative);
    the seconds outside the epochs when it finished uncancelled. None when there is nothing to measure."""
    est = job.estimate
    if est is None or not est.epoch_ref or job.finished is None or job.error:
        return None
    # a stage is named by its model, then what it is ("sicsrec step 2")
    epochs = [e for e in job.events if isinstance(e, EpochEvent) and e.stage.split()[0] in est.epoch_ref]
    reference = sum(est.epoch_ref[e.stage.split()[0]] for e in epochs)
    if not epochs or reference <= 0:
        return None
    spent = sum(e.seconds for e in epochs)
    old = est.calibration
    phases: dict[str, float] = {}
    for e in job.events:  # a process job's start and its process's own report both begin PHASE_PREPARE: the first
        if isinstance(e, PhaseEvent):
            phases.setdefault(e.phase, e.t)
    prepare = old.prepare
    encoded = any(isinstance(e, FeatureProgress) for e in job.events)
    if {PHASE_PREPARE, PHASE_TRAIN} <= phases.keys() and est.prepare_ref > 0 and not encoded:
        prepare = (phases[PHASE_TRAIN] - phases[PHASE_PREPARE]) / est.prepare_ref
    overhead = old.overhead
    results = job.results
    if PHASE_TRAIN in phases and results is not None and not results.cancelled:
        stages = len({e.stage for e in epochs})
        overhead = max(0.0, (job.finished - phases[PHASE_TRAIN] - spent) / stages)
    return Calibration(spent / reference, prepare, overhead, time.strftime("%Y-%m-%d %H:%M"))


class JobSlot:
    """The process's one training job: the current (or last) job, and a start that refuses while it runs."""

    def __init__(self, nice: int = BACKGROUND_NICE) -> None:
        self.nice = nice  # a training process's priority below the app's
        self.current: TrainJob | None = None
        self._lock = threading.Lock()
        atexit.register(self.stop)

    def stop(self) -> None:
        """Stop a running job's training processes (at the app's exit: they run in their own session, which a
        Ctrl-C of the app does not reach)."""
        if isinstance(self.current, ProcessJob):
            self.current.stop()

    def start(
        self,
        cfg: RunConfig,
        models: tuple[str, ...],
        out: Path,
        plan: StageAPlan | None = None,
        continue_run: bool = False,
        estimate: Estimate | None = None,
        nproc: int = 1,
    ) -> TrainJob:
        """Start a job for `run_experiment(cfg, out, models, plan)` unless one is running (JobBusy): a thread
        following its training process (`nproc` > 1: torchrun's processes), or running it itself with stage A."""
        with self._lock:
            if self.current is not None and self.current.running:
                raise JobBusy("A training job is already running; wait for it or cancel it first.")
            device = str(resolve_device(cfg.train.device))
            job = (
                TrainJob(cfg, models, out, plan, device, continue_run, estimate)
                if plan is not None and plan.active
                else ProcessJob(cfg, models, out, None, device, continue_run, estimate, nproc=nproc, nice=self.nice)
            )
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
    found = (
        (saved_run(p) for p in sorted(workdir.glob("[!.]*"), reverse=True) if p.is_dir()) if workdir.is_dir() else ()
    )
    return [run for run in found if run is not None]


__all__ = [
    "BACKGROUND_NICE",
    "EPOCH_COST",
    "MODEL_OVERHEAD",
    "TIMINGS",
    "Calibration",
    "Estimate",
    "JobBusy",
    "JobSlot",
    "ProcessJob",
    "TrainJob",
    "busy_factor",
    "estimate_seconds",
    "interrupted_runs",
    "measure",
    "new_run_folder",
    "timing_key",
]
