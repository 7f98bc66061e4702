"""HR/NDCG on hand-computed cases, and the evaluator on a model with known scores."""

import math

import torch

from sicsrec.eval.evaluate import evaluate_popularity
from sicsrec.eval.metrics import metrics_from_ranks, target_ranks
from tests.helpers import synthetic_split


def test_ranks_count_strictly_higher_scores():
    scores = torch.tensor([[float("-inf"), 0.9, 0.5, 0.7], [float("-inf"), 0.1, 0.2, 0.3]])
    assert target_ranks(scores, torch.tensor([2, 3])).tolist() == [2, 0]


def test_a_nan_target_score_ranks_last_not_first():
    # A diverged model scores NaN: NaN > x is False for every x, so a plain count would rank it first (a hit).
    scores = torch.linspace(0, 1, 12).repeat(2, 1)  # (2, 12): item 11 scores highest
    scores[0] = float("nan")
    ranks = target_ranks(scores, torch.tensor([11, 11]))
    assert ranks.tolist() == [12, 0]
    assert metrics_from_ranks(ranks)["hr@10"] == 0.5


def test_hand_computed_hr_and_ndcg():
    ranks = torch.tensor([0, 4, 5, 9, 10])  # 0-based
    m = metrics_from_ranks(ranks)
    assert m["hr@5"] == 2 / 5 and m["hr@10"] == 4 / 5
    assert math.isclose(m["ndcg@5"], (1 + 1 / math.log2(6)) / 5)
    assert math.isclose(m["ndcg@10"], (1 + 1 / math.log2(6) + 1 / math.log2(7) + 1 / math.log2(11)) / 5)


def test_popularity_never_ranks_padding_and_is_bounded():
    sp = synthetic_split()
    res = evaluate_popularity(sp)
    for part in ("valid", "test"):
        assert set(res[part]) == {"hr@5", "hr@10", "ndcg@5", "ndcg@10"}
        assert 0.0 <= res[part]["ndcg@5"] <= res[part]["hr@5"] <= res[part]["hr@10"] <= 1.0
