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

from sicsrec.config import ModelConfig
from sicsrec.model import SICSRec
from sicsrec.serve import Recommender
from sicsrec.serve.index import IndexConfig, ItemIndex, recall_at_k


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


def user_query_fn(model: SICSRec, vectors: np.ndarray, rng: np.random.Generator, mix: bool):
    """One 20-item history -> one user vector through the full SICSRec forward pass.

    An untrained model's output is a random direction, unlike a trained model's, which points at
    items like the history; with `mix` the query is the normalised mean of the history's item
    vectors plus the model output (the forward pass is still paid), the realistic case for an index.
    """

    def query() -> np.ndarray:
        rows = rng.integers(0, len(vectors), 20)
        hist = torch.as_tensor(rows + 1)[None]  # (1, 20) item indices (0 = padding)
        with torch.no_grad():
            u = model.user_vectors(hist, torch.tensor([20])).user.numpy()  # (1, d)
        if mix:
            u = vectors[rows].mean(axis=0, keepdims=True) + 0.1 * u / np.linalg.norm(u)
        return (u / np.linalg.norm(u)).astype(np.float32)

    return query


def index_configs(n: int, kinds: list[str]) -> list[tuple[str, IndexConfig]]:
    """The settings tried per catalogue: exact, flat, IVF at two probe counts, HNSW at two breadths."""
    nlist = int(4 * np.sqrt(n))
    out = []
    for kind in kinds:
        if kind == "ivf":
            out += [
                (f"ivf nprobe={p}", IndexConfig("ivf", nlist=nlist, nprobe=p))
                for p in (max(8, nlist // 64), max(16, nlist // 16))
            ]
        elif kind == "hnsw":
            out += [(f"hnsw ef={e}", IndexConfig("hnsw", ef_search=e)) for e in (128, 512)]
        else:
            out.append((kind, IndexConfig(kind)))
    return out


def index_mb(index: ItemIndex) -> float:
    """Memory of the search structure: the serialised faiss index, or the raw table for exact."""
    if index.cfg.kind == "exact":
        return index.vectors.nbytes / 2**20
    import faiss

    return faiss.serialize_index(index.faiss).nbytes / 2**20


def bench_catalogue(
    label: str, vectors: np.ndarray, model: SICSRec, n_queries: int, kinds: list[str], bw: float, mix: bool
) -> list[str]:
    rows = []
    query = user_query_fn(model, vectors, np.random.default_rng(0), mix)
    qs = np.concatenate([query() for _ in range(n_queries)])
    exact_ids = ItemIndex(vectors).search(qs, 10)[1]
    floor_ms = vectors.nbytes / (bw * 1e9) * 1e3
    for name, cfg in index_configs(len(vectors), kinds):
        t0 = time.perf_counter()
        index = ItemIndex(vectors, cfg)
        build_s = time.perf_counter() - t0
        lat = []
        for _ in range(n_queries):
            t = time.perf_counter()
            index.search(query(), 10)  # a recommend call: the model's forward pass + top-10
            lat.append((time.perf_counter() - t) * 1e3)
        lat_a = np.asarray(lat)
        rec = recall_at_k(index.search(qs, 10)[1], exact_ids)  # same queries as exact
        med, p95 = np.median(lat_a), np.percentile(lat_a, 95)
        rows.append(
            f"| {label} | {name} | {med:.2f} | {p95:.2f} | {rec:.3f} | {build_s:.1f} | "
            f"{index_mb(index):.0f} | {floor_ms:.2f} | {med / floor_ms:.1f}x |"
        )
        print(rows[-1], flush=True)
        del index
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checkpoint", default="checkpoints/demo/checkpoints/sicsrec")
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kinds", default="exact,flat,ivf,hnsw")
    ap.add_argument(
        "--random-queries",
        action="store_true",
        help="also time an untrained model's raw (random-direction) queries: the worst case for an index",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    kinds = args.kinds.split(",")
    bw = memory_bandwidth_gbs()
    print(f"threads={args.threads} memory read bandwidth ~ {bw:.1f} GB/s\n")
    print("| catalogue | index | median ms | p95 ms | recall@10 | build s | index MB | floor ms | median/floor |")
    print("|---|---|---|---|---|---|---|---|---|")
    if Path(args.checkpoint).is_dir():
        rec = Recommender.load(args.checkpoint)
        vectors = rec.embeddings("id")
        bench_catalogue(f"{len(vectors):,} (demo)", vectors, rec.model, args.queries, kinds, bw, mix=False)
    for n in (int(s) for s in args.sizes.split(",") if s):
        cfg = ModelConfig()
        model = SICSRec(cfg, n, text_dim=384).eval()
        vectors = synthetic_vectors(n, cfg.hidden)
        for mix in (False, True) if args.random_queries else (True,):
            label = f"{n:,} (synthetic{', random queries' if not mix else ''})"
            bench_catalogue(label, vectors, model, args.queries, kinds, bw, mix)
        del model


if __name__ == "__main__":
    main()
