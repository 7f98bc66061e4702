"""Encode speed of the content encoders on MovieLens titles and posters (prints titles/s, images/s).

Usage: python bench/bench_features.py [--n 200] [--threads T] [--batch-size 64] [--clip]
Reads ../shared/data/movielens_small_posters (relative to the repo root). --clip adds the
open_clip ViT-B-32 towers with random weights: their speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from sicsrec.features import extract_features, get_encoder, load_image  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "movielens_small_posters"


def timed(fn, *args, **kw) -> tuple[object, float]:
    """(result, seconds) of one call."""
    start = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - start


def main() -> None:
    """Run the benchmark and print one line per measurement."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--clip", action="store_true", help="also time CLIP ViT-B-32 (random weights)")
    args = ap.parse_args()
    if not (DATA / "items.csv").exists():
        sys.exit(f"data not found: {DATA}")
    if args.threads:
        torch.set_num_threads(args.threads)
    raw = pd.read_csv(DATA / "items.csv").head(args.n)
    items = pd.DataFrame(
        {
            "item_id": raw["movieId"].astype(str),
            "title": raw["title"],
            "text": raw["title"] + " | " + raw["genres"].str.replace("|", ", "),
            "category": raw["genres"].str.split("|").str[0],
            "image_path": [str(DATA / p) for p in raw["poster"]],
        }
    )
    texts = items["text"].tolist()
    images, t_decode = timed(lambda: [load_image(p) for p in items["image_path"]])
    n, bs = len(items), args.batch_size
    print(f"{n} MovieLens items, torch threads={torch.get_num_threads()}, batch size={bs}, cores={os.cpu_count()}")
    print(f"decode posters (PIL, main thread): {n / t_decode:8.1f} images/s")

    encoders = [("minilm", "text", {}), ("efficientnet-lite0", "image", {})]
    if args.clip:
        encoders += [("clip", "text", {"pretrained": None}), ("clip", "image", {"pretrained": None})]
    loaded = {}
    for name, modality, kw in encoders:
        enc, t_load = timed(get_encoder, name, modality=modality, **kw)
        batch = texts if modality == "text" else images
        enc.encode(batch[:8])  # warm-up
        _, t = timed(enc.encode, batch, batch_size=bs)
        unit = "titles/s" if modality == "text" else "images/s"
        print(f"{name:>18} {modality:<5} load {t_load:5.1f}s  encode {n / t:8.1f} {unit}")
        loaded[(name, modality)] = enc

    with tempfile.TemporaryDirectory() as cache_dir:
        text_enc, image_enc = loaded[("minilm", "text")], loaded[("efficientnet-lite0", "image")]
        _, t_cold = timed(
            extract_features, items, text_enc, image_enc, batch_size=bs, cache_dir=cache_dir, progress=False
        )
        _, t_hit = timed(extract_features, items, batch_size=bs, cache_dir=cache_dir, progress=False)
        print(f"extract_features minilm+efficientnet-lite0, cold (background decode): {n / t_cold:8.1f} items/s")
        print(f"extract_features cache hit (names, no model load): {t_hit * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
