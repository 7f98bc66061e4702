"""Checkpoints: safetensors + JSON round trip, clear errors on broken files, atomic and recoverable saves; planted
pickles refused unopened, tampered configs refused before the model is allocated."""

import json
import pickle

import pytest
import torch

from sicsrec.checkpoint import CheckpointError, item_table, load_checkpoint, save_checkpoint
from sicsrec.config import ModelConfig
from sicsrec.train.two_step import build_model
from tests.helpers import synthetic_dataset, synthetic_tables


def test_round_trip_gives_identical_scores(saved, split):
    model, path = saved
    loaded, config, items = load_checkpoint(path)
    assert config["model"] == model.name and len(items["item_ids"]) == split.n_items
    hist, lengths = split.test.history[:16], split.test.lengths[:16]
    assert torch.equal(model.score(hist, lengths), loaded.score(hist, lengths))
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "items.json", "model.safetensors"]


def test_broken_checkpoints_fail_with_a_clear_message(saved, tmp_path):
    _, path = saved
    with pytest.raises(CheckpointError, match=r"config\.json"):
        load_checkpoint(tmp_path / "missing")
    config = json.loads((path / "config.json").read_text())
    for broken, message in [
        ([], "JSON object"),
        ({**config, "n_items": "many"}, "invalid model settings"),
        ({k: v for k, v in config.items() if k != "model_cfg"}, "model_cfg"),
    ]:
        (path / "config.json").write_text(json.dumps(broken))
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(path)
    (path / "config.json").write_text(json.dumps(config))
    items = json.loads((path / "items.json").read_text())
    (path / "items.json").write_text(json.dumps({**items, "titles": items["titles"][:-1]}))
    with pytest.raises(CheckpointError, match=r"items\.json"):
        load_checkpoint(path)
    (path / "items.json").write_text(json.dumps(items))
    (path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
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


class Payload:
    """Unpickling this creates `marker`: what a malicious pickle could do instead."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.mark.parametrize(
    "planted", ["model.pt", "extra/state.pkl", "optimizer.bin", "notes", "model.safetensors", "torch-zip"]
)
def test_a_planted_pickle_is_refused_and_never_run(saved, tmp_path, planted):
    _, path = saved
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Payload(str(marker)), protocol=4)
    target = path / ("backup" if planted == "torch-zip" else planted)
    target.parent.mkdir(exist_ok=True)
    if planted == "torch-zip":  # torch.save's format: a zip around the pickle, found by its first bytes
        torch.save({"state": Payload(str(marker))}, target)
    else:
        target.write_bytes(payload)
    with pytest.raises(CheckpointError, match=r"holds pickle files .* refused without opening them"):
        load_checkpoint(path)
    assert not marker.exists()
    pickle.loads(payload)  # the payload is live: unpickling it is what the loader must never do
    assert marker.exists()


def test_a_safetensors_header_that_starts_like_a_pickle_is_not_one(saved):
    _model, path = saved
    data = (path / "model.safetensors").read_bytes()
    assert not data.startswith(b"\x80") or data[8:9] == b"{"  # the rule that keeps real weights loadable
    load_checkpoint(path)


@pytest.mark.parametrize(
    "tamper,message",
    [
        (
            lambda c: c["model_cfg"].update(hidden=10**9),
            "does not match config.json|invalid model settings",
        ),  # overflows
        (lambda c: c.update(n_items=10**12), "items.json|does not match"),
        (lambda c: c["model_cfg"].update(layers=10**6), "at most 64 layers"),
        (lambda c: c["model_cfg"].update(surprise=1), r"unknown model settings \['surprise'\]"),
        (lambda c: c["model_cfg"].update(hidden="32"), "invalid model settings.*'hidden': '32'"),
        (lambda c: c["model_cfg"].update(use_mix_decoder=1), "invalid model settings"),
        (lambda c: c["model_cfg"].update(dropout=float("nan")), "invalid model settings"),
        (lambda c: c["model_cfg"].update(hidden=-32), "invalid model settings"),
        (lambda c: c["model_cfg"].update(heads=3), "invalid model settings"),  # 32 is not divisible by 3
        (lambda c: c["model_cfg"].update(max_len=30), "does not match config.json"),
        (lambda c: c.update(padding="x" * 2**20), "not a config"),
    ],
)
@pytest.mark.slow
def test_a_tampered_config_is_refused_before_allocating(saved, tamper, message, monkeypatch):
    from sicsrec.model import MODELS

    built_on: list[str] = []  # the device each model construction put its tensors on
    for name, cls in list(MODELS.items()):
        monkeypatch.setitem(
            MODELS, name, lambda *a, _cls=cls, **k: built_on.append(torch.empty(0).device.type) or _cls(*a, **k)
        )
    _, path = saved
    config = json.loads((path / "config.json").read_text())
    tamper(config)
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)
    assert set(built_on) <= {"meta"}  # shapes only: a 10^9-wide layer was never allocated


def test_absurd_feature_sizes_are_refused_where_they_size_a_table(saved):
    model, path = saved
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "text_dim": 10**8, "image_dim": 10**8}))
    if not model.uses_content:  # SASRec has no content tables: the sizes size nothing
        assert load_checkpoint(path)[0].n_items == model.n_items
        return
    with pytest.raises(CheckpointError, match=r"does not match config\.json"):
        load_checkpoint(path)


def test_weights_of_another_model_are_refused_by_their_shapes(saved, tmp_path, split):
    _model, path = saved
    other = save_checkpoint(
        tmp_path / "other",
        build_model("sasrec", ModelConfig(hidden=16, ffn=16, max_len=20), split, synthetic_tables(split, image_dim=12)),
        item_table(split, synthetic_dataset().items),
    )
    (path / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match=r"model\.safetensors: does not match config\.json \(\d+ tensors differ"):
        load_checkpoint(path)
