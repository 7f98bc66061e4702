"""Full-ranking evaluation, the same code for every model (and for the popularity baseline).

A user batch's (b, N+1) score matrix is the fast path while it fits `memory_mb`; above it the catalogue is
ranked chunk by chunk with a running count, so memory is b x chunk whatever N is, with the same ranks.
Under torchrun each rank ranks its share of the users and the ranks are gathered, so every rank (and a
single process) computes the metrics from the same numbers.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import torch

from sicsrec import dist
from sicsrec.data.split import EvalSet, Split
from sicsrec.eval.metrics import metrics_from_ranks, target_ranks
from sicsrec.model.base import SeqRecModel

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# (start, stop) -> (b, stop - start): one user batch's scores of items start..stop-1 (item 0, padding: -inf)
ChunkFn = Callable[[int, int], torch.Tensor]
# (history, lengths) -> the ChunkFn of that user batch
BatchScorer = Callable[[torch.Tensor, torch.Tensor], ChunkFn]

# Bytes of score matrices one user batch may hold before ranking goes chunk by chunk: 2048 users x ~29k
# items at float32 (9 bytes per score, below). Smaller catalogues keep the one-matrix fast path.
EVAL_MEMORY_MB = 512.0
MIN_CHUNK = 1024  # items per chunk at least: a tiny budget still ranks in few, BLAS-sized products


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


def item_chunk(batch_size: int, n_cols: int, score_bytes: int, memory_mb: float = EVAL_MEMORY_MB) -> int:
    """Items ranked at once: all `n_cols` when a batch's score matrices fit `memory_mb`, else a chunk that does."""
    column = batch_size * (2 * score_bytes + 1)  # per item: the product, its scaled copy, the bool mask
    if column * n_cols <= memory_mb * 2**20:
        return n_cols
    return max(MIN_CHUNK, int(memory_mb * 2**20) // column)


def chunk_bounds(n_cols: int, chunk: int) -> list[int]:
    """Boundaries of ceil(n_cols / chunk) near-equal chunks (no tiny tail: every product stays BLAS-sized)."""
    k = -(-n_cols // chunk)
    return [n_cols * i // k for i in range(k + 1)]


def chunked_target_ranks(scores: ChunkFn, n_cols: int, targets: torch.Tensor, chunk: int) -> torch.Tensor:
    """`target_ranks` (pessimistic ties, NaN last) without the (b, n_cols) matrix: a running count per chunk.

    Each target's score is read from the very chunk product it is then compared with, so the target
    always ties itself and ties with other items are kept bit for bit. That costs one extra product per
    chunk holding a target of the batch (<= 2x the matmuls); the counting pass is then exact."""
    bounds = chunk_bounds(n_cols, chunk)
    owner = torch.bucketize(targets, torch.tensor(bounds[1:-1], device=targets.device), right=True)  # (b,) chunk
    target_score: torch.Tensor | None = None
    for c in owner.unique().tolist():
        rows = torch.nonzero(owner == c).flatten()
        picked = scores(bounds[c], bounds[c + 1])[rows, targets[rows] - bounds[c]]
        if target_score is None:
            target_score = torch.empty(targets.shape[0], dtype=picked.dtype, device=picked.device)
        target_score[rows] = picked
    assert target_score is not None, "an empty user batch"
    t = target_score[:, None]  # (b, 1)
    ranks = torch.full_like(targets, -1)  # the target itself is counted once below
    for a, b in itertools.pairwise(bounds):
        ranks += (scores(a, b) >= t).sum(dim=1)
    return torch.where(torch.isnan(target_score), torch.full_like(ranks, n_cols), ranks)


def rank_chunked(
    scorer: BatchScorer,
    n_cols: int,
    data: EvalSet,
    chunk: int,
    batch_size: int = 2048,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Ranks of every query's target among all items, `batch_size` users by `chunk` items at a time."""
    out = []
    for s in range(0, data.targets.numel(), batch_size):
        lengths = data.lengths[s : s + batch_size]
        hist = data.history[s : s + batch_size, : int(lengths.max())].to(device)  # trim to the longest
        targets = data.targets[s : s + batch_size].to(device)
        out.append(chunked_target_ranks(scorer(hist, lengths.to(device)), n_cols, targets, chunk).cpu())
    return torch.cat(out)


def model_scorer(model: SeqRecModel) -> BatchScorer:
    """`model.score` by item chunks: the item table once per evaluation, user vectors once per batch."""
    table, scale = model.item_table(), model.logit_scale

    def for_batch(hist: torch.Tensor, lengths: torch.Tensor) -> ChunkFn:
        user = model.user_vectors(hist, lengths).user  # (b, d)

        def chunk(start: int, stop: int) -> torch.Tensor:
            scores = (user @ table[start:stop].T) * scale  # (b, stop - start), as model.score computes it
            if start == 0:
                scores[:, 0] = float("-inf")
            return scores

        return chunk

    return for_batch


def shard_of(data: EvalSet) -> EvalSet:
    """This rank's contiguous share of the users (all of them outside torchrun)."""
    part = dist.shard(data.targets.numel())
    return EvalSet(data.history[part], data.lengths[part], data.targets[part])


def user_ranks(
    model: SeqRecModel, data: EvalSet, batch_size: int = 2048, memory_mb: float = EVAL_MEMORY_MB
) -> torch.Tensor:
    """(U,) 0-based rank of every user's target under `model` (eval mode; the previous mode is restored).

    Chunked above `memory_mb`; under torchrun each rank ranks its share and all ranks get every rank."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    n_cols = model.n_items + 1
    score_bytes = next(model.parameters()).element_size()
    chunk = item_chunk(min(batch_size, data.targets.numel()), n_cols, score_bytes, memory_mb)
    mine = shard_of(data)
    try:
        with torch.no_grad():
            if mine.targets.numel() == 0:
                ranks = torch.zeros(0, dtype=torch.long)
            elif chunk >= n_cols:
                ranks = rank_all(model.score, mine, batch_size, device)
            else:
                ranks = rank_chunked(model_scorer(model), n_cols, mine, chunk, batch_size, device)
    finally:
        model.train(was_training)
    return dist.all_gather_rows(ranks)


def evaluate_model(
    model: SeqRecModel, data: EvalSet, batch_size: int = 2048, memory_mb: float = EVAL_MEMORY_MB
) -> dict[str, float]:
    """HR/NDCG@5/10 of a model on one EvalSet."""
    return metrics_from_ranks(user_ranks(model, data, batch_size, memory_mb))


def popularity_scores(split: Split) -> ScoreFn:
    """Score every item by its interaction count in the training parts (the 'does it learn' floor)."""
    pop = _popularity(split)

    def score(hist: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return pop.to(hist.device).expand(hist.shape[0], -1)

    return score


def _popularity(split: Split) -> torch.Tensor:
    """(N+1,) training interaction counts as scores, padding at -inf."""
    pop = split.item_counts.double().clone()
    pop[0] = float("-inf")
    return pop


def popularity_ranks(
    split: Split, data: EvalSet, batch_size: int = 2048, memory_mb: float = EVAL_MEMORY_MB
) -> torch.Tensor:
    """(U,) ranks under training popularity, chunked above `memory_mb` like a model's."""
    pop = _popularity(split)
    chunk = item_chunk(min(batch_size, data.targets.numel()), pop.numel(), pop.element_size(), memory_mb)
    if chunk >= pop.numel():
        return rank_all(popularity_scores(split), data, batch_size)

    def scorer(hist: torch.Tensor, lengths: torch.Tensor) -> ChunkFn:
        return lambda start, stop: pop[start:stop].expand(hist.shape[0], -1)

    return rank_chunked(scorer, pop.numel(), data, chunk, batch_size)


def evaluate_popularity(split: Split, memory_mb: float = EVAL_MEMORY_MB) -> dict[str, dict[str, float]]:
    """Valid and test metrics of ranking by training popularity, through the same evaluator."""
    return {
        name: metrics_from_ranks(popularity_ranks(split, getattr(split, name), memory_mb=memory_mb))
        for name in ("valid", "test")
    }
