"""Add items to a trained checkpoint without retraining: recommend a video the day it is uploaded.

New items come as rows `item_id, title[, text][, image]` (a CSV file, a DataFrame or a list of dicts; Chinese
or English titles). Their titles (and covers, when the checkpoint was trained with images) go through the
encoders the checkpoint's features came from; the content-to-ID bridge (`sicsrec.serve.bridge`), fitted on
the checkpoint's items with interactions, turns those features into every trained row a new item needs. The
result is a recommender (and, with `out`, a checkpoint folder written atomically) that ranks old and new
items together; existing items keep their exact scores, and new ones are labelled `scored_by: "content"`.

Rows that cannot be used are skipped and reported like the loaders' findings (`data.schema.Problem`): a
blank id or title, an id already in the catalogue or repeated in the file, a cover that is no usable image
(the item is then added from its title). A file that is missing, empty, not UTF-8, without the item_id and
title columns, or with no usable row raises `DataError`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import torch

from sicsrec.checkpoint import CheckpointError, save_checkpoint
from sicsrec.data.loaders import _find_column, _read_table
from sicsrec.data.schema import DataError, Problem, ValidationReport
from sicsrec.features import extract_features, load_features
from sicsrec.features.images import image_problem
from sicsrec.serve.bridge import BridgeConfig, content_matrix, extend_model, fit_bridge
from sicsrec.serve.recommender import Recommender

log = logging.getLogger(__name__)

ROWS_NAME = "new items"  # the "file" problems name when the rows did not come from a file
# config.json keys save_checkpoint writes itself from the model; everything else is carried over
MODEL_KEYS = ("format", "model", "n_items", "text_dim", "image_dim", "model_cfg")
Rows: TypeAlias = str | Path | pd.DataFrame | Sequence[Mapping[str, Any]]


@dataclass
class NewItems:
    """The usable rows (item_id, title, text, image_path; text falls back to the title) and what was skipped."""

    rows: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)


@dataclass
class AddedItems:
    """What `add_items` did: the grown recommender, the ids added, the problems, the bridge's fit, the folder."""

    recommender: Recommender
    added: list[str]
    problems: list[Problem]
    bridge: dict[str, Any]  # per trained table: the chosen ridge strength and its leave-one-out R²
    path: Path | None = None

    @property
    def messages(self) -> list[str]:
        """One line per problem, then what was added (for the CLI and the app)."""
        where = f" into {self.path}" if self.path else ""
        return [str(p) for p in self.problems] + [f"added {len(self.added)} item(s){where}, scored from content"]


def _frame(rows: Rows) -> tuple[pd.DataFrame, str, Path | None, ValidationReport]:
    """The rows as string columns with `_line` (1-based, header = 1), their name, the CSV's folder (or None)."""
    report = ValidationReport()
    if isinstance(rows, (str, Path)):
        path = Path(rows)
        return _read_table(path, path.parent, report, sep=None), str(path), path.parent, report
    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if frame.empty:
        raise DataError(f"{ROWS_NAME}: no rows (expected item_id, title[, image] per new item)")
    frame = frame.astype(object).where(frame.notna(), "").astype(str)
    return frame.assign(_line=np.arange(2, len(frame) + 2)), ROWS_NAME, None, report


def read_new_items(rows: Rows, known: set[str], images: str | Path | None = None, with_images: bool = True) -> NewItems:
    """Validate new-item rows against the catalogue `known`; DataError when none is usable.

    Covers: an `image` column (a path, relative to `images` or else to the CSV's folder), or else
    `<images>/<item_id>.jpg` when `images` is given; checked here, so a bad one is reported, not encoded."""
    frame, name, csv_folder, report = _frame(rows)
    columns = [str(c) for c in frame.columns]
    id_col, title_col = _find_column(columns, ("item_id", "id")), _find_column(columns, ("title", "name"))
    if id_col is None or title_col is None:
        shown = [c for c in columns if not c.startswith("_")]
        raise DataError(f"{name}: needs the columns item_id and title (found {shown}); one row per new item")
    text_col, image_col = _find_column(columns, ("text",)), _find_column(columns, ("image", "image_path", "cover"))
    items = pd.DataFrame(
        {
            "item_id": frame[id_col].str.strip(),
            "title": frame[title_col].str.strip(),
            "text": frame[text_col].str.strip() if text_col else "",
            "image": frame[image_col].str.strip() if image_col else "",
            "line": frame["_line"].astype(int),
        }
    )
    problems = list(report.problems)
    skip = pd.Series(False, index=items.index)
    checks = [  # (rows to skip given those skipped so far, message): a row is reported for its first problem only
        (lambda: items["item_id"] == "", lambda r: "no item_id; row skipped"),
        (lambda: items["title"] == "", lambda r: f"item {r.item_id!r} has no title; row skipped"),
        (
            lambda: items["item_id"].isin(known),
            lambda r: f"item {r.item_id!r} is already in the catalogue; row skipped",
        ),
        (
            lambda: items["item_id"].where(~skip).duplicated(),  # among the rows still kept
            lambda r: f"item {r.item_id!r} is repeated (its first usable row is kept); row skipped",
        ),
    ]
    for rule, message in checks:
        bad = rule() & ~skip
        problems += [Problem(name, message(r), int(r.line), severity="warning") for r in items[bad].itertuples()]
        skip = skip | bad
    items = items[~skip].reset_index(drop=True)
    if items.empty:
        raise DataError(
            f"{name}: no new item to add (all {len(skip)} row(s) skipped)" + "".join(f"\n  {p}" for p in problems[:10])
        )
    folder = Path(images) if images is not None else None
    items["image_path"] = _covers(items, folder, folder or csv_folder, with_images, name, problems)
    rows_out = items.assign(text=items["text"].where(items["text"] != "", items["title"]))
    problems.sort(key=lambda p: p.line or 0)  # in file order
    return NewItems(rows_out[["item_id", "title", "text", "image_path"]], problems)


def _covers(
    items: pd.DataFrame,
    images: Path | None,
    base: Path | None,
    with_images: bool,
    name: str,
    problems: list[Problem],
) -> list[str]:
    """Each new item's usable cover path or "" (relative paths from `base`; `<images>/<item_id>.jpg` when
    none is named); unusable ones (and all, for a text-only checkpoint) reported."""
    named = items["image"]
    if images is not None:  # the project's convention: <images>/<item_id>.jpg
        default = [str(images / f"{i}.jpg") if (images / f"{i}.jpg").is_file() else "" for i in items["item_id"]]
        named = named.where(named != "", pd.Series(default, index=items.index))
    paths = [str(base / p) if p and base is not None and not Path(p).is_absolute() else p for p in named]
    if not with_images:
        if any(paths):
            problems.append(Problem(name, "the checkpoint was trained without images: covers ignored", column="image"))
        return [""] * len(paths)
    out = []
    for path, row in zip(paths, items.itertuples()):
        why = image_problem(path) if path else None
        if why is not None:
            problems.append(
                Problem(
                    name,
                    f"cover {path} of item {row.item_id!r} ignored ({why}); scored from its title",
                    int(row.line),
                    "image",
                )
            )
        out.append("" if why else path)
    return out


def _settings(config: dict[str, Any]) -> tuple[str, str | None, str]:
    """(text encoder, image encoder or None, image_norm) the checkpoint's content features were made with."""
    run, meta = config.get("run", {}).get("features", {}), config.get("features") or {}
    if str(meta.get("source", "raw")) != "raw":
        raise CheckpointError(
            f"this checkpoint read stage-A aligned features ({meta.get('source')}); adding items needs the encoder "
            "that made them, which a checkpoint does not hold: add items to a checkpoint trained on raw features"
        )
    image = run.get("image_encoder", "efficientnet-lite0") if meta.get("image_encoder") else None
    return str(run.get("text_encoder", "minilm")), image, str(meta.get("image_norm") or "none")


def _cached(rec: Recommender, key: str | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(features, mask) of a feature-cache entry in the checkpoint's item order, or None when it lacks a trained
    item. Items added earlier are not in it: their rows stay zero (they teach the bridge nothing)."""
    entry = load_features(key) if key else None
    if entry is None:
        return None
    pos = {iid: i for i, iid in enumerate(entry.meta.get("item_ids", []))}
    rows = np.array([pos.get(i, -1) for i in rec.item_ids])  # (N,), -1 = not in the entry
    if any(r < 0 and by == "id" for r, by in zip(rows, rec.table.scored_by)):
        return None
    have = rows >= 0
    feats, mask = np.zeros((len(rows), entry.features.shape[1]), np.float32), np.zeros(len(rows), bool)
    feats[have], mask[have] = entry.features[rows[have]], entry.mask[rows[have]]
    return feats, mask


def _known_features(
    rec: Recommender, text_enc: str, image_enc: str | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(text (N, dt), raw image (N, dv), has-image (N,)) of the checkpoint's items: the cached features its
    model started from, or, when the cache lacks them, its titles (and covers) encoded again (a warning)."""
    keys = (rec.config.get("features") or {}).get("cache_keys") or {}
    text, image = _cached(rec, keys.get("text")), _cached(rec, keys.get("image")) if image_enc else None
    if text is not None and (image_enc is None or image is not None):
        return text[0], *(image if image is not None else (None, None))
    log.warning("the checkpoint's cached features are not on this machine: the bridge learns from its titles")
    # Only the trained items, a set that adding items never changes: the encoding is cached once (extract_features
    # keys its cache by ids and content), so the next addition reads it back instead of encoding every title again.
    trained = np.flatnonzero(np.asarray(rec.table.scored_by) == "id")  # (n,) rows of the trained items
    pick = lambda values: [values[i] for i in trained]
    titles = pick(rec.titles)
    items = pd.DataFrame(
        {"item_id": pick(rec.item_ids), "title": titles, "text": titles, "image_path": pick(rec.table.image_paths)}
    )
    feats = extract_features(items, text_enc, image_enc, use_images=image_enc is not None, progress=False)

    def full(rows: np.ndarray | None) -> np.ndarray | None:  # (n, ...) -> (N, ...), added items' rows zero
        if rows is None:
            return None
        out = np.zeros((len(rec.item_ids), *rows.shape[1:]), rows.dtype)
        out[trained] = rows
        return out

    known_text = full(feats.text)
    assert known_text is not None  # every checkpoint has a text branch
    return known_text, full(feats.image), full(feats.image_mask)


def warm_bridge(rec: Recommender) -> bool:
    """Encode (or find cached) the trained items' content the bridge learns from, so that the first item added
    to `rec` answers in about a second; False when items cannot be added to this checkpoint."""
    try:
        text_enc, image_enc, _ = _settings(rec.config)
    except CheckpointError:
        return False
    _known_features(rec, text_enc, image_enc)
    return True


def _normalise(image: np.ndarray | None, mask: np.ndarray | None, mean: np.ndarray | None) -> np.ndarray | None:
    """Image rows as training normalised them ("center_l2": minus the known items' mean, unit norm; rows
    without an image zero); `mean` None leaves them raw."""
    if image is None or mean is None or mask is None:
        return image
    centred = (image - mean) * mask[:, None]  # (n, dv)
    return centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)


def add_items(
    source: Recommender | str | Path,
    rows: Rows,
    images: str | Path | None = None,
    out: str | Path | None = None,
    bridge: BridgeConfig | None = None,
    device: str = "cpu",
) -> AddedItems:
    """Add new items to a checkpoint (a folder or a loaded Recommender) from their content alone.

    Returns the grown Recommender (same kind of top-k index, rebuilt over all items), the ids added, what
    was skipped, and the bridge's fit; with `out` the grown checkpoint is also written there (atomically;
    never over the source folder). Raises DataError when no row is usable, CheckpointError for a checkpoint
    whose features cannot be reproduced."""
    rec = source if isinstance(source, Recommender) else Recommender.load(source, device)
    if out is not None and rec.path is not None and Path(out).resolve() == rec.path.resolve():
        raise ValueError(f"{out}: write the grown checkpoint to a new folder, not over the one it grows from")
    text_enc, image_enc, image_norm = _settings(rec.config)
    new = read_new_items(rows, set(rec.item_ids), images, with_images=image_enc is not None)
    text, image, mask = _known_features(rec, text_enc, image_enc)
    feats = extract_features(new.rows, text_enc, image_enc, use_images=image_enc is not None, progress=False)
    mean = image[mask].mean(axis=0) if image is not None and mask is not None and image_norm == "center_l2" else None
    x_known = content_matrix(text, _normalise(image, mask, mean), mask)  # (N, p)
    x_new = content_matrix(feats.text, _normalise(feats.image, feats.image_mask, mean), feats.image_mask)  # (M, p)
    counts = np.where(np.asarray(rec.table.scored_by) == "id", rec.popularity, 0.0)  # added items teach nothing
    fit = fit_bridge(rec.model, x_known, counts, bridge)
    new_mask = torch.as_tensor(feats.image_mask) if feats.image_mask is not None else None
    grown = extend_model(rec.model, fit.rows(x_new), new_mask)
    m, t = len(new.rows), rec.table
    items = {
        "item_ids": t.item_ids + new.rows["item_id"].tolist(),
        "titles": t.titles + new.rows["title"].tolist(),
        "categories": t.categories + [""] * m,
        "image_paths": t.image_paths + new.rows["image_path"].tolist(),
        "popularity": t.popularity.tolist() + [0] * m,
        "scored_by": t.scored_by + ["content"] * m,
    }
    record = {"items": m, "bridge": fit.stats, "fitted_on": fit.n_fit, "weights": fit.weights}
    extra = {k: v for k, v in rec.config.items() if k not in MODEL_KEYS}
    extra["added_items"] = [*rec.config.get("added_items", []), record]
    path = save_checkpoint(out, grown, items, extra) if out is not None else None
    config = {**rec.config, **extra, "n_items": grown.n_items}
    grown_rec = Recommender(grown, config, items, path, rec.index_cfg)
    return AddedItems(grown_rec, new.rows["item_id"].tolist(), new.problems, fit.stats, path)


__all__ = ["AddedItems", "NewItems", "add_items", "read_new_items", "warm_bridge"]
