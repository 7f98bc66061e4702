"""Issue 20: the Train tab's "all local GPUs" job: `compare` under torchrun in its own process group, followed
through the events rank 0 writes, cancelled by stopping every rank. Run here with gloo processes on the CPU (the
launcher, the event file and the results are the same on GPUs; only the backend differs)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from sicsrec.app.jobs import Calibration, DistributedJob, JobSlot, interrupted_runs
from sicsrec.app.studio import Studio
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
from sicsrec.events import EpochEvent, FitDone, StepEvent, event_from_json, event_to_json


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
    assert isinstance(job, DistributedJob) and job.thread is not None and job.cfg.train.device == "cuda"
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
    job = JobSlot().start(_cfg(slice_dir, 200), ("sasrec",), tmp_path / "20261203-130000", nproc=2)
    assert isinstance(job, DistributedJob) and job.thread is not None
    deadline = time.time() + 240
    while not any(isinstance(e, EpochEvent) for e in job.events) and time.time() < deadline and job.running:
        time.sleep(0.5)
    assert any(isinstance(e, EpochEvent) for e in job.events), job.error
    job.cancel.set()
    job.thread.join(120)
    assert not job.running and job.process is not None and job.process.returncode != 0
    assert "cancelled" in job.error and "Continue interrupted run" in job.error
    assert [r.out for r in interrupted_runs(tmp_path)] == [job.out]  # its last finished epoch was saved


def test_a_failing_rank_is_reported_in_one_line(tmp_path: Path) -> None:
    job = DistributedJob(RunConfig(), ("sasrec",), tmp_path)
    banner = "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:\n  error_file: <N/A>\n"
    (tmp_path / "job-launcher.log").write_text(
        "[rank1]: Traceback (most recent call last):\n[rank1]: RuntimeError: The size of tensor a (50) must match\n"
        + banner
    )
    assert job._cause() == "RuntimeError: The size of tensor a (50) must match"
    (tmp_path / "job-launcher.log").write_text("killed\n" + banner)  # no rank's error: the log's end
    assert job._cause().endswith("error_file: <N/A>")
