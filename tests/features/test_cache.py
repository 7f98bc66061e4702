"""The on-disk feature cache: round trip, atomic writes, damaged entries are misses, no code execution."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle

import numpy as np
import pytest

from sicsrec.features import FeatureCache, cache_key, default_cache_dir
from sicsrec.features import cache as cache_mod

KEY = cache_key("test", 1)


def _entry(n: int = 5, d: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, d)).astype(np.float32), np.array([True, False, True, True, False])[:n]


def _files(root):
    return sorted(p.name for p in root.rglob("*") if p.is_file())


def test_round_trip_and_sidecar(tmp_path):
    cache = FeatureCache(tmp_path)
    feats, mask = _entry()
    cache.put(KEY, feats, mask, {"encoder": {"name": "x"}, "item_ids": list("abcde"), "provenance": {"source": "raw"}})
    got = cache.get(KEY)
    assert np.array_equal(got.features, feats) and got.features.dtype == np.float32
    assert got.mask.dtype == bool and got.mask.tolist() == mask.tolist()
    assert got.meta["n"] == 5 and got.meta["dim"] == 7 and got.meta["item_ids"] == list("abcde")
    assert got.meta["counts"] == {"n": 5, "valid": 3, "missing": 2} and got.meta["created"]
    assert _files(tmp_path) == [f"{KEY}.json", f"{KEY}.safetensors"]  # no temp files left
    assert cache.get(cache_key("other")) is None


def test_mask_defaults_to_all_true(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.put(KEY, np.ones((3, 2)))
    assert cache.get(KEY).mask.tolist() == [True, True, True]


def test_failed_write_leaves_no_entry_and_no_temp_files(tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path)
    real_replace = os.replace

    def replace_fails_on_sidecar(src, dst):
        if str(dst).endswith(".json"):
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(cache_mod.os, "replace", replace_fails_on_sidecar)
    with pytest.raises(OSError):
        cache.put(KEY, *_entry())
    assert not any(name.endswith(".tmp") for name in _files(tmp_path))
    assert cache.get(KEY) is None  # tensor file without its sidecar is not an entry


@pytest.mark.parametrize("damage", ["garbage", "truncate", "tamper", "bad_json", "shape"])
def test_damaged_entry_is_a_miss_with_warning(tmp_path, caplog, damage):
    cache = FeatureCache(tmp_path)
    cache.put(KEY, *_entry())
    tensor_path, meta_path = cache.paths(KEY)
    if damage == "garbage":
        tensor_path.write_bytes(b"\x00" * 100)
    elif damage == "truncate":
        tensor_path.write_bytes(tensor_path.read_bytes()[:50])
    elif damage == "tamper":  # a valid tensor file that is not the one the sidecar describes
        FeatureCache(tmp_path / "other").put(KEY, np.zeros((5, 7)))
        tensor_path.write_bytes(FeatureCache(tmp_path / "other").paths(KEY)[0].read_bytes())
    elif damage == "bad_json":
        meta_path.write_text("{not json")
    else:
        meta = json.loads(meta_path.read_text())
        meta["dim"] = 8
        meta_path.write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING, logger="sicsrec.features.cache"):
        assert cache.get(KEY) is None
    assert "damaged" in caplog.text


def test_loading_never_unpickles(tmp_path):
    """A pickle payload in place of the tensor file (with a matching sha256) is rejected, not run."""
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    cache = FeatureCache(tmp_path / "c")
    cache.put(KEY, *_entry())
    tensor_path, meta_path = cache.paths(KEY)
    blob = pickle.dumps(Payload())
    tensor_path.write_bytes(blob)
    meta = json.loads(meta_path.read_text())
    meta["file_sha256"] = hashlib.sha256(blob).hexdigest()
    meta_path.write_text(json.dumps(meta))
    assert cache.get(KEY) is None
    assert not marker.exists()


def test_keys_are_canonical_and_validated(tmp_path):
    assert cache_key({"a": 1, "b": 2}) == cache_key({"b": 2, "a": 1})
    assert cache_key("x") != cache_key("y") and len(cache_key("x")) == 64
    with pytest.raises(ValueError):
        FeatureCache(tmp_path).paths("../../etc/passwd")


def test_default_root_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SICSREC_CACHE", str(tmp_path / "fc"))
    assert default_cache_dir() == tmp_path / "fc" and FeatureCache().root == tmp_path / "fc"
    monkeypatch.delenv("SICSREC_CACHE")
    assert default_cache_dir().parts[-3:] == (".cache", "sicsrec", "features")
