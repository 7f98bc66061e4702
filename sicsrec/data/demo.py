"""The bundled demo dataset: MovieLens ml-latest-small (GroupLens licence, see ml-latest-small/README.txt next to this file).

Only movies.csv, ratings.csv and the licence README ship with the project; posters never do, so
the demo is text + ID only unless a local posters folder is passed as `images`.
"""

from __future__ import annotations

from pathlib import Path

from sicsrec.data.loaders import load_dataset
from sicsrec.data.schema import Dataset

DEMO_PATH = Path(__file__).resolve().parent / "ml-latest-small"  # package data: found wherever sicsrec is installed
DEMO_MIN_ITEM_INTERACTIONS = 10  # the demo catalogue: movies with at least 10 ratings


def load_demo(images: str | Path | None = None) -> Dataset:
    """Load the demo (movies with >= 10 ratings, users with >= 5 of them); `images` adds posters."""
    return load_dataset(
        DEMO_PATH,
        format="movielens",
        images=images,
        min_item_interactions=DEMO_MIN_ITEM_INTERACTIONS,
        name="movielens-demo",
    )
