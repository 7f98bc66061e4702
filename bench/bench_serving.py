"""Recommend latency and memory at 2k (real demo checkpoint), 100k and 1M items (synthetic catalogues):
exact scoring vs faiss flat / IVF / HNSW, recall@10 against exact, the model's forward pass included.

    python bench/bench_serving.py [--sizes 100000,1000000] [--queries 200] [--threads 2]

Prints a markdown table; no asserts. The floor is the time to read the item table once per query
at the machine's measured memory bandwidth.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sicsrec.config import ModelConfig  # noqa: E402
from sicsrec.model import SICSRec  # noqa: E402
from sicsrec.serve import Recommender  # noqa: E402
from sicsrec.serve.index import IndexConfig, ItemIndex, recall_at_k  # noqa: E402


def memory_bandwidth_gbs() -> float:
    """Read bandwidth: best of 5 sums over a 512 MB array."""
    x = np.ones(128 * 1024 * 1024, dtype=np.float32)
    best = min(_timed(lambda: x.sum()) for _ in range(5))
    return x.nbytes / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def synthetic_vectors(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Unit vectors from a mixture of 1,000 Gaussian clusters (trained item tables are clustered)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(1000, d)).astype(np.float32)
    x = centers[rng.integers(0, 1000, n)] + 0.5 * rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def user_query_fn(model: SICSRec, n_items: int, rng: np.random.Generator):
    """One history -> one user vector through the full SICSRec forward pass."""
    def query() -> np.ndarray:
        hist = torch.as_tensor(rng.integers(1, n_items + 1, 20))[None]
        with torch.no_grad():
            return model.user_vectors(hist, torch.tensor([20])).user.numpy()
    return query


def bench_catalogue(label: str, vectors: np.ndarray, query, n_queries: int, kinds: list[str], bw: float) -> list[str]:
    rows = []
    qs = [query() for _ in range(n_queries)]
    exact_ids = ItemIndex(vectors).search(np.concatenate(qs), 10)[1]
    floor_ms = vectors.nbytes / (bw * 1e9) * 1e3
    for kind in kinds:
        t0 = time.perf_counter()
        nlist = int(4 * np.sqrt(len(vectors)))
        index = ItemIndex(vectors, IndexConfig(kind=kind, nlist=nlist, nprobe=max(8, nlist // 64)))
        build_s = time.perf_counter() - t0
        lat = []
        for _ in range(n_queries):
            t = time.perf_counter()
            index.search(query(), 10)  # a recommend call: the model's forward pass + top-10
            lat.append((time.perf_counter() - t) * 1e3)
        lat_a = np.asarray(lat)
        rec = recall_at_k(index.search(np.concatenate(qs), 10)[1], exact_ids)  # same queries as exact
        med, p95 = np.median(lat_a), np.percentile(lat_a, 95)
        rows.append(f"| {label} | {kind} | {med:.2f} | {p95:.2f} | {rec:.3f} | {build_s:.1f} | "
                    f"{vectors.nbytes / 2**20:.0f} | {floor_ms:.2f} | {med / floor_ms:.1f}x |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checkpoint", default="checkpoints/demo/checkpoints/sicsrec")
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kinds", default="exact,flat,ivf,hnsw")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    kinds = args.kinds.split(",")
    bw = memory_bandwidth_gbs()
    print(f"threads={args.threads} memory read bandwidth ~ {bw:.1f} GB/s\n")
    print("| catalogue | index | median ms | p95 ms | recall@10 | build s | item table MB | floor ms | median/floor |")
    print("|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    if Path(args.checkpoint).is_dir():
        rec = Recommender.load(args.checkpoint)
        vectors = rec.embeddings("id")
        bench_catalogue(f"{len(vectors):,} (demo)", vectors, user_query_fn(rec.model, len(vectors), rng),
                        args.queries, kinds, bw)
    for n in (int(s) for s in args.sizes.split(",") if s):
        cfg = ModelConfig()
        model = SICSRec(cfg, n, text_dim=384).eval()
        vectors = synthetic_vectors(n, cfg.hidden)
        bench_catalogue(f"{n:,} (synthetic)", vectors, user_query_fn(model, n, rng), args.queries, kinds, bw)
        del model


if __name__ == "__main__":
    main()
