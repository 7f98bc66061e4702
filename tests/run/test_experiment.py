"""The run layer in process: one experiment end to end, typed progress, resume, cancel, stage A, prepare."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from sicsrec.config import DataConfig, FeatureConfig, ModelConfig, RunConfig, TrainConfig
from sicsrec.eval.metrics import TIE_RULE
from sicsrec.eval.results import Results
from sicsrec.events import (
    AlignDone,
    EpochEvent,
    FeatureProgress,
    FitDone,
    MiningDone,
    ProgressEvent,
    StageAProgress,
    StepEvent,
)
from sicsrec.run.experiment import StageAPlan, StageCancelled, run_experiment
from sicsrec.run.prepare import prepare
from sicsrec.stage_a.align import AlignConfig
from sicsrec.stage_a.llm import BackendOptions
from sicsrec.stage_a.pairs import MiningSettings


def tiny(data: Path, **train: object) -> RunConfig:
    """A run small enough for the suite: d 16, L 20, two epochs, one thread."""
    return RunConfig(
        "sicsrec",
        DataConfig(path=str(data), max_len=20),
        FeatureConfig(),
        ModelConfig(hidden=16, ffn=16, max_len=20),
        TrainConfig(**{"max_epochs": 2, "patience": 2, "batch_size": 512, "threads": 1, "device": "cpu", **train}),
    )


@pytest.fixture(scope="module")
def finished(demo_slice: Path, tmp_path_factory) -> tuple[Path, list[ProgressEvent], Results]:
    out = tmp_path_factory.mktemp("experiment")
    events: list[ProgressEvent] = []
    done = run_experiment(tiny(demo_slice), out, progress=events.append, show_bar=False)
    return out, events, done.results


@pytest.mark.slow
def test_one_experiment_trains_evaluates_checkpoints_and_writes_results(finished) -> None:
    out, _, results = finished
    assert results.model_names(with_pop=True) == ["pop", "sasrec", "content", "sicsrec"]
    assert results.ranking == TIE_RULE and not results.cancelled
    on_disk = Results.read(out)
    assert on_disk is not None and on_disk.to_dict() == results.to_dict()
    for name in ("sasrec", "content", "sicsrec"):
        assert (out / "checkpoints" / name / "model.safetensors").is_file()
        assert results.models[name].stopped in ("max_epochs", "early_stop")


@pytest.mark.slow
def test_progress_arrives_as_typed_events_in_order(finished) -> None:
    _, events, _ = finished
    kinds = {type(e) for e in events}
    assert {FeatureProgress, StepEvent, EpochEvent, FitDone} <= kinds
    done = [e for e in events if isinstance(e, FitDone)]
    assert [e.stage for e in done] == ["sasrec", "content", "sicsrec step 2"]  # step 1 trained once, reused
    epochs = [e for e in events if isinstance(e, EpochEvent) and e.stage == "sasrec"]
    assert [e.epoch for e in epochs] == [1, 2] and all(0 <= e.valid["hr@10"] <= 1 for e in epochs)
    stamps = [e.t for e in events]
    assert stamps == sorted(stamps)


def test_resume_skips_a_current_run_and_reuses_checkpoints(finished, demo_slice: Path) -> None:
    out, _, results = finished
    events: list[ProgressEvent] = []
    again = run_experiment(tiny(demo_slice), out, progress=events.append, show_bar=False, resume=True)
    assert again.skipped == ["train"] and not events  # nothing prepared, nothing trained
    assert again.results.to_dict() == results.to_dict()
    fewer = run_experiment(tiny(demo_slice), out, ("sasrec",), progress=events.append, show_bar=False, resume=True)
    assert not [e for e in events if isinstance(e, StepEvent)]  # the finished SASRec checkpoint is reused
    assert fewer.results.models["sasrec"].test == results.models["sasrec"].test
    assert fewer.results.model_names() == ["sasrec"]


@pytest.mark.slow
def test_cancel_keeps_the_models_finished_before_it(demo_slice: Path, tmp_path: Path) -> None:
    cancel = threading.Event()

    def stop_in_content(event: ProgressEvent) -> None:
        if isinstance(event, StepEvent) and event.stage == "content":
            cancel.set()

    done = run_experiment(
        tiny(demo_slice, max_epochs=1),
        tmp_path,
        ("sasrec", "content", "sicsrec"),
        progress=stop_in_content,
        cancel=cancel,
        show_bar=False,
    )
    assert done.cancelled and done.results.model_names() == ["sasrec"]  # content cancelled in its first epoch
    assert Results.read(tmp_path).cancelled
    assert not (tmp_path / "checkpoints" / "content").exists()


@pytest.mark.slow
def test_stage_a_then_training_on_aligned_features_and_the_rerun_skips_all(demo_slice: Path, tmp_path: Path) -> None:
    plan = StageAPlan(
        mine=True,
        align=True,
        backend="embedding",
        options=BackendOptions(similarity_threshold=0.3),
        mining=MiningSettings(max_users=30),
        align_cfg=AlignConfig(epochs=1, optimizer="adamw", lr=1e-4),
    )
    cfg = tiny(demo_slice, max_epochs=1)
    events: list[ProgressEvent] = []
    done = run_experiment(
        cfg, tmp_path, ("sasrec", "sicsrec"), stage_a=plan, progress=events.append, show_bar=False, resume=True
    )
    mined = next(e for e in events if isinstance(e, MiningDone))
    assert mined.fallback and mined.pairs == len(done.mining.pairs) > 0
    aligned = next(e for e in events if isinstance(e, AlignDone))
    assert aligned.source.startswith("aligned:") and done.results.features["source"] == aligned.source
    assert any(isinstance(e, StageAProgress) and e.done > 0 for e in events)
    again = run_experiment(
        tiny(demo_slice, max_epochs=1), tmp_path, ("sasrec", "sicsrec"), stage_a=plan, show_bar=False, resume=True
    )
    assert again.skipped == ["pair mining", "encoder alignment", "train"]


@pytest.mark.slow
def test_cancelling_stage_a_raises_and_keeps_the_replies(demo_slice: Path, tmp_path: Path) -> None:
    cancel = threading.Event()

    def stop_after_some(event: ProgressEvent) -> None:
        if isinstance(event, StageAProgress) and event.done >= 3:
            cancel.set()

    plan = StageAPlan(mine=True, backend="embedding", mining=MiningSettings(max_users=40))
    with pytest.raises(StageCancelled) as info:
        run_experiment(
            tiny(demo_slice), tmp_path, stage_a=plan, progress=stop_after_some, cancel=cancel, show_bar=False
        )
    assert info.value.stage == "pair mining"
    assert len((tmp_path / "pairs" / "replies.jsonl").read_text().splitlines()) >= 3


@pytest.mark.slow
def test_prepare_gives_feature_rows_in_the_split_item_order(demo_slice: Path) -> None:
    cfg = tiny(demo_slice)
    prep = prepare(cfg.data, cfg.features, "cpu", show_bar=False)
    split, tables = prep.split, prep.tables
    assert tables is not None and tables.text.shape[0] == split.n_items + 1  # row 0: padding
    titles = prep.dataset.items.set_index("item_id")["text"]
    first = split.item_ids[0]
    from sicsrec.features import get_encoder

    row = get_encoder("minilm").encode([titles[first]])[0].numpy()
    assert np.allclose(tables.text[1].numpy(), row, atol=1e-5)
    assert prepare(cfg.data, None, show_bar=False).tables is None


def test_a_saved_state_from_before_a_new_setting_or_with_other_threads_is_continued(tmp_path: Path) -> None:
    """A training state (or checkpoint) written before a setting existed, or by a run on another thread count,
    belongs to the same run: its settings compare through RunConfig, without how the run executed."""
    import torch

    from sicsrec.run.experiment import run_identity
    from sicsrec.train.state import StateStore
    from sicsrec.train.trainer import FitResult, FitState

    now = RunConfig(train=TrainConfig(threads=2, eval_memory_mb=64)).to_dict()
    older = RunConfig(train=TrainConfig(threads=1)).to_dict()
    del older["model_cfg"]["content_items"], older["model_cfg"]["content_items_gate"]  # settings added since
    other = RunConfig(model_cfg=ModelConfig(hidden=32)).to_dict()
    assert run_identity(older) == run_identity(now) != run_identity(other)

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters())
    state = FitState(FitResult("sasrec", 1, {}, [], 1.0, ""), None, 0.5, 0, False)
    StateStore(tmp_path, older).save("sasrec", state, model, opt, torch.Generator())
    store = StateStore(tmp_path, now, resume=True, identity=run_identity)
    assert store.load("sasrec", model, opt, torch.Generator()) is not None
    store = StateStore(tmp_path, other, resume=True, identity=run_identity)
    assert store.load("sasrec", model, opt, torch.Generator()) is None  # another model: the stage starts over
