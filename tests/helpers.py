"""Small synthetic datasets for fast model/train/serve tests (real-data tests live beside them)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sicsrec.data.schema import Dataset, ValidationReport
from sicsrec.data.split import Split, build_split
from sicsrec.model import ItemTables
from sicsrec.train.two_step import tables_for_split


def synthetic_dataset(n_users: int = 200, n_items: int = 60, seed: int = 0, max_len_seq: int = 40) -> Dataset:
    """Users walk the catalogue mostly in steps of +1, so the next item is learnable."""
    rng = np.random.default_rng(seed)
    lens = rng.integers(5, max_len_seq, n_users)
    starts = rng.integers(0, n_items, n_users)
    users = np.repeat(np.arange(n_users), lens)
    pos = np.concatenate([np.arange(n) for n in lens])
    jumps = (rng.random(len(pos)) < 0.15) * rng.integers(0, n_items, len(pos))
    items = (np.repeat(starts, lens) + pos + jumps) % n_items
    inter = pd.DataFrame({"user_id": users.astype(str), "item_id": items.astype(str), "order": pos})
    genres = ["Drama", "Comedy", "Action"]
    item_df = pd.DataFrame({
        "item_id": [str(i) for i in range(n_items)],
        "title": [f"Item {i}" for i in range(n_items)],
        "text": [f"Item {i}" for i in range(n_items)],
        "category": [genres[i % 3] for i in range(n_items)],
        "image_path": "",
    })
    return Dataset("synthetic", item_df, inter, ValidationReport())


def synthetic_split(**kw: int) -> Split:
    return build_split(synthetic_dataset(**kw), max_len=20, window_stride=10)


def synthetic_tables(split: Split, dim: int = 16, image_dim: int | None = None, seed: int = 0) -> ItemTables:
    """Content features where neighbouring items are similar (a smooth walk), plus optional images."""
    rng = np.random.default_rng(seed)
    ids = [str(x) for x in split.item_ids]
    text = np.cumsum(rng.normal(size=(len(ids), dim)), axis=0).astype(np.float32)
    image = mask = None
    if image_dim:
        image = rng.normal(size=(len(ids), image_dim)).astype(np.float32)
        mask = rng.random(len(ids)) > 0.2
        image[~mask] = 0.0
    return tables_for_split(split, ids, text, image, mask)
