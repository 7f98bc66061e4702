"""Training batches: every window once per epoch, about `batch_size` targets each; length pools cut
the padded positions without dropping or repeating a window."""

from __future__ import annotations

import torch

from sicsrec.train.trainer import padded_width, target_batches


def _windows(n: int = 3000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Short-sequence data like NineRec's: most windows hold 1-8 targets, a few are full (50)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.where(torch.rand(n, generator=g) < 0.05, 50, torch.randint(1, 9, (n,), generator=g))
    return lengths.clone(), lengths  # one target per position


def _positions(batches: list[torch.Tensor], lengths: torch.Tensor) -> int:
    return sum(len(b) * padded_width(int(lengths[b].max()), 50) for b in batches)


def test_every_window_once_and_batches_near_the_target_count() -> None:
    n_targets, lengths = _windows()
    for pool in (0, 4):
        batches = target_batches(n_targets, 256, torch.Generator().manual_seed(1), lengths, pool)
        assert sorted(torch.cat(batches).tolist()) == list(range(len(lengths)))
        sizes = [int(n_targets[b].sum()) for b in batches]
        assert all(s <= 256 + 50 for s in sizes) and sum(sizes) == int(n_targets.sum())


def test_length_pools_cut_padding_and_stay_shuffled() -> None:
    n_targets, lengths = _windows()
    random = target_batches(n_targets, 256, torch.Generator().manual_seed(1), lengths, 0)
    pooled = target_batches(n_targets, 256, torch.Generator().manual_seed(1), lengths, 4)
    assert _positions(pooled, lengths) < 0.6 * _positions(random, lengths)
    widths = [int(lengths[b].max()) for b in pooled]
    assert widths != sorted(widths) and widths != sorted(widths, reverse=True)  # batch order is shuffled
    again = target_batches(n_targets, 256, torch.Generator().manual_seed(1), lengths, 4)
    assert all(torch.equal(a, b) for a, b in zip(pooled, again))  # seeded
