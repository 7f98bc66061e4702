"""Per-item text and image features for an item table, cached on disk by content.

`extract_features(items)` returns an `ItemFeatures` aligned with `items` row order. Each
modality is one cache entry whose key hashes (feature format, encoder spec, source, content):
the ordered texts for text, the ordered image files' sha1 for images. Item ids are not part of
the key: features are a function of content only.

Sources. `source="raw"` features come from the pretrained encoders and are computed on a miss.
Any other source (by convention `"aligned:<provenance-hash>"`, written by the stage-A
fine-tuning) names features that cannot be recomputed from the encoder names alone; there are
two ways to write them, both under the same keys `extract_features(items, source=...)` reads:

* `extract_features(items, text_encoder=<fine-tuned Encoder>, image_encoder=<...>, source=s)`
  computes with the given instances (same `preprocess`/`pool` as raw extraction) and caches;
* `store_features(items, ItemFeatures(...), source=s)` stores arrays computed elsewhere.

Later `extract_features(items, source=s)` with encoder names is a cache read; a missing entry
raises `FeaturesNotFound`. `load_features(key)` reads one entry by the key `store_features`
returned.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from sicsrec import __version__, dist
from sicsrec.features.cache import CacheEntry, FeatureCache, cache_key
from sicsrec.features.encoders import Encoder, EncoderSpec, encoder_spec, get_encoder
from sicsrec.features.images import image_loader

logger = logging.getLogger(__name__)

FEATURE_FORMAT = 1  # bump when extraction semantics change, so old cache entries stop matching

ProgressCallback = Callable[[str, int, int], None]
EncoderRef = str | Encoder


class ExtractionCancelled(Exception):
    """Raised when the cancel event is set; nothing partial was written to the cache."""


class FeaturesNotFound(LookupError):
    """Features of a non-raw source (e.g. "aligned:<hash>") are not in the cache."""


@dataclass
class ItemFeatures:
    """Feature matrices aligned with `item_ids`: text [n, dt]; image [n, dv] and image_mask [n] or None."""

    item_ids: list[str]
    text: np.ndarray
    image: np.ndarray | None = None
    image_mask: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.item_ids)
        if self.text.ndim != 2 or self.text.shape[0] != n:
            raise ValueError(f"text must be [n={n}, d], got {self.text.shape}")
        if (self.image is None) != (self.image_mask is None):
            raise ValueError("image and image_mask must both be set or both be None")
        if (
            self.image is not None
            and self.image_mask is not None
            and (self.image.ndim != 2 or self.image.shape[0] != n or self.image_mask.shape != (n,))
        ):
            raise ValueError(
                f"image must be [n={n}, d] with mask [n], got {self.image.shape} / {self.image_mask.shape}"
            )


def item_content(items: pd.DataFrame) -> tuple[list[str], list[str], list[str]]:
    """(item ids, texts, image paths) in row order; a blank text falls back to the title."""
    for col in ("item_id", "text"):
        if col not in items.columns:
            raise ValueError(f"items table has no {col!r} column")
    ids = items["item_id"].astype(str).tolist()
    if len(set(ids)) != len(ids):
        raise ValueError("item_id values must be unique")
    texts = items["text"].fillna("").astype(str).str.strip()
    if "title" in items.columns:
        texts = texts.where(texts != "", items["title"].fillna("").astype(str))
    paths = items["image_path"].fillna("").astype(str).tolist() if "image_path" in items.columns else [""] * len(ids)
    return ids, texts.tolist(), paths


def text_digest(texts: list[str]) -> str:
    """sha256 of the ordered texts."""
    return hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode("utf-8")).hexdigest()


def image_digest(paths: list[str]) -> str:
    """sha256 over the ordered image files' sha1 ("none" for no path, "unreadable" for an I/O error)."""
    h = hashlib.sha256()
    for p in paths:
        if not p:
            h.update(b"none\n")
            continue
        try:
            h.update(hashlib.sha1(Path(p).read_bytes()).hexdigest().encode() + b"\n")
        except OSError:
            h.update(b"unreadable\n")
    return h.hexdigest()


def feature_key(spec: EncoderSpec, source: str, content_digest: str) -> str:
    """Cache key of one modality's features: format, encoder spec, source and content digest."""
    return cache_key("sicsrec-features", FEATURE_FORMAT, spec.to_dict(), source, content_digest)


class _Progress:
    """tqdm bars, the optional callback(stage, done, total) and the cancel check, in one place."""

    def __init__(self, show: bool, cancel: threading.Event | None, callback: ProgressCallback | None) -> None:
        self.show, self.cancel, self.callback = show, cancel, callback

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise ExtractionCancelled("feature extraction cancelled")

    def notify(self, stage: str, done: int, total: int) -> None:
        if self.callback is not None:
            self.callback(stage, done, total)

    @contextmanager
    def stage(self, stage: str, total: int, desc: str, unit: str) -> Iterator[Callable[[int], None]]:
        """A bar for one stage; yields step(k) to call after each batch of k items."""
        done = 0
        self.notify(stage, 0, total)
        with tqdm(total=total, desc=desc, unit=unit, disable=not self.show, dynamic_ncols=True) as bar:

            def step(k: int) -> None:
                nonlocal done
                done += k
                bar.update(k)
                self.notify(stage, done, total)

            yield step


def _spec_of(ref: EncoderRef, modality: str) -> EncoderSpec:
    """Spec of an encoder given by registry name (no weights loaded) or instance."""
    if isinstance(ref, Encoder):
        if ref.modality != modality:
            raise ValueError(f"encoder '{ref.name}' is a {ref.modality} encoder, expected {modality}")
        return ref.spec
    return encoder_spec(ref, modality=modality)


def _encode_texts(enc: Encoder, texts: list[str], batch_size: int, prog: _Progress) -> tuple[np.ndarray, np.ndarray]:
    """Text features [n, d] in batches (cancel checked between batches); mask is all True."""
    out = np.zeros((len(texts), enc.dim), dtype=np.float32)
    with prog.stage("text", len(texts), f"text features ({enc.name})", "title") as step:
        for i in range(0, len(texts), batch_size):
            prog.check_cancel()
            chunk = texts[i : i + batch_size]
            out[i : i + len(chunk)] = enc.encode(chunk, batch_size=batch_size).numpy()
            step(len(chunk))
    return out, np.ones(len(texts), dtype=bool)


def _encode_images(
    enc: Encoder, paths: list[str], batch_size: int, num_workers: int | None, prog: _Progress
) -> tuple[np.ndarray, np.ndarray]:
    """Image features [n, d] decoded in background workers; unreadable images stay zero, mask False."""
    out = np.zeros((len(paths), enc.dim), dtype=np.float32)
    mask = np.zeros(len(paths), dtype=bool)
    batches = iter(image_loader(paths, enc.transform, batch_size=batch_size, num_workers=num_workers))
    try:
        with prog.stage("image", len(paths), f"image features ({enc.name})", "image") as step:
            start = 0
            for x, valid in batches:
                prog.check_cancel()
                valid = valid.numpy().astype(bool)
                rows = np.arange(start, start + len(valid))
                if valid.any():
                    out[rows[valid]] = enc.embed(x[torch.from_numpy(valid)]).numpy()
                mask[rows] = valid
                start += len(valid)
                step(len(valid))
    finally:
        del batches  # stops the loader's worker processes now, also on cancel or Ctrl-C
    return out, mask


def _provenance(source: str, digest: str, extra: dict | None = None) -> dict:
    """Where an entry came from: source, content digest, format and library versions."""
    return {
        "source": source,
        "content_digest": digest,
        "feature_format": FEATURE_FORMAT,
        "sicsrec": __version__,
        "torch": torch.__version__,
        **(extra or {}),
    }


def _put(cache: FeatureCache, key: str, feats: np.ndarray, mask: np.ndarray, meta: dict) -> None:
    """Store an entry; an unwritable cache only costs a warning, never the computed features."""
    try:
        cache.put(key, feats, mask, meta)
    except OSError as exc:
        logger.warning("could not write feature cache entry %s under %s: %s", key[:12], cache.root, exc)


def _modality_features(
    cache: FeatureCache,
    ref: EncoderRef,
    spec: EncoderSpec,
    source: str,
    ids: list[str],
    digest: str,
    device: str,
    prog: _Progress,
    compute: Callable[[Encoder, slice], tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, str, bool]:
    """(features, mask, key, cache_hit) for one modality: cache read, else load encoder + compute + store.

    Under torchrun every rank computes its slice of the items (`compute(encoder, rows)`), the slices are
    gathered in order and rank 0 alone writes the cache entry; a miss on any rank is a miss on all."""
    key = feature_key(spec, source, digest)
    entry = cache.get(key)
    if dist.all_reduce_sum(torch.tensor([int(entry is None)])).item() > 0:
        entry = None
    if entry is not None:
        prog.notify(spec.modality, len(ids), len(ids))
        return entry.features, entry.mask, key, True
    if source != "raw" and not isinstance(ref, Encoder):
        raise FeaturesNotFound(
            f"no cached {spec.modality} features for source {source!r} and encoder '{spec.name}' on this "
            "content; write them with store_features() or extract_features() with the fine-tuned encoders"
        )
    prog.check_cancel()
    enc = ref if isinstance(ref, Encoder) else get_encoder(ref, device=device, modality=spec.modality)
    feats, mask = compute(enc, dist.shard(len(ids)))
    if dist.active():
        dim = feats.shape[1]
        feats = dist.all_gather_rows(torch.from_numpy(feats).reshape(-1)).reshape(-1, dim).numpy()  # (n, d)
        mask = dist.all_gather_rows(torch.from_numpy(mask.astype(np.uint8))).numpy().astype(bool)
    meta = {
        "encoder": spec.to_dict(),
        "modality": spec.modality,
        "item_ids": ids,
        "provenance": _provenance(source, digest, {"device": str(enc.device)}),
    }
    if dist.is_main():
        _put(cache, key, feats, mask, meta)
    return feats, mask, key, False


def extract_features(
    items: pd.DataFrame,
    text_encoder: EncoderRef = "minilm",
    image_encoder: EncoderRef | None = "efficientnet-lite0",
    use_images: bool | None = None,
    device: str = "cpu",
    batch_size: int = 64,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    cancel: threading.Event | None = None,
    source: str = "raw",
    progress_callback: ProgressCallback | None = None,
    num_workers: int | None = None,
) -> ItemFeatures:
    """Text (and image) features of `items` in row order, from the cache or computed and cached.

    Encoders are registry names (loaded only on a cache miss) or `Encoder` instances.
    use_images=None turns the image branch on when any item has an image_path; without it
    `image` is None. Unreadable images give a zero vector with mask False, counted in
    meta["missing_images"]. Setting `cancel` (or Ctrl-C) stops between batches with
    `ExtractionCancelled` (or KeyboardInterrupt) and writes no partial entry.
    `progress_callback(stage, done, total)` reports "text"/"image" progress for the app.
    """
    started = time.perf_counter()
    if not source.strip():
        raise ValueError("source must be 'raw' or a non-empty provenance name like 'aligned:<hash>'")
    ids, texts, paths = item_content(items)
    with_images = any(paths) if use_images is None else use_images
    if with_images and image_encoder is None:
        raise ValueError("use_images=True needs an image_encoder")
    cache = FeatureCache(cache_dir)
    prog = _Progress(progress, cancel, progress_callback)
    prog.check_cancel()

    text_spec = _spec_of(text_encoder, "text")
    text, _, text_key, text_hit = _modality_features(
        cache,
        text_encoder,
        text_spec,
        source,
        ids,
        text_digest(texts),
        device,
        prog,
        lambda enc, rows: _encode_texts(enc, texts[rows], batch_size, prog),
    )
    image = mask = image_spec = image_key = image_hit = None
    if with_images:
        assert image_encoder is not None  # checked above
        image_spec = _spec_of(image_encoder, "image")
        image, mask, image_key, image_hit = _modality_features(
            cache,
            image_encoder,
            image_spec,
            source,
            ids,
            image_digest(paths),
            device,
            prog,
            lambda enc, rows: _encode_images(enc, paths[rows], batch_size, num_workers, prog),
        )

    no_path = sum(1 for p in paths if not p) if with_images else 0
    missing = int((~mask).sum()) if mask is not None else 0
    meta = {
        "source": source,
        "n_items": len(ids),
        "text_encoder": text_spec.to_dict(),
        "image_encoder": image_spec.to_dict() if image_spec else None,
        "cache_keys": {"text": text_key, "image": image_key},
        "cache_hit": {"text": text_hit, "image": image_hit},
        "missing_images": missing,
        "no_image_path": no_path,
        "unreadable_images": missing - no_path,
        "random_init": text_spec.random_init or bool(image_spec and image_spec.random_init),
        "seconds": round(time.perf_counter() - started, 3),
    }
    if missing:
        logger.info("%d of %d items have no usable image (zero vector, mask False)", missing, len(ids))
    return ItemFeatures(item_ids=ids, text=text, image=image, image_mask=mask, meta=meta)


def store_features(
    items: pd.DataFrame,
    features: ItemFeatures,
    source: str,
    text_encoder: EncoderRef = "minilm",
    image_encoder: EncoderRef | None = "efficientnet-lite0",
    cache_dir: str | Path | None = None,
    provenance: dict | None = None,
) -> dict[str, str]:
    """Cache features computed elsewhere (e.g. stage-A aligned) where `extract_features(source=...)` finds them.

    `features` must follow `items` row order; the encoders name the base models the features
    derive from (part of the key); the feature dims may differ from theirs (e.g. projected
    features). Returns {"text": key[, "image": key]}.
    """
    if source == "raw" or not source.strip():
        raise ValueError("store_features is for derived sources like 'aligned:<hash>'; raw features are extracted")
    ids, texts, paths = item_content(items)
    if features.item_ids != ids:
        raise ValueError("features.item_ids must equal items['item_id'] in row order")
    cache = FeatureCache(cache_dir)
    parts: list[tuple[str, str | Encoder, str, np.ndarray, np.ndarray | None]] = [
        ("text", text_encoder, text_digest(texts), features.text, np.ones(len(ids), dtype=bool))
    ]
    if features.image is not None:
        if image_encoder is None:
            raise ValueError("image features given without an image_encoder")
        parts.append(("image", image_encoder, image_digest(paths), features.image, features.image_mask))
    keys = {}
    for modality, ref, digest, feats, mask in parts:
        spec = _spec_of(ref, modality)
        keys[modality] = feature_key(spec, source, digest)
        meta = {
            "encoder": spec.to_dict(),
            "modality": modality,
            "item_ids": ids,
            "provenance": _provenance(source, digest, provenance),
        }
        cache.put(keys[modality], feats, mask, meta)
    return keys


def load_features(key: str, cache_dir: str | Path | None = None) -> CacheEntry | None:
    """One cached entry (features, mask, meta) by key, or None when absent or damaged."""
    return FeatureCache(cache_dir).get(key)
