"""The Train tab offers to continue an interrupted run (a folder with a saved training state) and continues it."""

from __future__ import annotations

import threading
from pathlib import Path

from sicsrec.app.studio import Studio
from sicsrec.app.tabs.train import TrainTab
from sicsrec.config import DataConfig, FeatureConfig, ModelConfig, RunConfig, TrainConfig
from sicsrec.events import ProgressEvent, StepEvent
from sicsrec.run.experiment import run_experiment
from sicsrec.train.state import STATE_DIR


def _values(dropdown) -> list[str]:
    return [v for _, v in dropdown.choices]


def test_an_interrupted_run_is_offered_and_continues(studio: Studio, slice_dir: Path) -> None:
    out = studio.config.workdir / "20000101-000000-interrupted"
    cfg = RunConfig(
        "sasrec",
        DataConfig(path=str(slice_dir), max_len=20),
        FeatureConfig(),
        ModelConfig(hidden=16, ffn=16, max_len=20),
        TrainConfig(max_epochs=2, patience=2, batch_size=512, threads=1, device="cpu"),
    )
    cancel = threading.Event()

    def stop_in_epoch_2(event: ProgressEvent) -> None:
        if isinstance(event, StepEvent) and event.epoch == 2:
            cancel.set()

    assert run_experiment(cfg, out, ("sasrec",), progress=stop_in_epoch_2, cancel=cancel, show_bar=False).cancelled
    train = TrainTab(studio)
    picker, button = train.interrupted()
    assert button.visible and picker.visible and str(out) in _values(picker)
    assert train.continue_job(str(slice_dir))[0].startswith("Pick an interrupted run")  # only runs it lists

    message, timer = train.continue_job(str(out))
    assert message.startswith("Continuing SASRec") and timer.active, message
    job = studio.job
    job.thread.join(150)
    assert not job.running and job.continue_run and not job.error, job.error
    assert min(e.epoch for e in job.events if isinstance(e, StepEvent)) == 2  # epoch 1 came from the saved state
    assert train.poll()[0].startswith("**Finished**")
    assert job.results.models["sasrec"].epochs == 2 and not (out / STATE_DIR).exists()
    assert str(out) not in _values(train.interrupted()[0])
