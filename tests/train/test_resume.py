"""Continuing an interrupted training run (`--continue`): the state saved after every epoch restores the model,
Adam, the batch order and the RNGs, so a cancelled or SIGKILLed run ends with the uninterrupted run's metrics."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from sicsrec.config import DataConfig, FeatureConfig, ModelConfig, RunConfig, TrainConfig
from sicsrec.eval.results import Results
from sicsrec.events import EpochEvent, ProgressEvent, StepEvent
from sicsrec.run.experiment import run_experiment
from sicsrec.train.state import STATE_DIR, StateStore, saved_run
from sicsrec.train.trainer import Trainer
from sicsrec.train.two_step import build_model
from sicsrec.utils import seed_everything
from tests.helpers import synthetic_split

pytestmark = pytest.mark.slow  # every test here trains and kills or cancels a run

ROOT = Path(__file__).resolve().parents[2]
TOL = 1e-6  # the bound; on CPU with one thread the metrics come out equal


def assert_no_pickle(folder: Path) -> None:
    """Every file under `folder` is safetensors or JSON that parses as such (no pickle, no torch.save zip)."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files
    for p in files:
        head = p.read_bytes()[:2]
        assert head[:1] != b"\x80" and head != b"PK", f"{p} looks like a pickle"
        if p.suffix == ".safetensors":
            with safe_open(str(p), "pt") as f:
                assert list(f.keys())
        else:
            assert p.suffix == ".json", p
            json.loads(p.read_text())


# --- the trainer --------------------------------------------------------------------------------------


def test_a_cancelled_fit_continues_to_the_uninterrupted_weights(tmp_path: Path, caplog) -> None:
    torch.set_num_threads(1)
    split = synthetic_split()
    cfg = TrainConfig(max_epochs=4, patience=4, batch_size=256, device="cpu")

    def fit(store: StateStore | None = None, progress=None, cancel=None):
        seed_everything(cfg.seed)
        model = build_model("sasrec", ModelConfig(hidden=16, ffn=16, max_len=20, dropout=0.3), split, None)
        return model, Trainer(cfg, torch.device("cpu"), progress, cancel, False, store).fit(model, split, "sasrec")

    plain, expected = fit()
    cancel = threading.Event()
    stop_in_epoch_3 = lambda e: cancel.set() if isinstance(e, StepEvent) and e.epoch == 3 else None
    _, cut = fit(StateStore(tmp_path, {"run": 1}), stop_in_epoch_3, cancel)
    assert cut.stopped == "cancelled" and cut.epochs == 2
    assert_no_pickle(tmp_path / STATE_DIR)

    torch.rand(7)  # the continued fit must not depend on the global RNG it starts with
    events: list[ProgressEvent] = []
    model, done = fit(StateStore(tmp_path, {"run": 1}, resume=True), events.append)
    assert [e.epoch for e in events if isinstance(e, EpochEvent)] == [1, 2, 3, 4]  # 1-2 restored, 3-4 trained
    assert min(e.epoch for e in events if isinstance(e, StepEvent)) == 3
    assert done.stopped == expected.stopped and done.best_epoch == expected.best_epoch
    assert [h.valid for h in done.history] == [h.valid for h in expected.history]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), plain.state_dict().values()))

    events.clear()  # a finished fit's state only restores its best weights
    again, finished = fit(StateStore(tmp_path, {"run": 1}, resume=True), events.append)
    assert not [e for e in events if isinstance(e, StepEvent)] and finished.best_epoch == expected.best_epoch
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), plain.state_dict().values()))

    opt = torch.optim.Adam(again.parameters())
    with caplog.at_level(logging.WARNING, logger="sicsrec.train"):  # other settings: the fit starts over
        assert StateStore(tmp_path, {"run": 2}, resume=True).load("sasrec", again, opt, torch.Generator()) is None
    assert "other settings" in caplog.text


# --- a whole experiment, killed with SIGKILL --------------------------------------------------------------

CHILD = """
import json, os, signal, sys
import torch
from sicsrec.config import RunConfig
from sicsrec.events import StepEvent
from sicsrec.run.experiment import run_experiment

cfg, out, models, stage, epoch = json.loads(sys.argv[1])

def die_mid_epoch(event):
    if isinstance(event, StepEvent) and event.stage == stage and event.epoch == epoch:
        os.kill(os.getpid(), signal.SIGKILL)

run_experiment(RunConfig.from_dict(cfg), out, tuple(models), progress=die_mid_epoch, show_bar=False)
"""


def tiny(data: Path) -> RunConfig:
    """Three epochs of a d-16 model on one thread (dropout 0.5: the global RNG matters)."""
    return RunConfig(
        "sicsrec",
        DataConfig(path=str(data), max_len=20),
        FeatureConfig(),
        ModelConfig(hidden=16, ffn=16, max_len=20),
        TrainConfig(max_epochs=3, patience=3, batch_size=512, threads=1, device="cpu"),
    )


@pytest.fixture(scope="module")
def uninterrupted(demo_slice: Path, tmp_path_factory: pytest.TempPathFactory) -> Results:
    out = tmp_path_factory.mktemp("uninterrupted")
    done = run_experiment(tiny(demo_slice), out, ("sasrec", "sicsrec"), show_bar=False)
    assert not (out / STATE_DIR).exists()  # removed once the run finished
    return done.results


@pytest.mark.parametrize("models", [("sasrec", "sicsrec"), ("sicsrec",)], ids=["step1-checkpointed", "step1-state"])
def test_a_killed_experiment_continues_to_the_same_metrics(
    demo_slice: Path, tmp_path: Path, uninterrupted: Results, models: tuple[str, ...]
) -> None:
    """Killed mid-epoch 2 of step 2: step 1 is reused (its checkpoint, or its finished state when it was only
    step 1), step 2 continues after epoch 1, and every metric matches the uninterrupted run."""
    cfg = tiny(demo_slice)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    args = json.dumps([cfg.to_dict(), str(tmp_path), models, "sicsrec step 2", 2])
    child = subprocess.run([sys.executable, "-c", CHILD, args], cwd=ROOT, env=env, capture_output=True, timeout=600)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-3000:]
    state = tmp_path / STATE_DIR
    assert sorted(p.name for p in state.iterdir()) == ["run.json", "sasrec", "sicsrec-step-2"]
    assert json.loads((state / "sicsrec-step-2" / "state.json").read_text())["epoch"] == 1
    assert_no_pickle(state)
    assert saved_run(tmp_path).models == models

    events: list[ProgressEvent] = []
    done = run_experiment(cfg, tmp_path, models, progress=events.append, show_bar=False, continue_run=True)
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert {e.stage for e in steps} == {"sicsrec step 2"} and steps[0].epoch == 2  # step 1 not retrained
    deltas = [
        abs(done.results.metric(m, k, part) - uninterrupted.metric(m, k, part))
        for m in models
        for part in ("valid", "test")
        for k in uninterrupted.models[m].test
    ]
    assert max(deltas) <= TOL, deltas
    assert all(done.results.models[m].epochs == uninterrupted.models[m].epochs for m in models)
    assert not state.exists() and not done.cancelled


def test_the_continue_flag_is_on_train_compare_and_pipeline() -> None:
    from sicsrec.cli import build_parser

    parser = build_parser()
    for command in ("train", "compare", "pipeline"):
        assert parser.parse_args([command, "--out", "run", "--continue"]).continue_run
        assert not parser.parse_args([command, "--out", "run"]).continue_run
    assert parser.parse_args(["compare", "--out", "run", "--resume"]).resume  # the other flag stays
