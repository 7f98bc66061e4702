"""The serving API over saved checkpoints (attribution, influence, unknown ids, empty history, faiss)."""

import json
import math

import numpy as np
import pytest

from sicsrec.serve import PARTS, Recommender, popular_items, response


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
    cold = rec.recommend(["zzz"], k=3)
    assert cold.source == "cold_start" and "Cold start" in cold.message and cold.unknown == ["zzz"]
    out = response(res)
    assert set(out) == {"items", "source", "k", "used_ids", "unknown_ids", "warnings"}
    assert set(out["items"][0]) == {"item_id", "title", "score", *PARTS, "scored_by", "source"}
    assert out["unknown_ids"] == ["nope"] and out["used_ids"] == ["3"] and out["k"] == 5
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


def test_popular_items_rank_by_count_and_skip_excluded() -> None:
    got = popular_items(["a", "b", "c", "d"], ["A", "B", "C", "D"], np.array([3.0, 8.0, 3.0, 1.0]), 2, {"b"})
    assert [it["item_id"] for it in got] == ["a", "c"]  # ties keep catalogue order
    assert got[0]["score"] == pytest.approx(3 / 8) and all(got[0][p] == 0.0 for p in PARTS)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_a_faiss_index_serves_the_exact_top_k_with_the_same_attribution(saved, kind):
    from sicsrec.serve.index import IndexConfig

    _, path = saved
    exact = Recommender.load(path).recommend(["3", "4", "5", "6"], k=8)
    approx = Recommender.load(path, index=IndexConfig(kind=kind)).recommend(["3", "4", "5", "6"], k=8)
    assert [it["item_id"] for it in approx.items] == [it["item_id"] for it in exact.items]  # tiny catalogue: exact
    for a, e in zip(approx.items, exact.items):
        assert all(math.isclose(a[p], e[p], abs_tol=1e-5) for p in ("score", *PARTS))
