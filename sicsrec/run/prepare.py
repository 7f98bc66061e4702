"""The first stage of every run: dataset -> leave-one-out split -> content feature tables."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

from sicsrec.config import DataConfig, FeatureConfig
from sicsrec.data.schema import Dataset
from sicsrec.data.split import Split, build_split
from sicsrec.events import FeatureProgress, ProgressHook
from sicsrec.model import ItemTables
from sicsrec.train.two_step import tables_for_split
from sicsrec.utils import resolve_device

log = logging.getLogger("sicsrec")

DEMO = "demo"


@dataclass
class Prepared:
    dataset: Dataset
    split: Split
    tables: ItemTables | None
    features_meta: dict


def load_data(cfg: DataConfig) -> Dataset:
    """The dataset named by `cfg.path` ('demo' = the embedded MovieLens demo)."""
    from sicsrec.data import load_dataset, load_demo

    if cfg.path in ("", DEMO):
        return load_demo(images=cfg.images)
    return load_dataset(
        cfg.path,
        format=cfg.format,
        images=cfg.images,
        min_user_interactions=cfg.min_user_interactions,
        min_item_interactions=cfg.min_item_interactions,
        confine_images=cfg.confine_images,
    )


def split_data(ds: Dataset, cfg: DataConfig) -> Split:
    """The leave-one-out split `cfg` asks for (history length, window stride, training rows)."""
    return build_split(ds, cfg.max_len, cfg.window_stride, cfg.train_rows)


def prepare(
    data: DataConfig,
    features: FeatureConfig | None,
    device: str = "cpu",
    progress: ProgressHook | None = None,
    cancel: threading.Event | None = None,
    show_bar: bool = True,
) -> Prepared:
    """Load and split the data; with `features`, extract (or read cached) content features too."""
    ds = load_data(data)
    split = split_data(ds, data)
    log.info("%s: %s", ds.name, ", ".join(f"{k}={v:,}" for k, v in split.counts().items()))
    if features is None:
        return Prepared(ds, split, None, {})
    from sicsrec.features import extract_features

    items = ds.feature_items(features.text_field)
    source = features.source
    if source == "aligned":  # the latest stage-A features for this content (a clear error when there are none)
        from sicsrec.stage_a.align import resolve_aligned_source

        source = resolve_aligned_source(items, features.text_encoder, features.image_encoder, features.use_images)
    feats = extract_features(
        items,
        text_encoder=features.text_encoder,
        image_encoder=features.image_encoder,
        use_images=features.use_images,
        device=str(resolve_device(device)),
        progress=show_bar,
        progress_callback=None if progress is None else lambda *a: progress(FeatureProgress(*a)),
        cancel=cancel,
        source=source,
    )
    image = (
        feats.image
        if feats.image is None
        else normalize_image_features(feats.image, feats.image_mask, features.image_norm)
    )
    tables = tables_for_split(split, feats.item_ids, feats.text, image, feats.image_mask)
    return Prepared(ds, split, tables, {**feats.meta, "image_norm": features.image_norm if image is not None else None})


IMAGE_NORMS = ("center_l2", "none")


def normalize_image_features(image: np.ndarray, mask: np.ndarray | None, how: str) -> np.ndarray:
    """Image feature rows brought to the text rows' form ("center_l2"), or left raw ("none").

    The mean is taken over items that have an image; rows without one stay zero (their mask is 0).
    """
    if how not in IMAGE_NORMS:
        raise ValueError(f"image_norm must be one of {', '.join(IMAGE_NORMS)}, got {how!r}")
    if how == "none":
        return image
    has = np.ones(len(image), dtype=bool) if mask is None else np.asarray(mask).astype(bool).reshape(len(image))
    out = np.zeros_like(image, dtype=np.float32)
    if has.any():
        centred = image[has] - image[has].mean(axis=0, keepdims=True)  # (n_with_image, D)
        out[has] = centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)
    return out
