"""Background training jobs: one thread per job calls `run_experiment` with a typed-event hook and a cancel
switch, and keeps every event it reports; one job runs at a time per process. A job can also continue an
interrupted run (`continue_run`): one whose folder holds a saved training state (`interrupted_runs`).

A job without stage A loads, splits and reads the content features itself before training, marking that phase
with `JobPhase` events (it takes a while and the library reports nothing until the features are done).
`estimate_seconds` says how long a job will take at most: from reference timings until this machine has finished a job,
then from that job's own speed (`measure`, kept per device in the workdir's TIMINGS file)."""

from __future__ import annotations

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
from sicsrec.events import STAGE_MINING, EpochEvent, FeatureProgress, ProgressEvent, event_from_json
from sicsrec.model import MODELS
from sicsrec.run.experiment import ExperimentResult, StageAPlan, StageCancelled, run_experiment
from sicsrec.run.prepare import Prepared, prepare
from sicsrec.train.state import SavedRun, saved_run
from sicsrec.train.trainer import set_threads
from sicsrec.utils import atomic_write_text, resolve_device

log = logging.getLogger("sicsrec.app")


PHASE_PREPARE, PHASE_TRAIN = "preparing", "training"
# the folder holding `sicsrec`: torchrun's ranks import it from there
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


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


@dataclass(frozen=True)
class JobPhase:
    """The job's own milestone between the library's events: `phase` (PHASE_PREPARE, PHASE_TRAIN) began."""

    phase: str
    t: float = field(default_factory=time.time)


@dataclass
class TrainJob:
    """One background `run_experiment`: its config, the typed progress events, the outcome, its cancel switch."""

    cfg: RunConfig
    models: tuple[str, ...]
    out: Path
    plan: StageAPlan | None = None
    device: str = ""
    continue_run: bool = False  # continue the interrupted run in `out` from its saved training state
    estimate: Estimate | None = None  # what the form estimated before starting
    cancel: threading.Event = field(default_factory=threading.Event)
    events: list[ProgressEvent | JobPhase] = field(default_factory=list)
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

    def prepare(self) -> Prepared | None:
        """Load, split and read the content features before training, between two JobPhase events; None when
        stage A runs first (training then reads the features it aligned) or nothing is trained."""
        if not self.models or (self.plan is not None and self.plan.active):
            return None
        self.events.append(JobPhase(PHASE_PREPARE))
        set_threads(self.cfg.train.threads)  # as run_experiment does: encoding features uses the training threads
        needs_content = any(MODELS[m].uses_content for m in self.models)
        prepared = prepare(
            self.cfg.data,
            self.cfg.features if needs_content else None,
            self.device or "cpu",
            progress=self.events.append,
            cancel=self.cancel,
            show_bar=False,
        )
        self.events.append(JobPhase(PHASE_TRAIN))
        return prepared

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
                prepared=self.prepare(),
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
class DistributedJob(TrainJob):
    """A job trained by `nproc` processes under torchrun (one per local GPU; gloo processes on a CPU): the same
    `compare` a user would launch, in its own process group. Its rank 0 appends progress events to a file this
    job follows; cancel stops the processes, and the run continues from its last saved epoch (`continue_run`)."""

    nproc: int = 2
    process: subprocess.Popen | None = None

    @property
    def placement(self) -> str:
        return f"{self.nproc} × {self.device} (torchrun)"

    @property
    def processes(self) -> int:
        return self.nproc

    def command(self, config: Path, events: Path) -> list[str]:
        """The launcher line: torchrun (standalone rendezvous) running `python -m sicsrec compare` on every rank."""
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(self.nproc)]
        run = ["-m", "sicsrec", "compare", "--run-config", str(config), "--models", ",".join(self.models)]
        return [*launcher, *run, "--out", str(self.out), "--events", str(events)] + (
            ["--continue"] if self.continue_run else []
        )

    def run(self) -> None:
        """Write the settings, launch, follow the events until the processes exit, then read results.json."""
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            config, events = self.out / "job-config.json", self.out / "job-events.jsonl"
            settings = self.cfg.to_dict()  # each rank gets its share of the app's training threads
            settings["train"]["threads"] = max(1, (self.cfg.train.threads or os.cpu_count() or 1) // self.nproc)
            atomic_write_text(config, json.dumps(settings))
            events.unlink(missing_ok=True)
            path = os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")) if p)
            env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": str(settings["train"]["threads"])}
            with open(self.out / "job-launcher.log", "w", encoding="utf-8") as log_file:
                self.process = subprocess.Popen(
                    self.command(config, events),
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # its own process group: a cancel stops every rank and nothing else
                )
                self._follow(events)
            code = self.process.returncode
            results = Results.read(self.out / "results.json") if code == 0 else None
            if results is not None:
                self.result = ExperimentResult(results)
            elif self.cancel.is_set():
                self.error = "cancelled: the run continues from its last finished epoch (Continue interrupted run)"
            else:
                self.error = f"the {self.nproc} training processes stopped (exit {code}): {self._cause()}"
        except Exception as e:  # the app must survive any failure of a job
            log.exception("distributed training job failed")
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self.finished = time.time()
        self.calibrate()

    def _cause(self) -> str:
        """The first rank's error line from the launcher's log (torchrun's own report is a banner), else its end."""
        text = (self.out / "job-launcher.log").read_text(encoding="utf-8", errors="replace")
        errors = [line for line in text.splitlines() if line.startswith("[rank") and "Error" in line]
        return errors[-1].split("]: ", 1)[-1] if errors else text.strip()[-300:]

    def _follow(self, events: Path) -> None:
        """Append the events rank 0 writes until the processes exit; stop them all when cancel is set."""
        assert self.process is not None
        offset, partial, stopped = 0, "", False
        while True:
            done = self.process.poll() is not None
            if self.cancel.is_set() and not done and not stopped:
                os.killpg(self.process.pid, signal.SIGTERM)
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
    phases = {e.phase: e.t for e in job.events if isinstance(e, JobPhase)}
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
        estimate: Estimate | None = None,
        nproc: int = 1,
    ) -> TrainJob:
        """Start a training thread for `run_experiment(cfg, out, models, plan)` unless one is running (JobBusy);
        with `nproc` > 1 the thread follows that many torchrun processes instead (no stage A there)."""
        with self._lock:
            if self.current is not None and self.current.running:
                raise JobBusy("A training job is already running; wait for it or cancel it first.")
            device = str(resolve_device(cfg.train.device))
            job = (
                DistributedJob(cfg, models, out, None, device, continue_run, estimate, nproc=nproc)
                if nproc > 1
                else TrainJob(cfg, models, out, plan, device, continue_run, estimate)
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
    "EPOCH_COST",
    "MODEL_OVERHEAD",
    "PHASE_PREPARE",
    "PHASE_TRAIN",
    "TIMINGS",
    "Calibration",
    "DistributedJob",
    "Estimate",
    "JobBusy",
    "JobPhase",
    "JobSlot",
    "TrainJob",
    "busy_factor",
    "estimate_seconds",
    "interrupted_runs",
    "measure",
    "new_run_folder",
    "timing_key",
]
