"""Shared test fixtures: offline env, the real datasets, loaded encoders, generated images."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before any hub-aware import: fail fast, never download
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from sicsrec.checkpoint import item_table, save_checkpoint
from sicsrec.config import ModelConfig
from sicsrec.data import DEMO_PATH
from sicsrec.features import get_encoder
from sicsrec.train.two_step import build_model
from tests.helpers import synthetic_dataset, synthetic_split, synthetic_tables

if os.environ.get("PYTEST_XDIST_WORKER"):  # one torch thread per worker: workers already fill the cores
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The project's real datasets (../shared/data from the repo root); skips the test when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available at {SHARED_DATA}")
    return SHARED_DATA


POSTERS = SHARED_DATA / "movielens_small_posters" / "posters"
SHARED_FIXTURES = {"shared_data", "posters"}  # fixtures that read ../shared/data


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Markers by what a test uses: shared data by its fixtures; browser (and slow) by living in tests/e2e."""
    for item in items:
        if SHARED_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.shared_data)
        if "e2e" in item.path.parts:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def minilm():
    """The packaged MiniLM text encoder, loaded once per session."""
    return get_encoder("minilm")


@pytest.fixture(scope="session")
def effnet():
    """The packaged EfficientNet-Lite0 image encoder, loaded once per session."""
    return get_encoder("efficientnet-lite0")


def _make_image(path: Path, seed: int, size: tuple[int, int] = (96, 128), mode: str = "RGB") -> Path:
    """Write a distinct synthetic image (random blocks on a seeded colour gradient) and return its path."""
    rng = np.random.default_rng(seed)
    h, w = size[1], size[0]
    grad = np.linspace(0, 1, w)[None, :, None] * rng.uniform(0, 255, 3)[None, None, :]
    arr = np.broadcast_to(grad, (h, w, 3)).copy()
    for _ in range(4):
        y, x = rng.integers(0, h - 16), rng.integers(0, w - 16)
        arr[y : y + 16, x : x + 16] = rng.uniform(0, 255, 3)
    img = Image.fromarray(arr.astype(np.uint8))
    img.convert(mode).save(path)
    return path


def _write_corrupt(path: Path) -> Path:
    """Write bytes that are not an image under an image file name."""
    path.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg" * 10)
    return path


@pytest.fixture
def make_image():
    """make_image(path, seed, size=(w, h), mode="RGB") writes a distinct synthetic image."""
    return _make_image


@pytest.fixture
def write_corrupt():
    """write_corrupt(path) writes non-image bytes under an image file name."""
    return _write_corrupt


@pytest.fixture
def posters() -> list[Path]:
    """A few real MovieLens posters from ../shared/data, or skip when that folder is absent."""
    files = sorted(POSTERS.glob("*.jpg"))[:4] if POSTERS.is_dir() else []
    if not files:
        pytest.skip(f"real posters not found under {POSTERS}")
    return files


SAVED_CFG = ModelConfig(hidden=32, ffn=32, max_len=20)  # the `saved` checkpoints


@pytest.fixture(scope="module")
def split():
    """A small synthetic leave-one-out split."""
    return synthetic_split()


@pytest.fixture(params=["sasrec", "content", "sicsrec"])
def saved(request, split, tmp_path):
    """(model, checkpoint folder) of each registered model, saved from the synthetic split."""
    torch.manual_seed(0)
    model = build_model(request.param, SAVED_CFG, split, synthetic_tables(split, image_dim=12)).eval()
    items = item_table(split, synthetic_dataset().items)
    path = save_checkpoint(tmp_path / request.param, model, items, {"dataset": "synthetic"})
    return model, path


@pytest.fixture(scope="session")
def demo_slice(tmp_path_factory) -> Path:
    """The last 40 ratings of the demo's 150 most active users on its 300 most rated movies."""
    out = tmp_path_factory.mktemp("demo_slice")
    ratings = pd.read_csv(DEMO_PATH / "ratings.csv")
    top_items = ratings["movieId"].value_counts().index[:300]
    ratings = ratings[ratings["movieId"].isin(top_items)]
    users = ratings["userId"].value_counts().index[:150]
    ratings = ratings[ratings["userId"].isin(users)].sort_values(["userId", "timestamp"], kind="stable")
    ratings.groupby("userId").tail(40).to_csv(out / "ratings.csv", index=False)
    pd.read_csv(DEMO_PATH / "movies.csv").to_csv(out / "movies.csv", index=False)
    return out
