"""The loaders on the project's real datasets, checked against the counts in their READMEs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sicsrec.data import Dataset, load_dataset


@pytest.fixture
def posters(shared_data: Path) -> Path:
    return shared_data / "movielens_small_posters"


@pytest.fixture
def bili(shared_data: Path) -> Path:
    return shared_data / "ninerec_bili_text"


def counts(ds: Dataset) -> tuple[int, int, int]:
    return ds.report.counts["users"], ds.report.counts["items"], ds.report.counts["interactions"]


@pytest.mark.slow
def test_posters_folder_as_csv(posters: Path) -> None:
    ds = load_dataset(posters)  # items.csv + interactions.csv with a `poster` column
    assert counts(ds) == (610, 2_259, 80_965)
    assert ds.has_images and ds.report.counts["images"] == 2_259
    assert ds.report.kind_counts == {}
    assert ds.items["image_path"].map(lambda p: Path(p).is_file()).all()
    toy = ds.items.set_index("item_id").loc["1"]
    assert toy["title"] == "Toy Story (1995)" and toy["category"] == "Adventure"
    assert Path(toy["image_path"]).resolve() == (posters / "posters" / "1.jpg").resolve()  # shared/ may be a link
    # the file is sorted by (userId, timestamp) with ties in file order: every sequence must match it
    raw = pd.read_csv(posters / "interactions.csv", dtype=str)
    expected = raw.groupby("userId", sort=False)["movieId"].agg(list)
    got = ds.interactions.groupby("user_id", sort=False)["item_id"].agg(list)
    assert got.sort_index().equals(expected.sort_index())


@pytest.mark.slow
def test_ml_latest_small_as_movielens(posters: Path) -> None:
    ds = load_dataset(posters / "ml-latest-small")
    assert counts(ds) == (610, 9_724, 100_836)  # 18 of the 9,742 movies have no rating
    assert ds.report.kind_counts == {"item without interactions": 18}
    assert not ds.has_images


@pytest.mark.slow
def test_ml_latest_small_with_posters_folder(posters: Path) -> None:
    ds = load_dataset(posters / "ml-latest-small", images=posters / "posters", min_item_interactions=10)
    assert counts(ds) == (610, 2_269, 81_116)
    # the README: only 10 movies with >= 10 ratings lack a poster
    assert ds.report.counts["images"] == 2_259 and ds.report.kind_counts["missing image"] == 10
    assert ds.has_images


def test_bili_food_as_ninerec(bili: Path) -> None:
    ds = load_dataset(bili / "Bili_Food")
    assert ds.name == "Bili_Food"
    assert counts(ds) == (6_549, 1_579, 39_740)
    assert ds.report.kind_counts == {}
    first = ds.items.iloc[0]
    assert first["title"].startswith("Visit America's Cheap Pizza Place!")
    assert first["text"].endswith("探访美国廉价披萨店！24K黄金披萨，这价钱太亲民了吧？")
    assert ds.interactions.groupby("user_id").size().min() >= 5


def test_bili_dance_as_ninerec(bili: Path) -> None:
    assert counts(load_dataset(bili / "Bili_Dance")) == (10_715, 2_307, 83_392)


@pytest.mark.slow
def test_bili_food_recbole_split_rebuilds_the_same_sequences(bili: Path) -> None:
    rec = load_dataset(bili / "Bili_Food", format="recbole")
    assert counts(rec) == (6_549, 1_579, 39_740)
    assert rec.report.kind_counts == {"missing title": 1}  # no Bili_Food.item: ids as titles
    nine = load_dataset(bili / "Bili_Food")
    shift = lambda s: (s.astype(int) + 1).astype(str)
    inter = nine.interactions
    expected = inter.assign(user_id=shift(inter["user_id"]), item_id=shift(inter["item_id"]))
    expected = expected.groupby("user_id")["item_id"].agg(list)
    got = rec.interactions.groupby("user_id")["item_id"].agg(list)
    assert got.equals(expected)
