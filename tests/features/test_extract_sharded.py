"""Feature extraction under torchrun: each of 2 gloo ranks encodes a slice of the items, the slices are gathered in
item order, rank 0 alone writes the one cache entry, and the features are those of a single process."""

import os
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch.multiprocessing as mp

from sicsrec import dist
from sicsrec.features import FeatureCache, extract_features

TITLES = [
    f"{w} ({1980 + i})"
    for i, w in enumerate(["Heat", "Casino", "Fargo", "Alien", "Big", "Se7en", "Jaws", "Rocky", "Ran", "Up", "Her"])
]


def items() -> pd.DataFrame:
    ids = [str(i + 1) for i in range(len(TITLES))]
    return pd.DataFrame({"item_id": ids, "title": TITLES, "text": TITLES, "image_path": ""})


def rank_main(rank: int, port: int, cache: str, out: str) -> None:
    """One rank as torchrun would start it: the env, the process group, then the library call."""
    os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1")
    os.environ["MASTER_PORT"] = str(port)
    import torch

    torch.set_num_threads(1)
    dist.init(torch.device("cpu"))
    feats = extract_features(items(), "minilm", None, use_images=False, cache_dir=cache, progress=False)
    np.save(Path(out) / f"text-{rank}.npy", feats.text)
    dist.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_ranks_extract_one_cache_entry_like_one_process(tmp_path: Path):
    mp.spawn(rank_main, args=(free_port(), str(tmp_path / "shared"), str(tmp_path)), nprocs=2, join=True)
    alone = extract_features(items(), "minilm", None, use_images=False, cache_dir=tmp_path / "alone", progress=False)
    for rank in (0, 1):  # every rank holds all items, in order
        np.testing.assert_allclose(np.load(tmp_path / f"text-{rank}.npy"), alone.text, rtol=0, atol=1e-5)
    entry = FeatureCache(tmp_path / "shared").get(alone.meta["cache_keys"]["text"])
    assert entry is not None and np.array_equal(entry.features, np.load(tmp_path / "text-0.npy"))
    written = sorted(p.name for p in (tmp_path / "shared").rglob("*") if p.is_file())
    assert written == sorted(p.name for p in (tmp_path / "alone").rglob("*") if p.is_file())  # one entry, no tmp
