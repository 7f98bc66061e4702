"""How far stage A moved a dataset's item features, and how strong its mined pairs are as a signal.

    python bench/feature_shift.py --data ../shared/data/ninerec_bili_text/Bili_Dance \
        --pairs DIR/pairs/pairs.csv [--source aligned:<hash>] [--modality text]

Reads the raw and the aligned features from the feature cache (no encoding; run `align` first) and
prints: each item's cosine between its raw and aligned vector, the overlap of its 10 nearest
neighbours before and after, and the mean cosine of the mined pairs against random item pairs in
both spaces (how much closer than chance the LLM's pairs are). The neighbour overlap builds n x n
similarities: meant for catalogues of up to a few tens of thousands of items. Prints markdown; no asserts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sicsrec.config import DataConfig  # noqa: E402
from sicsrec.features.extract import extract_features  # noqa: E402
from sicsrec.run.prepare import load_data  # noqa: E402
from sicsrec.stage_a.align import resolve_aligned_source  # noqa: E402


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn(x: np.ndarray, k: int = 10) -> np.ndarray:
    """Indices of each row's k most cosine-similar other rows (x unit-norm)."""
    s = x @ x.T  # (n, n)
    np.fill_diagonal(s, -np.inf)
    return np.argpartition(-s, k, axis=1)[:, :k]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--pairs", required=True, help="pairs.csv written by mine-pairs")
    ap.add_argument("--source", default=None, help="aligned source [the latest for this dataset]")
    ap.add_argument("--modality", choices=["text", "image"], default="text")
    ap.add_argument("--random-pairs", type=int, default=20000)
    args = ap.parse_args()

    items = load_data(DataConfig(path=args.data)).items
    source = args.source or resolve_aligned_source(items)
    use_images = args.modality == "image"
    raw, aligned = (
        getattr(extract_features(items, source=s, use_images=use_images, progress=False), args.modality)
        for s in ("raw", source)
    )
    r, a = unit(raw), unit(aligned)
    index = {i: j for j, i in enumerate(items["item_id"].astype(str))}
    pairs = pd.read_csv(args.pairs, dtype=str)
    known = pairs["target_id"].isin(index) & pairs["pair_id"].isin(index)
    i, j = pairs.loc[known, "target_id"].map(index).to_numpy(), pairs.loc[known, "pair_id"].map(index).to_numpy()
    rnd = np.random.default_rng(0).integers(0, len(r), (args.random_pairs, 2))
    cos = lambda x, p, q: float((x[p] * x[q]).sum(1).mean())
    overlap = np.mean([len(np.intersect1d(u, v)) / u.size for u, v in zip(knn(r), knn(a))])

    print(f"## {args.modality} features of {len(items):,} items: raw vs {source}")
    print(f"- mean cos(raw_i, aligned_i): {float((r * a).sum(1).mean()):.3f}; 10-NN overlap: {overlap:.1%}")
    print(f"- {known.sum():,} pairs over {len(np.union1d(i, j)):,} items\n")
    print("| space | mined pairs, mean cos | random pairs, mean cos | margin |\n|---|---|---|---|")
    for name, x in (("raw", r), ("aligned", a)):
        pc, rc = cos(x, i, j), cos(x, rnd[:, 0], rnd[:, 1])
        print(f"| {name} | {pc:.3f} | {rc:.3f} | {pc - rc:+.3f} |")


if __name__ == "__main__":
    main()
