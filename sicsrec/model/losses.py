"""Losses of stage B: full-softmax cross-entropy and the content-aware contrastive loss (L_CL)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


def _ce_chunk(user: torch.Tensor, items: torch.Tensor, targets: torch.Tensor, scale: float) -> torch.Tensor:
    logits = (user @ items.T) * scale  # (m, N+1)
    logits[:, 0] = float("-inf")  # the padding item is never a candidate
    return F.cross_entropy(logits, targets, reduction="sum")


def full_softmax_ce(
    user: torch.Tensor, items: torch.Tensor, targets: torch.Tensor, scale: float = 1.0, chunk: int = 4096
) -> torch.Tensor:
    """Mean CE of user·item*scale over ALL items; rows are processed in chunks (recomputed in
    backward) so the (M, N) logits never all live at once on large catalogues."""
    m = user.shape[0]
    if m <= chunk:
        return _ce_chunk(user, items, targets, scale) / m
    total = user.new_zeros(())
    for s in range(0, m, chunk):
        total = total + checkpoint(
            _ce_chunk, user[s : s + chunk], items, targets[s : s + chunk], scale, use_reentrant=False
        )
    return total / m


def content_infonce(
    user: torch.Tensor,
    content: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    remove_false_negatives: bool = True,
) -> torch.Tensor:
    """In-batch InfoNCE between each sample's user vector and its target's content vector.

    Negatives are the other samples' target content vectors. Samples sharing a target are false
    negatives: removed from the denominator (decision 7), or kept with logit 0 (the reference).
    Computed over the batch's unique targets with log-count weights, which equals the (M, M)
    formulation exactly but costs (M, U) with U <= number of items.
    user: (M, d) L2-normalised; content: (N+1, d) L2-normalised; targets: (M,) item indices.
    """
    uniq, inv, counts = torch.unique(targets, return_inverse=True, return_counts=True)
    logits = (user @ content[uniq].T) / temperature  # (M, U)
    weights = counts.to(logits.dtype).log().expand_as(logits).clone()  # each unique target counted once per sample
    own = F.one_hot(inv, num_classes=uniq.numel()).bool()
    weights[own] = 0.0  # the positive itself appears once
    weighted = logits + weights
    if not remove_false_negatives:
        # Reference behaviour: the (count-1) same-target entries stay in the denominator with logit 0.
        n_false = (counts[inv] - 1).to(logits.dtype)
        extra = torch.where(n_false > 0, n_false.clamp_min(1).log(), torch.full_like(n_false, float("-inf")))
        weighted = torch.cat([weighted, extra[:, None]], dim=1)
    return F.cross_entropy(weighted, inv)


def embedding_l2(*tables: torch.Tensor) -> torch.Tensor:
    """The spec's ||E|| + ||T|| + ||V||: sum of the whole tables' Frobenius norms (as the reference)."""
    return sum(t.norm(p=2) for t in tables)
