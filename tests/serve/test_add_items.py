"""Adding items without retraining: row validation, checkpoints written before it, and the CLI round trip."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from sicsrec.checkpoint import item_table, load_checkpoint, save_checkpoint
from sicsrec.cli import main
from sicsrec.data.schema import DataError
from sicsrec.data.split import Split
from sicsrec.features import Encoder, ItemFeatures, extract_features
from sicsrec.features import extract as extract_module
from sicsrec.model import ItemTables
from sicsrec.serve import Recommender
from sicsrec.serve.add_items import add_items, read_new_items, warm_bridge
from sicsrec.train.two_step import build_model
from tests.conftest import SAVED_CFG
from tests.helpers import synthetic_dataset

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "checkpoints" / "demo" / "checkpoints"


def test_bad_rows_are_skipped_and_reported(
    tmp_path: Path, make_image: Callable[..., Path], write_corrupt: Callable[[Path], Path]
) -> None:
    make_image(tmp_path / "good.jpg", 1)
    write_corrupt(tmp_path / "n5.jpg")
    csv = tmp_path / "new.csv"
    csv.write_text(
        "item_id,title,image\n"
        "n1,Toy Story 5 (2026),good.jpg\n"
        "n2,玩具总动员 新篇,\n"
        "1,Already there,\n"
        "n3,,\n"
        ",No id,\n"
        "n1,Again,\n"
        "n5,Broken cover,n5.jpg\n",
        encoding="utf-8",
    )
    new = read_new_items(csv, known={"1", "2"})
    assert new.rows["item_id"].tolist() == ["n1", "n2", "n5"]
    assert new.rows["text"].tolist() == ["Toy Story 5 (2026)", "玩具总动员 新篇", "Broken cover"]
    assert new.rows["image_path"].tolist() == [str(tmp_path / "good.jpg"), "", ""]
    shown = [str(p) for p in new.problems]
    for line, words in [
        (4, "item '1' is already in the catalogue"),
        (5, "item 'n3' has no title"),
        (6, "no item_id"),
        (7, "item 'n1' is repeated"),
        (8, "cover"),
    ]:
        assert any(f"new.csv:{line}" in s and words in s for s in shown), (line, shown)
    assert any("n5.jpg of item 'n5' ignored (" in s and "scored from its title" in s for s in shown)
    text_only = read_new_items(csv, known={"1"}, with_images=False)
    assert set(text_only.rows["image_path"]) == {""} and any(
        "trained without images" in str(p) for p in text_only.problems
    )


def test_unusable_files_raise_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="empty file"):
        read_new_items(empty, known=set())
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("id_of_item,name_of_video\nx,y\n", encoding="utf-8")
    with pytest.raises(DataError, match="needs the columns item_id and title"):
        read_new_items(wrong, known=set())
    with pytest.raises(DataError, match="no new item to add"):
        read_new_items([{"item_id": "1", "title": "dup"}, {"item_id": "x", "title": ""}], known={"1"})
    with pytest.raises(DataError, match="no rows"):
        read_new_items([], known=set())


def test_shipped_checkpoints_load_with_every_item_scored_by_id() -> None:
    """Checkpoints written before items could be added (no scored_by list) keep loading, labelled "id"."""
    for name in ("sasrec", "content", "sicsrec"):
        _, config, items = load_checkpoint(SHIPPED / name)
        assert "scored_by" not in items and config["format"] == "sicsrec-checkpoint/1"
    rec = Recommender.load(SHIPPED / "sicsrec")
    assert set(rec.table.scored_by) == {"id"} and len(rec.table.scored_by) == len(rec.item_ids)
    assert {it["scored_by"] for it in rec.recommend(["1", "260", "1196"], 10).items} == {"id"}


def minilm_checkpoint(folder: Path, split: Split, minilm: Encoder) -> tuple[Path, ItemFeatures]:
    """A SICSRec checkpoint of the synthetic split started from MiniLM features (cached in $SICSREC_CACHE)."""
    ds = synthetic_dataset()
    feats = extract_features(ds.feature_items(), text_encoder=minilm, use_images=False, progress=False)
    pos = {iid: i for i, iid in enumerate(feats.item_ids)}
    tables = ItemTables.from_arrays(feats.text[[pos[i] for i in split.item_ids]], None, None)
    model = build_model("sicsrec", SAVED_CFG, split, tables)
    return save_checkpoint(folder, model, item_table(split, ds.items), {"features": feats.meta}), feats


@pytest.mark.slow
def test_cli_add_items_then_recommend(
    tmp_path: Path,
    split: Split,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    minilm: Encoder,
) -> None:
    """A checkpoint with MiniLM features grows by two items (one Chinese title, one bad row); recommend then
    ranks old and new items together, with the exact index and a rebuilt faiss one."""
    monkeypatch.setenv("SICSREC_CACHE", str(tmp_path / "cache"))
    source, feats = minilm_checkpoint(tmp_path / "ckpt", split, minilm)
    csv = tmp_path / "new.csv"
    csv.write_text("item_id,title\nnew1,Item 7\nnew2,新上传的视频\n3,duplicate\n", encoding="utf-8")
    grown = tmp_path / "grown"

    assert main(["add-items", "--checkpoint", str(source), "--items", str(csv), "--out", str(grown)]) == 0
    err = capsys.readouterr().err
    assert "item '3' is already in the catalogue" in err and "added 2 item(s)" in err
    _, config, items = load_checkpoint(grown)
    assert config["n_items"] == split.n_items + 2 and items["item_ids"][-2:] == ["new1", "new2"]
    assert items["scored_by"][-2:] == ["content", "content"] and items["popularity"][-2:] == [0, 0]
    assert config["added_items"][0]["items"] == 2 and config["features"] == json.loads(json.dumps(feats.meta))

    before = Recommender.load(source).recommend(["3", "4", "5"], 100)
    for index in ("exact", "flat"):
        code = main(
            ["recommend", "--checkpoint", str(grown), "--history", "3,4,5", "--k", "100", "--json", "--index", index]
        )
        assert code == 0
        out = json.loads(capsys.readouterr().out)
        by_id = {it["item_id"]: it for it in out["items"]}
        assert by_id["new1"]["scored_by"] == by_id["new2"]["scored_by"] == "content"
        assert {it["scored_by"] for it in out["items"] if not it["item_id"].startswith("new")} == {"id"}
        for it in before.items:
            assert abs(by_id[it["item_id"]]["score"] - it["score"]) < 1e-5
    assert main(["add-items", "--checkpoint", str(source), "--items", str(csv), "--out", str(source)]) == 2
    assert "new folder" in capsys.readouterr().err


@pytest.mark.slow
def test_without_cached_features_the_titles_are_encoded_once_for_every_addition(
    tmp_path: Path, split: Split, monkeypatch: pytest.MonkeyPatch, minilm: Encoder
) -> None:
    """A checkpoint whose feature cache is not on this machine (a fresh install) encodes its trained items' titles
    once (warm_bridge); every later addition, onto a run that already grew, encodes only its own title."""
    monkeypatch.setenv("SICSREC_CACHE", str(tmp_path / "training-machine"))
    source, _ = minilm_checkpoint(tmp_path / "ckpt", split, minilm)
    monkeypatch.setenv("SICSREC_CACHE", str(tmp_path / "this-machine"))  # the training machine's cache is gone
    encoded: list[int] = []
    real = extract_module._encode_texts
    monkeypatch.setattr(
        extract_module, "_encode_texts", lambda enc, texts, *a: encoded.append(len(texts)) or real(enc, texts, *a)
    )
    rec = Recommender.load(source)
    assert warm_bridge(rec) and encoded == [split.n_items]  # the trained items, once
    once = add_items(rec, [{"item_id": "n1", "title": "Item 7"}]).recommender
    twice = add_items(once, [{"item_id": "n2", "title": "Item 8"}]).recommender
    assert encoded == [split.n_items, 1, 1] and twice.item_ids[-2:] == ["n1", "n2"]
