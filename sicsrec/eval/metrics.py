"""HR@k and NDCG@k from full-ranking scores (one relevant item per query).

Ties count against the target (the pessimistic rank): an item scoring exactly the target's
score ranks above it. A model that scores every item alike (a dead layer, a constant output)
then ranks each target last instead of first, so it can never look perfect or be kept by early
stopping; popularity, which ties for most users, is not flattered either.
"""

from __future__ import annotations

import torch

KS = (5, 10)
METRICS = tuple(f"{m}@{k}" for m in ("hr", "ndcg") for k in KS)
TIE_RULE = "pessimistic: rank = 1 + the number of other items scoring >= the target"


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of each target among all items: the number of OTHER items scoring >= the target
    (ties against the target). A NaN target score (a diverged model) ranks last, so it is never a hit."""
    t = scores.gather(1, targets[:, None])  # (B, 1)
    ranks = (scores >= t).sum(dim=1) - 1  # (B,): the target itself always satisfies >=
    return torch.where(torch.isnan(t[:, 0]), torch.full_like(ranks, scores.shape[1]), ranks)


def ndcg_per_user(ranks: torch.Tensor, k: int) -> torch.Tensor:
    """(U,) NDCG@k of each user: 1/log2(rank + 2) when the 0-based rank is below k, else 0."""
    ranks = ranks.double()
    return torch.where(ranks < k, 1.0 / torch.log2(ranks + 2.0), torch.zeros_like(ranks))


def metrics_from_ranks(ranks: torch.Tensor, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """HR@k = P(rank < k); NDCG@k = mean(1/log2(rank + 2) if rank < k)."""
    ranks = ranks.double()
    out: dict[str, float] = {}
    for k in ks:
        hit = ranks < k
        out[f"hr@{k}"] = float(hit.double().mean())
    for k in ks:
        out[f"ndcg@{k}"] = float(ndcg_per_user(ranks, k).mean())
    return out
