"""On-disk cache of per-item feature matrices, keyed by a content hash.

One entry is two files in `<root>/<key[:2]>/`: `<key>.safetensors` (tensors `features` [n, d]
float32 and `mask` [n] uint8) and `<key>.json` (encoder, dim, n, item_ids, provenance, counts,
created, and the sha256 of the tensor file). Each file is written to a temporary file in the same
folder and moved into place with `os.replace`: the tensors to `<key>.safetensors.pending`, then the
sidecar (the commit point), then the pending tensors over the old ones. A kill at any point leaves
the previous entry or the new one readable: `get` takes whichever of the two tensor files matches
the sidecar's sha256. Reading parses only safetensors and JSON (never pickle), checks the stored
sha256 and shapes, and treats any damaged entry as a miss (logged warning), never as an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from sicsrec.utils import atomic_write_bytes

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """The cache root: `$SICSREC_CACHE` if set, else `~/.cache/sicsrec/features`."""
    env = os.environ.get("SICSREC_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sicsrec" / "features"


def cache_key(*parts: Any) -> str:
    """sha256 hex digest of JSON-serialisable parts (canonical JSON, so dict order is irrelevant)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _pending(tensor_path: Path) -> Path:
    """Where `put` stages a tensor file until its sidecar is committed."""
    return tensor_path.with_name(tensor_path.name + ".pending")


def _matching(sha256: str, *paths: Path) -> bytes | None:
    """The bytes of the first existing file among `paths` whose sha256 is `sha256`, or None."""
    for path in paths:
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            continue
        if hashlib.sha256(blob).hexdigest() == sha256:
            return blob
    return None


@dataclass
class CacheEntry:
    """A cached feature matrix: features [n, d] float32, mask [n] bool, and its JSON sidecar."""

    features: np.ndarray
    mask: np.ndarray
    meta: dict


class FeatureCache:
    """Content-addressed store of feature matrices under one root folder."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    def paths(self, key: str) -> tuple[Path, Path]:
        """(tensor file, JSON sidecar) for `key`."""
        if len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"not a cache key (lowercase hex expected): {key!r}")
        folder = self.root / key[:2]
        return folder / f"{key}.safetensors", folder / f"{key}.json"

    def get(self, key: str) -> CacheEntry | None:
        """The entry for `key`, or None when absent or damaged (damage is logged as a warning)."""
        tensor_path, meta_path = self.paths(key)
        if not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            blob = _matching(meta["file_sha256"], tensor_path, _pending(tensor_path))
            if blob is None:
                raise ValueError("tensor file does not match the sha256 in its sidecar")
            tensors = st_load(blob)
            features = np.array(tensors["features"], dtype=np.float32)
            mask = np.array(tensors["mask"]).astype(bool)
            n, dim = int(meta["n"]), int(meta["dim"])
            if features.shape != (n, dim) or mask.shape != (n,):
                raise ValueError(f"shapes {features.shape}/{mask.shape} differ from n={n}, dim={dim}")
        except Exception as exc:  # any damage (truncation, bad JSON, bad header, ...) is a miss
            logger.warning("feature cache entry %s is damaged (%s); recomputing", key[:12], exc)
            return None
        return CacheEntry(features=features, mask=mask, meta=meta)

    def put(
        self,
        key: str,
        features: np.ndarray,
        mask: np.ndarray | None = None,
        meta: dict | None = None,
    ) -> Path:
        """Atomically store features [n, d] (mask defaults to all True); returns the sidecar path."""
        features = np.ascontiguousarray(features, dtype=np.float32)
        if features.ndim != 2:
            raise ValueError(f"features must be 2-D [n, d], got shape {features.shape}")
        n, dim = features.shape
        mask = np.ones(n, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        if mask.shape != (n,):
            raise ValueError(f"mask must have shape ({n},), got {mask.shape}")
        blob = st_save({"features": features, "mask": mask.astype(np.uint8)})
        sidecar = {
            **(meta or {}),
            "format": CACHE_FORMAT,
            "key": key,
            "n": n,
            "dim": dim,
            "counts": {"n": n, "valid": int(mask.sum()), "missing": int(n - mask.sum())},
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "file_sha256": hashlib.sha256(blob).hexdigest(),
        }
        sidecar_blob = json.dumps(sidecar, indent=1, ensure_ascii=False).encode("utf-8")
        tensor_path, meta_path = self.paths(key)
        pending = _pending(tensor_path)
        # The sidecar's rename is the commit point: the new tensors wait beside the old ones until it is
        # in place, so a kill at any moment leaves the old entry or the new one readable (`get`).
        try:
            atomic_write_bytes(pending, blob)
            atomic_write_bytes(meta_path, sidecar_blob)
        except BaseException:
            pending.unlink(missing_ok=True)
            raise
        with contextlib.suppress(FileNotFoundError):  # a concurrent put of the same key moved it already
            os.replace(pending, tensor_path)
        return meta_path
