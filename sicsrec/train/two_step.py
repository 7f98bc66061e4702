"""Stage B training per the spec: step 1 (SASRec, ID only) then step 2 (SICSRec, or its ID-only control, on
top of the frozen step-1 ID encoder with low-rank adapters). Baselines go through the same `Trainer`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from sicsrec.config import ModelConfig, TrainConfig
from sicsrec.data.split import Split
from sicsrec.model import MODELS, ItemTables, SASRec, SeqRecModel
from sicsrec.model.content_seq import ContentItems
from sicsrec.model.step2 import Step2Model
from sicsrec.train.trainer import FitResult, Trainer
from sicsrec.utils import seed_everything

log = logging.getLogger("sicsrec.train")


class Cancelled(Exception):
    """Training was cancelled before a model of the requested kind existed."""


@dataclass
class Trained:
    model: SeqRecModel
    fits: list[FitResult]

    @property
    def epochs(self) -> int:
        return sum(f.epochs for f in self.fits)

    @property
    def seconds(self) -> float:
        return sum(f.seconds for f in self.fits)


def tables_for_split(
    split: Split, item_ids: list[str], text: np.ndarray, image: np.ndarray | None, mask: np.ndarray | None
) -> ItemTables:
    """Reorder feature rows (given in `item_ids` order) to the split's item indices 1..N."""
    pos = {iid: i for i, iid in enumerate(item_ids)}
    missing = [iid for iid in split.item_ids if iid not in pos]
    if missing:
        raise ValueError(f"features lack {len(missing)} items of the split, e.g. {missing[:3]}")
    rows = np.fromiter((pos[iid] for iid in split.item_ids), dtype=np.int64, count=split.n_items)
    return ItemTables.from_arrays(
        text[rows], None if image is None else image[rows], None if mask is None else mask[rows]
    )


def build_model(name: str, cfg: ModelConfig, split: Split, tables: ItemTables | None) -> SeqRecModel:
    """Construct a registered model; content models get their feature tables copied in."""
    cls = MODELS[name]
    if not cls.uses_content:
        return cls(cfg, split.n_items)
    counts = torch.bincount(split.train_targets.flatten(), minlength=split.n_items + 1)[: split.n_items + 1]
    if tables is None:
        raise ValueError(f"model {name!r} needs content features")
    image_dim = tables.image.shape[1] if tables.image is not None else None
    content_cls: Callable[..., SeqRecModel] = cls  # content models also take the feature widths
    model = content_cls(cfg, split.n_items, text_dim=tables.text.shape[1], image_dim=image_dim)
    content = model.get_submodule("content")
    assert isinstance(content, ContentItems)
    content.load_tables(tables)
    counts[0] = 0  # the padding target
    model.set_item_counts(counts)
    return model


def train_model(
    name: str,
    split: Split,
    tables: ItemTables | None,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    trainer: Trainer,
    step1: Trained | None = None,
) -> Trained:
    """Train one model. A step-2 model (SICSRec, the ID control) with two_step starts from step 1 (SASRec),
    trained first unless given."""
    seed_everything(train_cfg.seed)
    step2 = MODELS[name].starts_from_step1
    if not step2 or not train_cfg.two_step:
        model = build_model(name, model_cfg, split, tables)
        stage = f"{name} (one step)" if step2 else name
        return Trained(model, [trainer.fit(model, split, stage)])
    if step1 is None:
        step1 = train_model("sasrec", split, None, model_cfg, train_cfg, trainer)
        if trainer.cancel.is_set():
            raise Cancelled("cancelled during step 1; step 2 not started")
    seed_everything(train_cfg.seed)
    model = build_model(name, model_cfg, split, tables)
    assert isinstance(model, Step2Model) and isinstance(step1.model, SASRec)
    model.load_step1(step1.model, freeze=train_cfg.freeze_step1)
    fit = trainer.fit(model, split, f"{name} step 2")
    return Trained(model, [*step1.fits, fit])
