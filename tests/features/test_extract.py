"""extract_features: masks for bad images, cache hits/misses, text-only, cancel, aligned sources."""

from __future__ import annotations

import logging
import multiprocessing
import threading

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sicsrec.features import (
    ExtractionCancelled,
    FeatureCache,
    FeaturesNotFound,
    ItemFeatures,
    extract_features,
    load_features,
    store_features,
)
from sicsrec.features import extract as features_mod

TITLES = [
    "Toy Story (1995)",
    "Heat (1995)",
    "Casino (1995)",
    "Fargo (1996)",
    "Alien (1979)",
    "Big (1988)",
    "Se7en (1995)",
]


def _items(titles: list[str], paths: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": [str(i + 1) for i in range(len(titles))],
            "title": titles,
            "text": [f"{t} | Drama" for t in titles],
            "category": "Drama",
            "image_path": paths,
        }
    )


@pytest.fixture
def items(tmp_path, make_image, write_corrupt) -> pd.DataFrame:
    """7 items: 4 good images, 1 corrupt file, 1 missing file, 1 without an image path."""
    img = tmp_path / "img"
    img.mkdir()
    paths = [str(make_image(img / f"{i}.jpg", i)) for i in range(4)]
    paths += [str(write_corrupt(img / "corrupt.jpg")), str(img / "missing.jpg"), ""]
    return _items(TITLES, paths)


class _Counting:
    """Wraps an encoder's pool to count calls (the cache must make it unnecessary)."""

    def __init__(self, monkeypatch, *encoders):
        self.calls = 0
        for enc in encoders:
            original = enc.pool

            def pool(inputs, _original=original):
                self.calls += 1
                return _original(inputs)

            monkeypatch.setattr(enc, "pool", pool)


def _no_loading(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("an encoder was loaded")

    monkeypatch.setattr(features_mod, "get_encoder", fail)


def _run(items, cache_dir, minilm, effnet, **kw):
    kw = {"batch_size": 4, "num_workers": 0, **kw}
    return extract_features(items, minilm, effnet, cache_dir=cache_dir, progress=False, **kw)


@pytest.mark.slow
def test_images_masked_and_counted(items, tmp_path, minilm, effnet):
    seen = []
    f = extract_features(
        items,
        minilm,
        effnet,
        cache_dir=tmp_path / "fc",
        batch_size=4,
        progress=False,
        progress_callback=lambda *a: seen.append(a),  # default num_workers: background decoding
    )
    assert f.item_ids == [str(i) for i in range(1, 8)]
    assert f.text.shape == (7, 384) and f.image.shape == (7, 1280) and f.image.dtype == np.float32
    assert f.image_mask.tolist() == [True] * 4 + [False] * 3
    assert not f.image[4:].any() and (np.abs(f.image[:4]).sum(axis=1) > 0).all()
    assert np.allclose(np.linalg.norm(f.text, axis=1), 1, atol=1e-5)
    assert (f.meta["missing_images"], f.meta["no_image_path"], f.meta["unreadable_images"]) == (3, 1, 2)
    assert f.meta["cache_hit"] == {"text": False, "image": False} and f.meta["random_init"] is False
    assert ("text", 7, 7) in seen and ("image", 7, 7) in seen and seen[0] == ("text", 0, 7)
    # the same rows as encoding the images directly
    direct = effnet.encode([Image.open(p).convert("RGB") for p in items.image_path[:2]])
    assert np.allclose(f.image[:2], direct.numpy(), atol=1e-4)


def test_second_call_hits_cache_without_encoding(items, tmp_path, minilm, effnet, monkeypatch):
    first = _run(items, tmp_path / "fc", minilm, effnet)
    counter = _Counting(monkeypatch, minilm, effnet)
    _no_loading(monkeypatch)
    second = _run(items, tmp_path / "fc", minilm, effnet)
    by_name = extract_features(items, cache_dir=tmp_path / "fc", progress=False)  # names: no weights load on a hit
    assert counter.calls == 0
    for again in (second, by_name):
        assert again.meta["cache_hit"] == {"text": True, "image": True}
        assert np.array_equal(again.text, first.text) and np.array_equal(again.image, first.image)
        assert np.array_equal(again.image_mask, first.image_mask) and again.meta["missing_images"] == 3


def test_content_change_misses_only_that_modality(items, tmp_path, minilm, effnet, monkeypatch, make_image):
    first = _run(items, tmp_path / "fc", minilm, effnet)
    counter = _Counting(monkeypatch, minilm)
    changed = items.copy()
    changed.loc[0, "text"] = "Toy Story (1995) | Animation"
    f = _run(changed, tmp_path / "fc", minilm, effnet)
    assert f.meta["cache_hit"] == {"text": False, "image": True} and counter.calls > 0
    assert not np.allclose(f.text[0], first.text[0]) and np.allclose(f.text[1:], first.text[1:], atol=1e-5)

    make_image(items.image_path[2], seed=99)  # same path, new bytes
    g = _run(changed, tmp_path / "fc", minilm, effnet)
    assert g.meta["cache_hit"] == {"text": True, "image": False}
    assert not np.allclose(g.image[2], first.image[2])


def test_corrupt_cache_file_is_recomputed(items, tmp_path, minilm, effnet, caplog):
    first = _run(items, tmp_path / "fc", minilm, effnet)
    tensor_path, _ = FeatureCache(tmp_path / "fc").paths(first.meta["cache_keys"]["text"])
    tensor_path.write_bytes(b"broken")
    with caplog.at_level(logging.WARNING):
        again = _run(items, tmp_path / "fc", minilm, effnet)
    assert "damaged" in caplog.text
    assert again.meta["cache_hit"] == {"text": False, "image": True}
    assert np.allclose(again.text, first.text, atol=1e-6)
    assert load_features(first.meta["cache_keys"]["text"], tmp_path / "fc") is not None  # rewritten, valid


def test_text_only_dataset_has_no_image_branch(tmp_path, minilm, monkeypatch):
    _no_loading(monkeypatch)  # the image encoder must not even be loaded
    f = extract_features(_items(TITLES[:3], [""] * 3), minilm, cache_dir=tmp_path, progress=False)
    assert f.image is None and f.image_mask is None and f.text.shape == (3, 384)
    assert f.meta["image_encoder"] is None and f.meta["missing_images"] == 0


def test_use_images_switch(items, tmp_path, minilm):
    off = extract_features(items, minilm, use_images=False, cache_dir=tmp_path, progress=False)
    assert off.image is None
    with pytest.raises(ValueError, match="image_encoder"):
        extract_features(items, minilm, image_encoder=None, use_images=True, cache_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="unique"):
        extract_features(pd.concat([items, items]), minilm, cache_dir=tmp_path, progress=False)


def _entries(root) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_cancel_during_text_writes_nothing(items, tmp_path, minilm, effnet):
    cancel = threading.Event()

    def cb(stage, done, total):
        if done >= 2:
            cancel.set()

    with pytest.raises(ExtractionCancelled):
        _run(items, tmp_path / "fc", minilm, effnet, batch_size=2, cancel=cancel, progress_callback=cb)
    assert _entries(tmp_path / "fc") == []


def test_cancel_or_ctrl_c_during_images_keeps_only_complete_entries(items, tmp_path, minilm, effnet):
    cancel = threading.Event()
    earlier = set(multiprocessing.active_children())  # e.g. an app test's background map worker

    def cancel_at_first_image_batch(stage, done, total):
        if stage == "image" and done > 0:
            cancel.set()

    with pytest.raises(ExtractionCancelled):
        _run(items, tmp_path / "fc", minilm, effnet, cancel=cancel, progress_callback=cancel_at_first_image_batch)
    names = _entries(tmp_path / "fc")
    assert len(names) == 2 and not any(n.endswith(".tmp") for n in names)  # the finished text entry only

    def ctrl_c(stage, done, total):
        if stage == "image" and done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(items, tmp_path / "fc", minilm, effnet, batch_size=2, num_workers=2, progress_callback=ctrl_c)
    assert _entries(tmp_path / "fc") == names
    assert set(multiprocessing.active_children()) <= earlier  # decoding workers were shut down


def test_aligned_source_round_trip(items, tmp_path, minilm, effnet, monkeypatch):
    src = "aligned:0123abcd"
    with pytest.raises(FeaturesNotFound):
        extract_features(items, source=src, cache_dir=tmp_path, progress=False)
    rng = np.random.default_rng(0)
    mask = np.array([True] * 4 + [False] * 3)
    aligned = ItemFeatures(
        item_ids=items.item_id.tolist(),
        text=rng.standard_normal((7, 384)).astype(np.float32),
        image=rng.standard_normal((7, 1280)).astype(np.float32),
        image_mask=mask,
    )
    keys = store_features(items, aligned, src, cache_dir=tmp_path, provenance={"sft_run": "r1"})
    assert set(keys) == {"text", "image"}
    assert load_features(keys["text"], tmp_path).meta["provenance"]["sft_run"] == "r1"
    _no_loading(monkeypatch)
    got = extract_features(items, source=src, cache_dir=tmp_path, progress=False)
    assert np.array_equal(got.text, aligned.text) and np.array_equal(got.image, aligned.image)
    assert got.image_mask.tolist() == mask.tolist() and got.meta["source"] == src
    raw_key = extract_features(items, minilm, use_images=False, cache_dir=tmp_path, progress=False).meta["cache_keys"]
    assert raw_key["text"] != keys["text"]  # raw and aligned never share an entry
    with pytest.raises(ValueError, match="derived sources"):
        store_features(items, aligned, "raw", cache_dir=tmp_path)


def test_aligned_features_from_given_encoders_are_cached(items, tmp_path, minilm, effnet, monkeypatch):
    src = "aligned:feedbeef"
    made = _run(items, tmp_path, minilm, effnet, source=src)  # instances: computed and stored under `src`
    _no_loading(monkeypatch)
    read = extract_features(items, source=src, cache_dir=tmp_path, progress=False)
    assert read.meta["cache_hit"] == {"text": True, "image": True} and np.array_equal(read.text, made.text)


def test_real_posters(posters, tmp_path, minilm, effnet):
    titles = ["Toy Story (1995)", "Jumanji (1995)", "Grumpier Old Men (1995)", "Heat (1995)"]
    f = _run(_items(titles, [str(p) for p in posters]), tmp_path, minilm, effnet)
    assert f.image_mask.all() and f.meta["missing_images"] == 0
    assert (np.linalg.norm(f.image, axis=1) > 0).all()


def test_image_rows_are_centred_and_unit_norm_and_missing_rows_stay_zero() -> None:
    from sicsrec.run.prepare import normalize_image_features

    rng = np.random.default_rng(0)
    raw = rng.uniform(0, 6, size=(6, 5)).astype(np.float32)  # CNN-like: non-negative, large
    raw[2] = 0.0
    mask = np.array([1, 1, 0, 1, 1, 1], dtype=np.float32)
    out = normalize_image_features(raw, mask, "center_l2")
    have = mask.astype(bool)
    assert np.allclose(np.linalg.norm(out[have], axis=1), 1.0, atol=1e-5) and not out[2].any()
    mean = raw[have].mean(axis=0)
    assert np.allclose(out[0], (raw[0] - mean) / np.linalg.norm(raw[0] - mean), atol=1e-5)
    assert normalize_image_features(raw, mask, "none") is raw
    with pytest.raises(ValueError, match="image_norm"):
        normalize_image_features(raw, mask, "zscore")
