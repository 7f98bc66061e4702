"""Checkpoints: safetensors + JSON round trip, clear errors on broken files, atomic and recoverable saves."""

import json

import pytest
import torch

from sicsrec.checkpoint import CheckpointError, item_table, load_checkpoint, save_checkpoint
from tests.helpers import synthetic_dataset


def test_round_trip_gives_identical_scores(saved, split):
    model, path = saved
    loaded, config, items = load_checkpoint(path)
    assert config["model"] == model.name and len(items["item_ids"]) == split.n_items
    hist, lengths = split.test.history[:16], split.test.lengths[:16]
    assert torch.equal(model.score(hist, lengths), loaded.score(hist, lengths))
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "items.json", "model.safetensors"]


def test_broken_checkpoints_fail_with_a_clear_message(saved, tmp_path):
    _, path = saved
    with pytest.raises(CheckpointError, match="config.json"):
        load_checkpoint(tmp_path / "missing")
    config = json.loads((path / "config.json").read_text())
    for broken, message in [([], "JSON object"), ({**config, "n_items": "many"}, "invalid model settings"),
                            ({k: v for k, v in config.items() if k != "model_cfg"}, "model_cfg")]:
        (path / "config.json").write_text(json.dumps(broken))
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(path)
    (path / "config.json").write_text(json.dumps(config))
    items = json.loads((path / "items.json").read_text())
    (path / "items.json").write_text(json.dumps({**items, "titles": items["titles"][:-1]}))
    with pytest.raises(CheckpointError, match="items.json"):
        load_checkpoint(path)
    (path / "items.json").write_text(json.dumps(items))
    (path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(path)


def test_interrupted_save_keeps_the_previous_checkpoint(saved, split, monkeypatch):
    model, path = saved
    before = (path / "model.safetensors").read_bytes()
    import sicsrec.checkpoint as ck

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ck, "atomic_write_text", boom)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, item_table(split, synthetic_dataset().items))
    assert (path / "model.safetensors").read_bytes() == before
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def test_a_save_interrupted_between_its_renames_is_recovered(saved, split):
    # The swap is path -> .old, then tmp -> path: a crash between them leaves only .old.
    model, path = saved
    parked = path.with_name(f".{path.name}.old")
    path.rename(parked)
    loaded, _, _ = load_checkpoint(path)  # read from the parked copy
    hist, lengths = split.test.history[:8], split.test.lengths[:8]
    assert torch.equal(loaded.score(hist, lengths), model.score(hist, lengths))
    save_checkpoint(path, model, item_table(split, synthetic_dataset().items))  # the next save puts it back first
    assert path.is_dir() and not parked.exists()
    assert oct(path.stat().st_mode & 0o777) == oct(0o755)
