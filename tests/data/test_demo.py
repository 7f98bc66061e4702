"""The bundled demo dataset."""

from __future__ import annotations

from pathlib import Path

from sicsrec.data import DEMO_PATH, load_demo


def test_demo_ships_only_the_csvs_and_licence() -> None:
    assert sorted(p.name for p in DEMO_PATH.iterdir()) == ["README.txt", "movies.csv", "ratings.csv"]


def test_demo_loads() -> None:
    ds = load_demo()
    assert ds.name == "movielens-demo"
    counts = ds.report.counts
    assert (counts["users"], counts["items"], counts["interactions"]) == (610, 2_269, 81_116)
    assert ds.interactions.groupby("item_id").size().min() >= 10
    assert not ds.has_images


def test_demo_with_local_posters(shared_data: Path) -> None:
    ds = load_demo(images=shared_data / "movielens_small_posters" / "posters")
    assert ds.has_images and ds.report.counts["images"] == 2_259
