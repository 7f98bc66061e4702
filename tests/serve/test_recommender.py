"""Checkpoint round trip and the serving API (attribution, influence, unknown ids, empty history)."""

import json
import math

import numpy as np
import pytest
import torch

from sicsrec.checkpoint import CheckpointError, item_table, load_checkpoint, save_checkpoint
from sicsrec.config import ModelConfig
from sicsrec.serve import PARTS, Recommender, popular_items
from sicsrec.train.two_step import build_model
from tests.helpers import synthetic_dataset, synthetic_split, synthetic_tables

CFG = ModelConfig(hidden=32, ffn=32, max_len=20)


@pytest.fixture(scope="module")
def split():
    return synthetic_split()


@pytest.fixture(params=["sasrec", "content", "sicsrec"])
def saved(request, split, tmp_path):
    torch.manual_seed(0)
    model = build_model(request.param, CFG, split, synthetic_tables(split, image_dim=12)).eval()
    items = item_table(split, synthetic_dataset().items)
    path = save_checkpoint(tmp_path / request.param, model, items, {"dataset": "synthetic"})
    return model, path


def test_round_trip_gives_identical_scores(saved, split):
    model, path = saved
    loaded, config, items = load_checkpoint(path)
    assert config["model"] == model.name and len(items["item_ids"]) == split.n_items
    hist, lengths = split.test.history[:16], split.test.lengths[:16]
    assert torch.equal(model.score(hist, lengths), loaded.score(hist, lengths))
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "items.json", "model.safetensors"]


def test_attribution_parts_sum_to_the_score(saved):
    _, path = saved
    rec = Recommender.load(path)
    res = rec.recommend(["3", "4", "5", "6"], k=10)
    assert res.source == "model" and len(res.items) == 10
    for it in res.items:
        assert math.isclose(sum(it[p] for p in PARTS), it["score"], abs_tol=1e-5)
    scores = [it["score"] for it in res.items]
    assert scores == sorted(scores, reverse=True)
    assert not {"3", "4", "5", "6"} & {it["item_id"] for it in res.items}  # history excluded by default
    kept = rec.recommend(["3", "4", "5", "6"], k=len(rec.item_ids), exclude_history=False)
    assert {"3", "4", "5", "6"} <= {it["item_id"] for it in kept.items}


def test_influence_is_the_leave_one_out_score_change(saved):
    _, path = saved
    rec = Recommender.load(path)
    hist = ["3", "4", "5"]
    res = rec.recommend(hist, k=4, influence=True)
    assert res.influence.shape == (3, 4)
    without = rec.recommend(["3", "5"], k=len(rec.item_ids), exclude_history=False)
    by_id = {it["item_id"]: it["score"] for it in without.items}
    for j, it in enumerate(res.items):
        assert math.isclose(res.influence[1, j], it["score"] - by_id[it["item_id"]], abs_tol=1e-5)


def test_unknown_ids_and_empty_history_are_handled(saved):
    _, path = saved
    rec = Recommender.load(path)
    res = rec.recommend(["nope", "3", " "], k=5)
    assert res.unknown == ["nope"] and res.used_history == ["3"] and "nope" in res.message
    empty = rec.recommend([], k=5)
    assert empty.source == "popular" and "popular" in empty.message.lower()
    pops = [rec.popularity[rec.index[it["item_id"]] - 1] for it in empty.items]
    assert pops == sorted(pops, reverse=True) and len(pops) == 5
    assert rec.recommend(["zzz"], k=3).source == "popular"
    out = rec.to_json(res)
    assert set(out[0]) == {"item_id", "title", "score", *PARTS, "source"}
    json.dumps(out)


def test_long_histories_use_the_last_max_len_items(saved):
    _, path = saved
    rec = Recommender.load(path)
    long = [str(i % 60) for i in range(45)]
    res = rec.recommend(long, k=3)
    assert res.truncated == 25 and len(res.used_history) == 20
    # Items clicked before the model's window are still excluded from the recommendations.
    everything = rec.recommend(long, k=len(rec.item_ids))
    assert not set(long) & {it["item_id"] for it in everything.items}
    assert len(everything.items) == len(rec.item_ids) - len(set(long) & set(rec.item_ids))


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


def test_popular_items_rank_by_count_and_skip_excluded() -> None:
    got = popular_items(["a", "b", "c", "d"], ["A", "B", "C", "D"], np.array([3.0, 8.0, 3.0, 1.0]), 2, {"b"})
    assert [it["item_id"] for it in got] == ["a", "c"]  # ties keep catalogue order
    assert got[0]["score"] == pytest.approx(3 / 8) and all(got[0][p] == 0.0 for p in PARTS)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_a_faiss_index_serves_the_exact_top_k_with_the_same_attribution(saved, kind):
    from sicsrec.serve.index import IndexConfig

    _, path = saved
    exact = Recommender.load(path).recommend(["3", "4", "5", "6"], k=8)
    approx = Recommender.load(path, index=IndexConfig(kind=kind)).recommend(["3", "4", "5", "6"], k=8)
    assert [it["item_id"] for it in approx.items] == [it["item_id"] for it in exact.items]  # tiny catalogue: exact
    for a, e in zip(approx.items, exact.items):
        assert all(math.isclose(a[p], e[p], abs_tol=1e-5) for p in ("score", *PARTS))
