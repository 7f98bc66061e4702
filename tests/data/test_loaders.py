"""Every loader format on small hand-made folders: good data, broken rows, fatal errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from sicsrec.data import FORMATS, DataError, Dataset, load_dataset
from sicsrec.data.schema import INTERACTION_COLUMNS, ITEM_COLUMNS


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def where(ds: Dataset, kind: str) -> list[tuple[str, int | None, str | None]]:
    """(file, line, column) of the listed problems of one kind."""
    return [(p.file, p.line, p.column) for p in ds.report.problems if p.kind == kind]


def sequences(ds: Dataset) -> dict[str, list[str]]:
    return ds.interactions.groupby("user_id", sort=False)["item_id"].agg(list).to_dict()


def ratings_rows(user: int, items: list[int], start: int = 100) -> str:
    return "".join(f"{user},{item},4.0,{start + k}\n" for k, item in enumerate(items))


def check_schema(ds: Dataset) -> None:
    extra = list(ds.items.columns)[len(ITEM_COLUMNS) :]  # only optional text fields may follow the schema
    assert list(ds.items.columns)[: len(ITEM_COLUMNS)] == ITEM_COLUMNS and all(c.startswith("text_") for c in extra)
    assert list(ds.interactions.columns) == INTERACTION_COLUMNS
    assert ds.items["item_id"].is_unique
    assert ds.interactions["item_id"].isin(ds.items["item_id"]).all()
    assert ds.items["item_id"].isin(ds.interactions["item_id"]).all()  # catalogue = interacted items
    assert str(ds.interactions["order"].dtype) == "int64"
    assert (ds.items["title"].str.len() > 0).all()
    assert ds.report.counts["items"] == len(ds.items)
    assert ds.report.counts["interactions"] == len(ds.interactions)
    assert ds.report.counts["users"] == ds.interactions["user_id"].nunique()


# ---------------------------------------------------------------------------------------------
# movielens


MOVIES = (
    "movieId,title,genres\n"
    '1,"American President, The (1995)",Comedy|Drama|Romance\n'
    "2,Heat (1995),Action|Crime|Thriller\n"
    "3,Nothing (2000),(no genres listed)\n"
    "4,Unrated (2001),Drama\n"
)


def test_movielens_good(tmp_path: Path) -> None:
    write(tmp_path, "movies.csv", MOVIES)
    # user 7 has a timestamp tie (items 3 then 1 at t=50): file order must be kept
    write(
        tmp_path,
        "ratings.csv",
        "userId,movieId,rating,timestamp\n"
        + ratings_rows(7, [2, 1, 2, 3, 1])
        .replace("4.0,100", "4.0,60")
        .replace("4.0,103", "4.0,50")
        .replace("4.0,104", "4.0,50"),
    )
    ds = load_dataset(tmp_path)
    check_schema(ds)
    assert ds.name == tmp_path.name
    assert sequences(ds) == {"7": ["3", "1", "2", "1", "2"]}  # t = 50, 50, 60, 101, 102
    items = ds.items.set_index("item_id")
    assert items.loc["1", "title"] == "American President, The (1995)"
    assert items.loc["1", "text"] == "American President, The (1995). Comedy, Drama, Romance"
    assert items.loc["1", "category"] == "Comedy"
    assert items.loc["3", "category"] == "" and items.loc["3", "text"] == "Nothing (2000)"
    assert "4" not in items.index  # never rated: not in the catalogue
    assert ds.report.kind_counts == {"item without interactions": 1}
    assert where(ds, "item without interactions") == [("movies.csv", 5, "movieId")]
    assert not ds.has_images and (ds.items["image_path"] == "").all()


def test_movielens_broken_rows_are_reported_with_line_and_column(tmp_path: Path) -> None:
    write(
        tmp_path,
        "movies.csv",
        "movieId,title,genres\n"  # 1
        '1,"Multi\nline title (1990)",Drama\n'  # 2-3
        "2,Heat (1995),Action\n"  # 4
        "2,Heat again (1995),Action\n"  # 5: duplicate id
        "3,,Comedy\n"  # 6: empty title
        "x4,Bad id,Comedy\n",  # 7: non-integer id
    )
    write(
        tmp_path,
        "ratings.csv",
        "userId,movieId,rating,timestamp\n"  # 1
        + ratings_rows(1, [1, 2, 3, 1, 2])  # 2-6
        + "1,99,4.0,200\n"  # 7: unknown item
        + "1,2,4.0,yesterday\n"  # 8: bad timestamp
        + "u1,2,4.0,300\n"  # 9: non-integer user id
        + "1,2,4.0,300,extra\n"  # 10: too many fields
        + "1,2\n"  # 11: too few fields
        + "\n"  # 12: blank, skipped silently
        + ratings_rows(2, [1, 2, 3]),  # 13-15: user 2 has 3 < 5 interactions
    )
    ds = load_dataset(tmp_path, format="movielens")
    check_schema(ds)
    assert where(ds, "duplicate item id") == [("movies.csv", 5, "movieId")]
    assert "first at line 4" in next(p.message for p in ds.report.problems if p.kind == "duplicate item id")
    assert where(ds, "missing title") == [("movies.csv", 6, "title")]
    assert ds.items.set_index("item_id").loc["3", "title"] == "3"  # kept, titled by its id
    assert ds.items.set_index("item_id").loc["1", "title"] == "Multi line title (1990)"
    assert where(ds, "unknown item") == [("ratings.csv", 7, "movieId")]
    assert where(ds, "bad timestamp") == [("ratings.csv", 8, "timestamp")]
    assert where(ds, "non-integer id") == [("movies.csv", 7, "movieId"), ("ratings.csv", 9, "userId")]
    assert where(ds, "wrong field count") == [("ratings.csv", 10, None), ("ratings.csv", 11, None)]
    assert where(ds, "short user") == [("ratings.csv", 13, None)]
    counts = ds.report.kind_counts
    assert counts["short user"] == 1 and counts["wrong field count"] == 2
    assert ds.report.counts["users"] == 1 and ds.report.counts["raw_users"] == 2
    assert ds.report.counts["interactions"] == 5
    assert sequences(ds) == {"1": ["1", "2", "3", "1", "2"]}
    assert "ratings.csv:8 [timestamp]" in ds.report.to_text()


def test_min_item_interactions_applies_before_users(tmp_path: Path) -> None:
    write(tmp_path, "movies.csv", MOVIES)
    rows = ratings_rows(1, [1, 1, 1, 2, 2, 3]) + ratings_rows(2, [1, 1, 2, 2, 3, 3])
    write(tmp_path, "ratings.csv", "userId,movieId,rating,timestamp\n" + rows)
    ds = load_dataset(tmp_path, min_item_interactions=4)  # item 2 (4) stays, 3 (3) goes
    assert set(ds.items["item_id"]) == {"1", "2"}
    assert ds.report.kind_counts["rare item"] == 1
    assert sequences(ds) == {"1": ["1", "1", "1", "2", "2"]}  # user 2 then has 4 < 5
    assert ds.report.kind_counts["short user"] == 1


def test_min_user_interactions_can_be_disabled(tmp_path: Path) -> None:
    write(tmp_path, "movies.csv", MOVIES)
    write(tmp_path, "ratings.csv", "userId,movieId,rating,timestamp\n" + ratings_rows(3, [1, 2]))
    with pytest.raises(DataError, match="no interactions left"):
        load_dataset(tmp_path)
    assert load_dataset(tmp_path, min_user_interactions=0).report.counts["users"] == 1


# ---------------------------------------------------------------------------------------------
# fatal problems


def test_missing_file(tmp_path: Path) -> None:
    write(tmp_path, "movies.csv", MOVIES)
    with pytest.raises(DataError, match=r"ratings\.csv: missing file"):
        load_dataset(tmp_path, format="movielens")
    with pytest.raises(DataError, match="matches no dataset format"):
        load_dataset(tmp_path)
    with pytest.raises(DataError, match="no such file or directory"):
        load_dataset(tmp_path / "nope")


def test_garbage_binary_file(tmp_path: Path) -> None:
    write(tmp_path, "movies.csv", MOVIES)
    (tmp_path / "ratings.csv").write_bytes(bytes(range(256)) * 8)
    with pytest.raises(DataError, match=r"ratings\.csv: binary data"):
        load_dataset(tmp_path)


def test_non_utf8_file(tmp_path: Path) -> None:
    (tmp_path / "movies.csv").write_bytes("movieId,title,genres\n1,Amélie (2001),Comedy\n".encode("latin-1"))
    write(tmp_path, "ratings.csv", "userId,movieId,rating,timestamp\n" + ratings_rows(1, [1] * 5))
    with pytest.raises(DataError, match=r"movies\.csv: not UTF-8 text \(byte 0xe9"):
        load_dataset(tmp_path)


def test_no_id_column_and_empty_file(tmp_path: Path) -> None:
    write(tmp_path, "items.csv", "sku,title\n1,A\n")
    write(tmp_path, "interactions.csv", "user,item\n1,1\n")
    with pytest.raises(DataError, match=r"items\.csv: no recognisable item id column"):
        load_dataset(tmp_path)
    write(tmp_path, "items.csv", "")
    with pytest.raises(DataError, match=r"items\.csv: empty file"):
        load_dataset(tmp_path)


def test_unknown_format_and_bad_images_folder(tmp_path: Path) -> None:
    write(tmp_path, "movies.csv", MOVIES)
    write(tmp_path, "ratings.csv", "userId,movieId,rating,timestamp\n" + ratings_rows(1, [1] * 5))
    with pytest.raises(DataError, match="unknown format 'parquet'"):
        load_dataset(tmp_path, format="parquet")
    with pytest.raises(DataError, match="image folder does not exist"):
        load_dataset(tmp_path, images=tmp_path / "posters")
    assert list(FORMATS) == ["movielens", "ninerec", "csv", "recbole"]


# ---------------------------------------------------------------------------------------------
# csv


def image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 6), "red").save(path)
    return path


def test_csv_columns_images_and_dates(tmp_path: Path) -> None:
    image(tmp_path / "pics" / "a.png")
    write(
        tmp_path,
        "Items.csv",
        "ItemID,Name,Category,Image_Path\n"
        "a,Alpha,Tools|Garden,pics/a.png\n"
        "b,Beta,,pics/missing.png\n"  # line 3: image does not exist
        "c,Gamma,Toys,\n",
    )
    write(
        tmp_path,
        "interactions.csv",
        "User\tItemID\tTime\n"  # tab-separated, ISO dates
        "u1\ta\t2020-01-03\n"
        "u1\tb\t2020-01-01 10:00\n"
        "u1\tc\tnot a date\n"  # line 4
        "u1\tc\t2020-01-02\n"
        "u1\ta\t2020-01-04\n"
        "u1\tb\t2020-01-05\n",
    )
    ds = load_dataset(tmp_path)
    check_schema(ds)
    assert sequences(ds) == {"u1": ["b", "c", "a", "a", "b"]}
    assert where(ds, "bad timestamp") == [("interactions.csv", 4, "Time")]
    assert where(ds, "missing image") == [("Items.csv", 3, "Image_Path")]
    items = ds.items.set_index("item_id")
    assert items.loc["a", "image_path"] == str((tmp_path / "pics" / "a.png").resolve())
    assert items.loc["b", "image_path"] == "" and items.loc["c", "image_path"] == ""
    assert items.loc["a", "text"] == "Alpha. Tools, Garden" and items.loc["a", "category"] == "Tools"
    assert ds.has_images
    assert ds.interactions["order"].iloc[0] == 1577872800  # 2020-01-01 10:00 UTC in Unix seconds


def test_csv_images_folder_without_column_and_override(tmp_path: Path) -> None:
    write(tmp_path, "items.csv", "item_id,title\n1,One\n2,Two\n")
    write(tmp_path, "interactions.csv", "user_id,item_id\n" + "9,1\n9,2\n" * 3)
    image(tmp_path / "covers" / "1.jpg")
    ds = load_dataset(tmp_path)
    assert sequences(ds) == {"9": ["1", "2"] * 3}  # no order column: file order
    assert ds.items.set_index("item_id")["image_path"].to_dict() == {
        "1": str((tmp_path / "covers" / "1.jpg").resolve()),
        "2": "",
    }
    assert where(ds, "missing image") == [(str(tmp_path / "covers"), None, None)]
    other = tmp_path / "elsewhere"
    image(other / "2.png")
    image(other / "2.jpg")  # .jpg preferred over .png
    ds = load_dataset(tmp_path, images=other)
    assert ds.items.set_index("item_id")["image_path"].to_dict() == {"1": "", "2": str((other / "2.jpg").resolve())}


def test_csv_duplicates_unknown_items_and_missing_titles(tmp_path: Path) -> None:
    write(tmp_path, "items.csv", "iid;title\n1;One\n1;Uno\n2;   \n")
    write(tmp_path, "interactions.csv", "uid;iid;ts\n" + "".join(f"5;{i};{k}\n" for k, i in enumerate("1212x1")))
    ds = load_dataset(tmp_path, min_user_interactions=5)
    assert where(ds, "duplicate item id") == [("items.csv", 3, "iid")]
    assert where(ds, "missing title") == [("items.csv", 4, "title")]
    assert where(ds, "unknown item") == [("interactions.csv", 6, "iid")]
    assert ds.items["title"].tolist() == ["One", "2"]
    assert ds.report.counts["raw_interaction_rows"] == 6 and ds.report.counts["interactions"] == 5


# ---------------------------------------------------------------------------------------------
# recbole


def test_recbole_atomic(tmp_path: Path) -> None:
    write(
        tmp_path,
        "shop.item",
        "item_id:token\ttitle:token_seq\tcategories:token_seq\n"
        'i1\tRed "quoted" mug\tKitchen Home\n'
        "i2\tBlue plate\tKitchen\n",
    )
    write(
        tmp_path,
        "shop.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        + "".join(f"u\ti{1 + k % 2}\t5\t{1000.5 - k}\n" for k in range(6))
        + "u\ti1\t5\tsoon\n"  # line 8
        + "u\ti3\t5\t1\n",  # line 9: unknown
    )
    ds = load_dataset(tmp_path)
    check_schema(ds)
    assert ds.name == "shop"
    assert sequences(ds) == {"u": ["i2", "i1", "i2", "i1", "i2", "i1"]}  # timestamps decrease
    assert where(ds, "bad timestamp") == [("shop.inter", 8, "timestamp:float")]
    assert where(ds, "unknown item") == [("shop.inter", 9, "item_id:token")]
    items = ds.items.set_index("item_id")
    assert items.loc["i1", "title"] == 'Red "quoted" mug'
    assert items.loc["i1", "text"] == 'Red "quoted" mug. Kitchen, Home' and items.loc["i1", "category"] == "Kitchen"


def test_recbole_sequential_split_without_item_file(tmp_path: Path) -> None:
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    write(tmp_path, "seq.train.inter", header + "1\t5\t6\n1\t5 6\t7\n2\t1\t2\n2\t1 2\t3\n")
    write(tmp_path, "seq.valid.inter", header + "1\t5 6 7\t8\n2\t1 2 3\t4\n")
    write(tmp_path, "seq.test.inter", header + "1\t5 6 7 8\t9\n2\t1 2 3 4\tzz\n")
    ds = load_dataset(tmp_path / "seq.test.inter", min_user_interactions=1)
    assert ds.name == "seq"
    assert sequences(ds) == {"1": ["5", "6", "7", "8", "9"], "2": ["1", "2", "3", "4", "zz"]}
    assert (ds.items["title"] == ds.items["item_id"]).all()
    assert where(ds, "missing title") == [("seq.item", None, None)]


# ---------------------------------------------------------------------------------------------
# ninerec


def test_ninerec(tmp_path: Path) -> None:
    write(
        tmp_path,
        "Bili_Toy_item_sort.csv",
        '0,猫,"Cat, a video"\n'
        "1,狗,Dog\n"
        "2,鸟\n"  # no English title: the Chinese one is the title
        "3,鱼,Fish,extra\n",  # line 4: wrong field count
    )
    write(
        tmp_path,
        "sequential_data.txt",
        "0 0 1 2 0 1 \n"
        "1 2 1 x 0 7\n"  # line 2: non-integer item, unknown item 7
        "2 0 1\n",  # line 3: short user
    )
    image(tmp_path / "Bili_Toy_cover" / "1.jpg")
    ds = load_dataset(tmp_path, min_user_interactions=3)
    check_schema(ds)
    assert sequences(ds) == {"0": ["0", "1", "2", "0", "1"], "1": ["2", "1", "0"]}
    assert ds.interactions["order"].tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    items = ds.items.set_index("item_id")
    assert items.loc["0", "title"] == "Cat, a video" and items.loc["0", "text"] == "Cat, a video 猫"
    assert items.loc["2", "title"] == "鸟" and items.loc["2", "text"] == "鸟"
    assert (ds.items["category"] == "").all()
    assert where(ds, "wrong field count") == [("Bili_Toy_item_sort.csv", 4, None)]
    assert where(ds, "non-integer id") == [("sequential_data.txt", 2, "item")]
    assert where(ds, "unknown item") == [("sequential_data.txt", 2, "item")]
    assert where(ds, "short user") == [("sequential_data.txt", 3, None)]
    assert items.loc["1", "image_path"].endswith("Bili_Toy_cover/1.jpg")
    assert ds.report.kind_counts["missing image"] == 2


def test_confined_images_refuse_paths_outside_the_dataset(tmp_path: Path) -> None:
    # An uploaded items.csv may name any file on the host: confined loading ignores those (the app's uploads).
    root, secret = tmp_path / "upload", image(tmp_path / "host" / "secret.png")
    image(root / "pics" / "a.png")
    (root / "pics" / "link.png").symlink_to(secret)
    write(
        root,
        "items.csv",
        f"item_id,title,image\na,Alpha,pics/a.png\nb,Beta,../host/secret.png\nc,Gamma,{secret}\n"
        "d,Delta,pics/link.png\n",
    )
    write(
        root,
        "interactions.csv",
        "user_id,item_id,timestamp\n" + "".join(f"u1,{i},{t}\n" for t, i in enumerate("abcda")),
    )
    trusted = load_dataset(root).items.set_index("item_id")["image_path"]
    assert (trusted != "").all()  # a local user's own absolute or relative paths are honoured
    ds = load_dataset(root, confine_images=True)
    paths = ds.items.set_index("item_id")["image_path"].to_dict()
    assert paths == {"a": str((root / "pics" / "a.png").resolve()), "b": "", "c": "", "d": ""}
    assert [line for _, line, _ in where(ds, "image outside the dataset")] == [3, 4, 5]
    assert "missing image" not in ds.report.kind_counts


def test_ninerec_offers_each_title_language_as_a_text_field(tmp_path: Path) -> None:
    write(tmp_path, "Bili_Toy_item_sort.csv", '0,猫,"Cat, a video"\n1,狗,Dog\n2,鸟\n')
    write(tmp_path, "sequential_data.txt", "0 0 1 2 0 1\n1 2 1 0\n")
    ds = load_dataset(tmp_path, min_user_interactions=3)
    assert ds.text_fields() == ["both", "en", "zh"]
    text = {f: ds.feature_items(f).set_index("item_id")["text"].to_dict() for f in ds.text_fields()}
    assert text["both"] == {"0": "Cat, a video 猫", "1": "Dog 狗", "2": "鸟"}
    assert text["en"] == {"0": "Cat, a video", "1": "Dog", "2": "鸟"}  # no English: the Chinese title
    assert text["zh"] == {"0": "猫", "1": "狗", "2": "鸟"}
    write(tmp_path / "ml", "movies.csv", "movieId,title,genres\n1,Heat (1995),Action\n")
    write(
        tmp_path / "ml", "ratings.csv", "userId,movieId,rating,timestamp\n" + "".join(f"1,1,4,{t}\n" for t in range(5))
    )
    ml = load_dataset(tmp_path / "ml")
    assert ml.text_fields() == ["both"]
    with pytest.raises(DataError, match="no 'zh' text field"):
        ml.feature_items("zh")
