"""bench/cold_items.py's protocol: no cold item reaches training, cold targets are kept and ranked among all items,
and the paired comparison pools the cold users of every seed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sicsrec.data.split import build_split
from tests.helpers import synthetic_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))  # bench/ is a folder of scripts
import cold_items


@pytest.mark.parametrize("seed", [0, 1])
def test_cold_items_never_reach_training_and_stay_as_targets(seed: int) -> None:
    ds = synthetic_dataset(n_users=120, n_items=50, seed=seed)
    cold_ds, cold = cold_items.cold_dataset(ds, 0.2, seed)
    inter = cold_ds.interactions
    from_end = inter.groupby("user_id", sort=False).cumcount(ascending=False)
    assert cold and not inter[inter["item_id"].isin(cold) & (from_end >= 2)].shape[0]  # only as the last two
    assert inter.groupby("user_id").size().min() >= 3
    split = build_split(cold_ds, max_len=20, window_stride=10)
    full, train, w = cold_items.warm_first(split, cold)
    # warm items first, cold ones after: the same items, renumbered
    assert sorted(map(str, full.item_ids)) == sorted(map(str, split.item_ids))
    assert {str(i) for i in full.item_ids[w:]} == cold and len(train.item_ids) == w
    assert int(train.train_inputs.max()) <= w and int(train.train_targets.max()) <= w
    assert bool((train.valid.targets <= w).all())  # early stopping sees warm targets only
    # every test user keeps their target: the cold ones are ranked among all items
    old_ids, new_ids = split.item_ids[split.test.targets - 1], full.item_ids[full.test.targets - 1]
    assert list(map(str, old_ids)) == list(map(str, new_ids)) and bool((full.test.targets > w).any())


def test_the_paired_comparison_pools_the_cold_users_of_every_seed() -> None:
    def seed_ranks(bridge: list[int], random: list[int]) -> dict:
        kept = dict.fromkeys(cold_items.KEPT_RANKS, random) | {"sicsrec+bridge": bridge}
        return {"cold_ranks": kept}

    # two seeds: the bridge hits 2 of 3 and 1 of 2 cold users in its top 10, the control none
    per_seed = {2025: seed_ranks([0, 4, 50], [30, 40, 50]), 2026: seed_ranks([9, 10], [99, 100]), 2027: {}}
    out = cold_items.paired(per_seed)
    assert out["seeds"] == 2
    hr = out["sicsrec+bridge vs sicsrec+random"]["hr@10"]
    assert hr["users"] == 5 and hr["mean_diff"] == pytest.approx(3 / 5) and hr["diff_low"] >= 0
    ndcg = out["sicsrec+bridge vs pop"]["ndcg@10"]
    expected = np.mean([1 / np.log2(r + 2) if r < 10 else 0 for r in (0, 4, 50, 9, 10)])
    assert ndcg["mean_a"] == pytest.approx(expected) and ndcg["mean_b"] == 0
    assert cold_items.paired({2025: {}}) == {}  # seeds written before ranks were kept: nothing to pair


def test_results_json_keeps_lists_on_one_line_and_reads_back() -> None:
    stored = {"per_seed": {"2025": {"cold_ranks": {"pop": [3, 1200, 7]}, "mean": -0.5e-3, "v": [0.1, 2e-05]}}}
    text = cold_items.compact_json(stored)
    assert json.loads(text) == stored and "[3, 1200, 7]" in text and "[0.1, 2e-05]" in text
    assert torch.equal(
        torch.as_tensor(json.loads(text)["per_seed"]["2025"]["cold_ranks"]["pop"]), torch.tensor([3, 1200, 7])
    )
