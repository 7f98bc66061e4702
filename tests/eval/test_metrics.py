"""HR/NDCG on hand-computed cases, ties against the target, and the evaluator on models with known scores."""

import math
from pathlib import Path

import torch

from sicsrec.checkpoint import item_table, load_checkpoint, save_checkpoint
from sicsrec.config import ModelConfig
from sicsrec.eval.evaluate import evaluate_model, evaluate_popularity
from sicsrec.eval.metrics import metrics_from_ranks, target_ranks
from sicsrec.train.two_step import build_model
from tests.helpers import synthetic_dataset, synthetic_split, synthetic_tables


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


def test_ties_count_against_the_target():
    scores = torch.tensor([[float("-inf"), 0.5, 0.5, 0.5, 0.1], [float("-inf"), 0.2, 0.9, 0.2, 0.2]])
    # row 0: two other items tie with the target -> rank 2; row 1: the target is alone on top -> rank 0
    assert target_ranks(scores, torch.tensor([2, 2])).tolist() == [2, 0]
    assert target_ranks(scores, torch.tensor([4, 1])).tolist() == [3, 3]  # below three, or tied with two + one above


def test_constant_scores_are_never_a_hit():
    scores = torch.zeros(6, 40)  # a dead model: every item alike
    scores[:, 0] = float("-inf")  # padding, as every model scores it
    m = metrics_from_ranks(target_ranks(scores, torch.arange(1, 7)))
    assert m == {"hr@5": 0.0, "hr@10": 0.0, "ndcg@5": 0.0, "ndcg@10": 0.0}


def test_an_all_zero_checkpoint_scores_nothing(tmp_path: Path):
    # Zeroed weights (a dead fusion layer and everything else) score every item alike: no hits under
    # the pessimistic rank, where counting only strictly higher scores gave HR@10 = 1.
    split = synthetic_split()
    model = build_model("sicsrec", ModelConfig(hidden=16, ffn=16, max_len=20), split, synthetic_tables(split))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    path = save_checkpoint(tmp_path / "zero", model, item_table(split, synthetic_dataset().items))
    loaded, _, _ = load_checkpoint(path)
    for part in ("valid", "test"):
        assert evaluate_model(loaded, getattr(split, part))["hr@10"] == 0.0
