"""Stage A2: the SFT losses fall on a small slice, aligned features land in the cache with provenance,
and `prepare(..., FeatureConfig(source="aligned"))` reads them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from sicsrec.cli import main
from sicsrec.config import DataConfig, FeatureConfig
from sicsrec.features import FeatureCache, extract_features
from sicsrec.run.prepare import load_data, normalize_image_features, prepare
from sicsrec.stage_a.align import AlignConfig, AlignedFeaturesMissing, align, info_nce, resolve_aligned_source

TITLES = [
    "Chocolate cake recipe",
    "Baking a lemon cake",
    "Strawberry cream cake",
    "Cheesecake without oven",
    "Football final highlights",
    "Best football goals",
    "Basketball dunk contest",
    "Tennis match point",
]
PAIRS = [
    ("0", "1"),
    ("2", "3"),
    ("4", "5"),
    ("6", "7"),
    ("1", "2"),
    ("5", "6"),
    ("1", "0"),
    ("3", "3"),
    ("999", "1"),
]  # + a duplicate, a self pair, an unknown item


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[dict]:
    """A csv dataset with 8 items (cover images, one corrupt), 6 users, a pairs.csv, and a private cache."""
    root = tmp_path_factory.mktemp("align")
    data = root / "data"
    (data / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(7):  # distinct random covers
        Image.fromarray(rng.integers(0, 255, (96, 64, 3), dtype=np.uint8)).save(data / "images" / f"{i}.jpg")
    (data / "images" / "7.jpg").write_bytes(b"not a jpeg" * 20)
    pd.DataFrame({"item_id": range(8), "title": TITLES}).to_csv(data / "items.csv", index=False)
    inter = [(u, int(i), k) for u in range(6) for k, i in enumerate(rng.permutation(8)[:6])]
    pd.DataFrame(inter, columns=["user_id", "item_id", "order"]).to_csv(data / "interactions.csv", index=False)
    pairs = root / "pairs"
    pairs.mkdir()
    pd.DataFrame(PAIRS, columns=["target_id", "pair_id"]).assign(user_id="0").to_csv(pairs / "pairs.csv", index=False)
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SICSREC_CACHE", str(root / "cache"))
        torch.set_num_threads(1)  # faster on 2 shared cores
        yield {"data": data, "pairs": pairs, "cache": root / "cache", "out": root / "out"}
    torch.set_num_threads(threads)


def _config(**kw) -> AlignConfig:
    return AlignConfig(
        **{"optimizer": "adamw", "lr": 3e-4, "batch_size": 8, "epochs": 6, "num_workers": 0, "device": "cpu", **kw}
    )


def test_info_nce_leaves_duplicate_items_out_of_the_denominator() -> None:
    a = torch.eye(3, 4)
    assert info_nce(a, a, torch.tensor([5, 6, 7]), torch.tensor([5, 6, 7]), 0.05) < 1e-6
    a[2] = a[0]  # rows 0 and 2 are the same item: each is the other's positive, not a negative
    unmasked = info_nce(a, a, torch.tensor([5, 6, 7]), torch.tensor([5, 6, 7]), 0.05)
    masked = info_nce(a, a, torch.tensor([5, 6, 5]), torch.tensor([5, 6, 5]), 0.05)
    assert masked < 1e-6 and unmasked == pytest.approx(2 / 3 * np.log(2), abs=1e-4)


def test_an_unreadable_aligned_index_is_kept_aside_not_overwritten(tmp_path) -> None:
    from sicsrec.stage_a.align import INDEX_FILE, _read_index, _write_index

    (tmp_path / INDEX_FILE).write_bytes(b'{"other dataset": {"source": "aligned:1"')  # torn by a crash
    assert _read_index(tmp_path) == {}
    _write_index(tmp_path, "k", {"source": "aligned:2"})
    assert (tmp_path / f"{INDEX_FILE}.corrupt").read_bytes().startswith(b'{"other dataset"')
    assert _read_index(tmp_path) == {"k": {"source": "aligned:2"}}
    _write_index(tmp_path, "j", {"source": "aligned:3"})  # a readable index is extended, nothing set aside
    assert set(_read_index(tmp_path)) == {"k", "j"}
    assert len(list(tmp_path.glob("*.corrupt"))) == 1


def test_prepare_aligned_before_align_says_what_to_run(world) -> None:
    with pytest.raises(AlignedFeaturesMissing, match="align"):
        prepare(DataConfig(str(world["data"])), FeatureConfig(source="aligned"), show_bar=False)


@pytest.mark.slow
def test_losses_decrease_and_aligned_features_reach_prepare(world) -> None:
    ds = load_data(DataConfig(str(world["data"])))
    res = align(ds, world["pairs"], world["out"], _config(), progress=False)
    first, last = res.history[0], res.history[-1]
    assert set(first) == {"epoch", "steps", "loss", "t2t", "i2i", "t2i"}
    for name in ("loss", "t2t", "i2i", "t2i"):
        assert last[name] < first[name], name
    c = res.counts
    dropped = (c["pairs_in_file"], c["unknown_items"], c["self_pairs"], c["duplicates"], c["pairs_used"])
    assert dropped == (9, 1, 1, 1, 6)
    assert c["pair_items_without_image"] == 1 and c["items_without_image"] == 1

    items = ds.feature_items()
    assert resolve_aligned_source(items) == res.source and res.source.startswith("aligned:")
    aligned = extract_features(items, source=res.source, progress=False)  # a cache read: no encoder given
    assert aligned.text.shape == (8, 384) and aligned.image.shape == (8, 1280)
    assert aligned.image_mask.tolist() == [True] * 7 + [False]
    sidecar = FeatureCache().get(aligned.meta["cache_keys"]["text"]).meta["provenance"]
    pairs_sha = hashlib.sha256((world["pairs"] / "pairs.csv").read_bytes()).hexdigest()
    assert sidecar["pairs_sha256"] == pairs_sha and sidecar["losses"] == ["t2t", "i2i", "t2i"]
    assert sidecar["settings"]["optimizer"] == "adamw" and sidecar["text_encoder"]["name"] == "minilm"
    assert len(sidecar["history"]) == 6
    summary = json.loads((Path(world["out"]) / "align.json").read_text())
    assert summary["source"] == res.source and len(summary["history"]) == 6

    raw = extract_features(items, progress=False)
    assert not np.allclose(raw.text, aligned.text, atol=1e-4)
    assert not np.allclose(raw.image[:7], aligned.image[:7], atol=1e-4)

    prep = prepare(DataConfig(str(world["data"])), FeatureConfig(source="aligned"), show_bar=False)
    assert prep.features_meta["source"] == res.source
    order = [list(aligned.item_ids).index(i) for i in prep.split.item_ids]
    assert np.allclose(prep.tables.text[1:].numpy(), aligned.text[order])
    image = normalize_image_features(aligned.image, aligned.image_mask, "center_l2")  # prepare's default
    assert np.allclose(prep.tables.image[1:].numpy(), image[order], atol=1e-6)

    again = align(ds, world["pairs"], world["out"], _config(), progress=False)
    assert again.skipped and again.source == res.source and again.history == res.history


@pytest.mark.slow
def test_text_only_trains_t2t_alone(world) -> None:
    ds = load_data(DataConfig(str(world["data"])))
    res = align(ds, world["pairs"] / "pairs.csv", None, _config(use_images=False), image_encoder=None, progress=False)
    assert res.provenance["losses"] == ["t2t"] and res.history[-1]["t2t"] < res.history[0]["t2t"]
    prep = prepare(
        DataConfig(str(world["data"])),
        FeatureConfig(image_encoder=None, use_images=False, source="aligned"),
        show_bar=False,
    )
    assert prep.features_meta["source"] == res.source and prep.tables.image is None


def test_reference_decision_3_trains_the_encoder_through_frozen_heads(world) -> None:
    ds = load_data(DataConfig(str(world["data"])))
    kw = dict(use_images=False, epochs=1)
    ours = align(ds, world["pairs"] / "pairs.csv", None, _config(**kw), image_encoder=None, progress=False)
    ref = align(
        ds, world["pairs"] / "pairs.csv", None, _config(train_heads=False, **kw), image_encoder=None, progress=False
    )
    head = 384 * 192 + 192 + 192 * 64 + 64  # MiniLM 384 -> 192 -> 64
    assert ours.counts["trainable_parameters"] - ref.counts["trainable_parameters"] == head
    assert ref.source != ours.source and ref.provenance["settings"]["train_heads"] is False
    assert ref.history[0]["t2t"] > 0  # the loss still flows (through the random heads) into the last block


def test_align_and_prepare_commands(world, capsys) -> None:
    common = ["--data", str(world["data"]), "--no-images", "--device", "cpu"]
    rc = main(
        [
            "align",
            *common,
            "--pairs",
            str(world["pairs"]),
            "--out",
            str(world["out"] / "cli"),
            "--optimizer",
            "adamw",
            "--lr",
            "1e-4",
            "--epochs",
            "1",
            "--batch-size",
            "4",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "align: aligned:" in out and "epoch   1:" in out
    source = json.loads((world["out"] / "cli" / "align.json").read_text())["source"]
    assert main(["prepare", *common, "--features", "aligned"]) == 0
    assert source in capsys.readouterr().out
