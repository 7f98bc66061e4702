"""Item indexes return the exact top-k (flat) or a high-recall approximation (IVF, HNSW)."""

import numpy as np
import pytest

from sicsrec.serve.index import IndexConfig, ItemIndex, recall_at_k


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = rng.normal(size=(50, 32)).astype(np.float32)
    return x, q


def test_exact_matches_a_brute_force_argsort(data):
    x, q = data
    scores, ids = ItemIndex(x).search(q, 10)
    ref = np.argsort(-(q @ x.T), axis=1)[:, :10]
    assert (ids == ref).all()
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


@pytest.mark.parametrize("kind,min_recall", [("flat", 1.0), ("ivf", 0.8), ("hnsw", 0.9)])
def test_faiss_indexes_recall_against_exact(data, kind, min_recall):
    x, q = data
    exact = ItemIndex(x).search(q, 10)[1]
    approx = ItemIndex(x, IndexConfig(kind=kind, nlist=64, nprobe=32)).search(q, 10)[1]
    assert recall_at_k(approx, exact) >= min_recall


def test_unknown_kind_is_a_clear_error(data):
    with pytest.raises(ValueError, match="unknown index kind"):
        ItemIndex(data[0], IndexConfig(kind="lsh"))
