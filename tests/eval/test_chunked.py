"""Chunked full ranking (bounded memory) gives exactly the ranks of the one-matrix path: ties, NaN and padding."""

import itertools

import pytest
import torch

from sicsrec.config import ModelConfig
from sicsrec.eval.evaluate import (
    MIN_CHUNK,
    chunk_bounds,
    chunked_target_ranks,
    evaluate_model,
    evaluate_popularity,
    item_chunk,
    model_scorer,
    rank_chunked,
    user_ranks,
)
from sicsrec.eval.metrics import target_ranks
from sicsrec.train.two_step import build_model
from tests.helpers import synthetic_split, synthetic_tables


def test_chunks_cover_the_catalogue_without_a_tiny_tail():
    bounds = chunk_bounds(10_001, 4096)
    sizes = [b - a for a, b in itertools.pairwise(bounds)]
    assert bounds[0] == 0 and bounds[-1] == 10_001 and max(sizes) - min(sizes) <= 1 and max(sizes) <= 4096


def test_the_budget_keeps_small_catalogues_on_the_fast_path():
    assert item_chunk(2048, 20_000, 4, memory_mb=512) == 20_000  # 2048 x 20k x 9 B = 352 MiB
    chunk = item_chunk(2048, 1_000_000, 4, memory_mb=512)
    assert MIN_CHUNK <= chunk < 1_000_000 and 2048 * chunk * 9 <= 512 * 2**20
    assert item_chunk(2048, 1_000_000, 4, memory_mb=0.001) == MIN_CHUNK


@pytest.mark.parametrize("chunk", [1, 7, 64, 333])
def test_many_ties_nan_and_padding_rank_alike(chunk: int):
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (64, 1000), generator=gen).float()  # four distinct values: ties everywhere
    scores[:, 0] = float("-inf")  # padding
    scores[3] = float("nan")  # a diverged user: every score NaN
    scores[5, 17] = float("nan")  # a NaN target score alone
    scores[6, 100:200] = float("nan")  # NaN among the other items
    targets = torch.randint(1, 1000, (64,), generator=gen)
    targets[5] = 17
    expected = target_ranks(scores, targets)
    got = chunked_target_ranks(lambda a, b: scores[:, a:b], 1000, targets, chunk)
    assert torch.equal(got, expected)
    assert got[3] == got[5] == 1000  # NaN targets rank last


@pytest.mark.parametrize("name", ["sasrec", pytest.param("sicsrec", marks=pytest.mark.slow)])
def test_a_real_model_ranks_alike_chunked_and_whole(name: str):
    split = synthetic_split(n_items=3000, n_users=120)
    cfg = ModelConfig(hidden=16, ffn=16, max_len=20)
    model = build_model(name, cfg, split, synthetic_tables(split)).eval()
    with torch.no_grad():  # clones of item 5: exact ties among real, non-integer scores
        model.id_encoder.item_emb.weight[10:400] = model.id_encoder.item_emb.weight[5]
    n_cols = split.n_items + 1
    hist, lengths = split.test.history[:50], split.test.lengths[:50]
    with torch.no_grad():
        assert torch.equal(model_scorer(model)(hist, lengths)(0, n_cols), model.score(hist, lengths))
        whole = user_ranks(model, split.test, batch_size=128)
        for chunk in (97, 1000):
            assert torch.equal(rank_chunked(model_scorer(model), n_cols, split.test, chunk, batch_size=128), whole)
    if name == "sasrec":  # its item table is the ID table: the clones tie exactly
        assert (whole[:, None] == whole[None, :]).sum() > whole.numel()
    # the evaluator chunks by itself under a small budget and reports the same metrics
    assert item_chunk(128, n_cols, 4, memory_mb=0.5) < n_cols
    assert evaluate_model(model, split.test, 128, memory_mb=0.5) == evaluate_model(model, split.test, 128)


def test_popularity_ties_rank_alike_chunked():
    split = synthetic_split(n_items=3000, n_users=300)  # most items share a handful of counts
    assert evaluate_popularity(split, memory_mb=0.5) == evaluate_popularity(split)
