"""Training jobs in their own process (issues 18 and 20): the Train tab's job is `python -m sicsrec compare` at a
lower CPU priority, followed through the events it writes, cancelled as Ctrl-C cancels it (keeping the best epoch);
"all local GPUs" is the same command under torchrun, cancelled by stopping every rank. Run here with gloo
processes on the CPU (the launcher, the event file and the results are the same on GPUs; only the backend differs)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from sicsrec.app.jobs import BACKGROUND_NICE, Calibration, JobSlot, ProcessJob, interrupted_runs
from sicsrec.app.studio import AppConfig, Studio
from sicsrec.app.tabs.train import (
    ALL_GPUS,
    MINE,
    STAGES,
    TrainForm,
    TrainTab,
    device_choices,
    device_note,
    job_device,
    status_text,
)
from sicsrec.checkpoint import load_checkpoint
from sicsrec.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from sicsrec.events import (
    PHASE_PREPARE,
    PHASE_TRAIN,
    EpochEvent,
    FitDone,
    PhaseEvent,
    StepEvent,
    event_from_json,
    event_to_json,
)


def _cfg(slice_dir: Path, epochs: int) -> RunConfig:
    return RunConfig(
        "sasrec",
        DataConfig(path=str(slice_dir)),
        model_cfg=ModelConfig(hidden=16, ffn=16),
        train=TrainConfig(max_epochs=epochs, patience=epochs, batch_size=256, device="cpu", threads=2),
    )


def test_events_travel_as_json_lines() -> None:
    epoch = EpochEvent("sicsrec step 2", 3, 10, {"rec": 5.1}, {"hr@10": 0.2}, 2, 4.5, t=12.0)
    assert event_from_json(event_to_json(epoch)) == epoch
    assert event_from_json(event_to_json(StepEvent("sasrec", 1, 5, 9, 7.2))) is not None
    for torn in ('{"type": "EpochEvent", "stage": "x"', '{"type": "Nope"}', '{"type": "FitDone", "x": 1}', "[]", ""):
        assert event_from_json(torn) is None  # a torn or foreign line is skipped, never an error


def _wait_for_epoch(job: ProcessJob, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not any(isinstance(e, EpochEvent) for e in job.events) and time.time() < deadline and job.running:
        time.sleep(0.2)
    assert any(isinstance(e, EpochEvent) for e in job.events), job.error


def test_the_train_tabs_job_trains_in_its_own_process_below_the_apps_priority(
    monkeypatch: pytest.MonkeyPatch, studio: Studio, slice_dir: Path
) -> None:
    assert AppConfig().train_nice == BACKGROUND_NICE > 0  # the app's default (the suite's studio trains at 0)
    monkeypatch.setattr(studio.jobs, "nice", BACKGROUND_NICE)
    studio.datasets["slice"] = str(slice_dir)
    stages = [s for s, m in STAGES.items() if m == "sasrec"]
    message, _ = TrainTab(studio).start_job(TrainForm("slice", stages, hidden=16, epochs=2, patience=2, batch=256))
    job = studio.job
    assert message.startswith("Started") and "cpu, own process" in message, message
    assert isinstance(job, ProcessJob) and job.nproc == 1 and job.thread is not None
    while job.running and sum(isinstance(e, PhaseEvent) for e in job.events) < 2:  # the process reports
        time.sleep(0.05)
    if hasattr(os, "getpriority") and job.running:  # the training process yields the CPU to the app's clicks
        assert os.getpriority(os.PRIO_PROCESS, job.process.pid) == os.getpriority(os.PRIO_PROCESS, 0) + BACKGROUND_NICE
    job.thread.join(300)
    assert not job.running and job.error == "", job.error
    assert job.process is not None and job.process.returncode == 0
    phases = [e.phase for e in job.events if isinstance(e, PhaseEvent)]
    assert phases == [PHASE_PREPARE, PHASE_PREPARE, PHASE_TRAIN]  # the launch, then the process's own report
    assert [e.epoch for e in job.events if isinstance(e, EpochEvent)] == [1, 2]
    assert job.results is not None and not job.results.cancelled and "sasrec" in job.results.models
    load_checkpoint(job.out / "checkpoints" / "sasrec")
    assert status_text(job).startswith("**Finished**")


@pytest.mark.slow
def test_cancelling_one_process_keeps_its_best_epoch(slice_dir: Path, tmp_path: Path) -> None:
    job = JobSlot(nice=0).start(_cfg(slice_dir, 200), ("sasrec",), tmp_path / "20261204-090000")
    assert isinstance(job, ProcessJob) and job.nproc == 1 and job.thread is not None
    _wait_for_epoch(job)
    job.cancel.set()
    job.thread.join(120)
    assert not job.running and job.error == "", job.error  # Ctrl-C: stops after the batch, evaluates, saves
    assert job.results is not None and job.results.cancelled and "sasrec" in job.results.models
    best = next(e for e in job.events if isinstance(e, FitDone))
    assert best.stopped == "cancelled" and best.best_epoch >= 1
    load_checkpoint(job.out / "checkpoints" / "sasrec")
    assert status_text(job).startswith("**Cancelled**"), status_text(job)


def test_all_local_gpus_is_offered_only_with_two_or_more(monkeypatch: pytest.MonkeyPatch, studio: Studio) -> None:
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert ALL_GPUS not in device_choices() and job_device(ALL_GPUS) == "cuda" and job_device(None) == "auto"
    form = TrainForm("demo", [s for s, m in STAGES.items() if m == "sasrec"], device=ALL_GPUS)
    assert TrainTab(studio).start_job(form)[0].startswith("Fewer than two GPUs")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert ALL_GPUS in device_choices() and "all **4 GPUs**" in device_note(ALL_GPUS)
    form.stage_a = [MINE]
    assert TrainTab(studio).start_job(form)[0].startswith("Stage A runs in one process")
    assert studio.job is None or not studio.job.running  # nothing was started


@pytest.mark.slow
def test_a_job_under_torchrun_reports_and_finishes_like_one_process(
    monkeypatch: pytest.MonkeyPatch, studio: Studio, slice_dir: Path
) -> None:
    # "all local GPUs" as the Train tab starts it; the ranks find no CUDA here and train on the CPU over gloo
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    studio.datasets["slice"] = str(slice_dir)
    stages = [s for s, m in STAGES.items() if m == "sasrec"]
    form = TrainForm("slice", stages, hidden=16, epochs=2, patience=2, batch=256, device=ALL_GPUS)
    message, _ = TrainTab(studio).start_job(form)
    job = studio.job
    assert message.startswith("Started") and "2 × cpu (torchrun)" in message, message  # the fallback, said
    assert isinstance(job, ProcessJob) and job.thread is not None and job.cfg.train.device == "cuda"
    job.thread.join(300)
    assert not job.running and job.error == "", job.error
    assert job.results is not None and "sasrec" in job.results.models
    epochs = [e for e in job.events if isinstance(e, EpochEvent)]
    assert [e.epoch for e in epochs] == [1, 2]  # rank 0's events only, each once
    assert any(isinstance(e, FitDone) for e in job.events) and any(isinstance(e, StepEvent) for e in job.events)
    load_checkpoint(job.out / "checkpoints" / "sasrec")
    assert status_text(job).startswith("**Finished**")
    # its speed is kept apart from one process's: the next "all local GPUs" estimate is scaled by it
    assert Calibration.read(studio.config.workdir, "cpu x2").measured


@pytest.mark.slow
def test_cancelling_stops_every_rank_and_the_run_can_continue(slice_dir: Path, tmp_path: Path) -> None:
    job = JobSlot(nice=0).start(_cfg(slice_dir, 200), ("sasrec",), tmp_path / "20261203-130000", nproc=2)
    assert isinstance(job, ProcessJob) and job.thread is not None
    _wait_for_epoch(job)
    job.cancel.set()
    job.thread.join(120)
    assert not job.running and job.process is not None and job.process.returncode != 0
    assert "cancelled" in job.error and "Continue interrupted run" in job.error
    assert [r.out for r in interrupted_runs(tmp_path)] == [job.out]  # its last finished epoch was saved


def test_a_failing_process_is_reported_in_one_line(tmp_path: Path) -> None:
    job = ProcessJob(RunConfig(), ("sasrec",), tmp_path)
    (tmp_path / "job.log").write_text("12:00:01 INFO sicsrec: loading\nerror: data/x.csv line 3: no user_id\n")
    assert job._cause() == "data/x.csv line 3: no user_id"  # the CLI's own error line
    job.nproc = 2
    banner = "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:\n  error_file: <N/A>\n"
    (tmp_path / "job.log").write_text(
        "[rank1]: Traceback (most recent call last):\n[rank1]: RuntimeError: The size of tensor a (50) must match\n"
        + banner
    )
    assert job._cause() == "RuntimeError: The size of tensor a (50) must match"
    (tmp_path / "job.log").write_text("killed\n" + banner)  # no rank's error: the log's end
    assert job._cause().endswith("error_file: <N/A>")


@pytest.mark.slow
def test_the_apps_exit_stops_the_training_process_and_leaves_a_run_to_continue(slice_dir: Path, tmp_path: Path) -> None:
    slot = JobSlot(nice=0)
    job = slot.start(_cfg(slice_dir, 200), ("sasrec",), tmp_path / "20261204-100000")
    _wait_for_epoch(job)
    slot.stop()  # what atexit runs when the app exits: the process is in its own session, out of a Ctrl-C's reach
    assert job.thread is not None
    job.thread.join(120)
    assert not job.running and job.process is not None and job.process.returncode != 0
    assert [r.out for r in interrupted_runs(tmp_path)] == [job.out]  # its last finished epoch was saved
