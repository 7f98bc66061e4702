"""Full-ranking evaluation, the same code for every model (and for the popularity baseline)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from sicsrec.data.split import EvalSet, Split
from sicsrec.eval.metrics import metrics_from_ranks, target_ranks
from sicsrec.model.base import SeqRecModel

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def score_batches(
    score_fn: ScoreFn, data: EvalSet, batch_size: int = 2048, device: torch.device | str = "cpu"
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(scores (b, N+1), targets (b,)) for `batch_size` users at a time: full ranking in bounded memory."""
    for s in range(0, data.targets.numel(), batch_size):
        lengths = data.lengths[s : s + batch_size]
        hist = data.history[s : s + batch_size, : int(lengths.max())].to(device)  # trim to the longest
        yield score_fn(hist, lengths.to(device)), data.targets[s : s + batch_size].to(device)


def rank_all(
    score_fn: ScoreFn, data: EvalSet, batch_size: int = 2048, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Ranks of every query's target among all N items, scored in batches of `batch_size` users."""
    return torch.cat(
        [target_ranks(scores, targets).cpu() for scores, targets in score_batches(score_fn, data, batch_size, device)]
    )


def user_ranks(model: SeqRecModel, data: EvalSet, batch_size: int = 2048) -> torch.Tensor:
    """(U,) 0-based rank of every user's target under `model` (eval mode; the previous mode is restored)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            return rank_all(model.score, data, batch_size, device)
    finally:
        model.train(was_training)


def evaluate_model(model: SeqRecModel, data: EvalSet, batch_size: int = 2048) -> dict[str, float]:
    """HR/NDCG@5/10 of a model on one EvalSet."""
    return metrics_from_ranks(user_ranks(model, data, batch_size))


def popularity_scores(split: Split) -> ScoreFn:
    """Score every item by its interaction count in the training parts (the 'does it learn' floor)."""
    pop = split.item_counts.double().clone()
    pop[0] = float("-inf")

    def score(hist: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return pop.to(hist.device).expand(hist.shape[0], -1)

    return score


def evaluate_popularity(split: Split) -> dict[str, dict[str, float]]:
    """Valid and test metrics of ranking by training popularity, through the same evaluator."""
    fn = popularity_scores(split)
    return {name: metrics_from_ranks(rank_all(fn, getattr(split, name))) for name in ("valid", "test")}
