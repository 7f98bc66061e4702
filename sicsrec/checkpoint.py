"""Checkpoints: `model.safetensors` + `config.json` + `items.json`, written atomically as a folder.

Loading reads only safetensors and JSON, so it never executes code: a folder holding a pickle (by
name or by content, torch.save's zips included) is refused before anything in it is read. config.json
is checked (known settings of the right types, sizes matching the safetensors header, read without
loading a tensor) before the model is allocated, so a tampered config cannot make it allocate absurdly.
A save goes to a temp folder that replaces the old one by rename; an interrupted save leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from sicsrec.config import ModelConfig, model_config_from_dict
from sicsrec.data.split import Split
from sicsrec.model import MODELS, SeqRecModel
from sicsrec.utils import atomic_write_text

FORMAT = "sicsrec-checkpoint/1"
# What an item's vector was learned from, items.json's optional "scored_by" list (absent: every item "id").
# Added items change no file's layout, so the format stays /1: an older reader loads such a checkpoint and
# scores it identically, only without the labels.
SCORED_BY = {
    "id": "trained on the item's interactions",
    "content": "predicted from its title (and cover) by the content-to-ID bridge: added without retraining",
}
log = logging.getLogger(__name__)

# Files that are (or hold) pickles, which can run code when loaded: never loaded, and their presence refuses the folder.
PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib", ".npy", ".npz")
MAX_FILES = 1_000  # a checkpoint folder holds three: more is another folder, not worth walking
MAX_CONFIG_BYTES = 2**20  # config.json is a few KB
MAX_LAYERS = 64  # layers are built one by one in Python, even on the meta device


class CheckpointError(Exception):
    """A checkpoint folder is missing, incomplete or inconsistent; the message names the file."""


@dataclass
class ItemTable:
    """A checkpoint's items.json read once: per item index 1..N its id, title, category, image path,
    training popularity and what its vector was learned from (the one parser: serving and the app's
    catalogue both build on it)."""

    item_ids: list[str]
    titles: list[str]
    categories: list[str]
    image_paths: list[str]
    popularity: np.ndarray
    scored_by: list[str]  # per item a key of SCORED_BY

    @classmethod
    def from_dict(cls, items: dict[str, list]) -> ItemTable:
        """From items.json's object; optional lists (categories, image paths, popularity, scored_by) default
        per item (scored_by to "id": checkpoints written before items could be added hold trained items only)."""
        n = len(items["item_ids"])
        return cls(
            [str(x) for x in items["item_ids"]],
            [str(t) for t in items.get("titles", [""] * n)],
            list(items.get("categories", [""] * n)),
            list(items.get("image_paths", [""] * n)),
            np.asarray(items.get("popularity", [0] * n), dtype=np.float64),
            [str(x) for x in items.get("scored_by", ["id"] * n)],
        )


def item_table(split: Split, items: pd.DataFrame) -> dict[str, list]:
    """Per item index 1..N: id, title, category, image path and training popularity."""
    meta = items.set_index("item_id").reindex(split.item_ids)
    return {
        "item_ids": [str(x) for x in split.item_ids],
        "titles": meta["title"].fillna("").astype(str).tolist(),
        "categories": meta["category"].fillna("").astype(str).tolist(),
        "image_paths": meta["image_path"].fillna("").astype(str).tolist(),
        "popularity": split.item_counts[1:].tolist(),
    }


def save_checkpoint(
    path: str | Path, model: SeqRecModel, items: dict[str, list], extra: dict[str, Any] | None = None
) -> Path:
    """Write the checkpoint folder atomically and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = _previous(path)
    if not path.exists() and old.exists():  # a save interrupted between its two renames: put the old one back
        old.rename(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; a checkpoint folder is as readable as any other
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"))
        text, image = state.get("content.text.weight"), state.get("content.image.weight")  # content models only
        config = {
            "format": FORMAT,
            "model": model.name,
            "n_items": model.n_items,
            "text_dim": text.shape[1] if text is not None else None,
            "image_dim": image.shape[1] if image is not None else None,
            "model_cfg": asdict(model.cfg),
            **(extra or {}),
        }
        atomic_write_text(tmp / "config.json", json.dumps(config, indent=2, default=str))
        atomic_write_text(tmp / "items.json", json.dumps(items, ensure_ascii=False))
        if old.exists():
            shutil.rmtree(old)
        if path.exists():
            path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _previous(path: Path) -> Path:
    """Where a save parks the checkpoint it replaces until the new one is in place."""
    return path.with_name(f".{path.name}.old")


def read_json(path: Path) -> Any:
    """Parsed JSON of a checkpoint file; CheckpointError naming the file when missing or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing (is this a checkpoint folder?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None


def _is_pickle(path: Path) -> bool:
    """Whether a file is a pickle by its name or its first bytes (protocol 2+ or torch.save's zip)."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    try:
        with path.open("rb") as f:
            head = f.read(9)
    except OSError:
        return False
    if head[:4] == b"PK\x03\x04":  # torch.save writes a zip around its pickle
        return True
    # protocol 2-5 open with b"\x80\x0N"; a safetensors header length may too, but its JSON header opens at byte 8
    return len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5 and head[8:9] != b"{"


def _refuse_pickles(path: Path) -> None:
    """CheckpointError naming the pickles in a checkpoint folder (found by name or first bytes, never unpickled)."""
    found = []
    for n, p in enumerate(path.rglob("*") if path.is_dir() else []):  # lazily: a wrong path may be a huge tree
        if n >= MAX_FILES:
            raise CheckpointError(f"{path}: over {MAX_FILES:,} files; not a checkpoint folder")
        if p.is_file() and _is_pickle(p):
            found.append(p.relative_to(path).as_posix())
    if found:
        shown = ", ".join(sorted(found)[:5])
        raise CheckpointError(
            f"{path}: holds pickle files ({shown}), which can run code when loaded; refused without "
            "opening them (a checkpoint is safetensors + JSON only)"
        )


def _model_settings(config: dict[str, Any], file: Path) -> tuple[ModelConfig, int, int, int | None]:
    """(ModelConfig, n_items, text_dim, image_dim) from config.json, every value checked for its type and range."""
    settings = config.get("model_cfg")
    if not isinstance(settings, dict):
        raise CheckpointError(f"{file}: incomplete or invalid model settings (model_cfg is missing or not an object)")
    known = {f.name: f for f in fields(ModelConfig)}
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise CheckpointError(f"{file}: unknown model settings {unknown[:5]} (written by a newer sicsrec, or edited?)")
    bad = [k for k, v in settings.items() if not _same_kind(v, known[k].default)]
    dims = {
        "n_items": config.get("n_items"),
        "text_dim": config.get("text_dim") or 384,
        "image_dim": config.get("image_dim"),
    }
    bad += [k for k, v in dims.items() if not (v is None and k == "image_dim") and not _same_kind(v, 1)]
    if bad or settings.get("layers", 0) > MAX_LAYERS:
        shown = {k: settings.get(k, dims.get(k)) for k in bad or ["layers"]}
        raise CheckpointError(
            f"{file}: incomplete or invalid model settings {shown} (whole numbers >= 0, "
            f"at most {MAX_LAYERS} layers, and the types of ModelConfig's defaults)"
        )
    n_items, text_dim, image_dim = (dims[k] for k in ("n_items", "text_dim", "image_dim"))  # checked whole numbers
    return model_config_from_dict(settings), n_items or 0, text_dim or 0, image_dim


def _same_kind(value: Any, default: Any) -> bool:
    """Whether a stored setting has its default's type (bools apart from ints, ints >= 0, floats finite)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return type(value) is type(default)
    if isinstance(default, int):
        return isinstance(value, int) and value >= 0
    if isinstance(default, float):
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, type(default))


def _stored_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a safetensors header, no tensor read; CheckpointError when missing or corrupt."""
    try:
        with safe_open(str(file), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 - safe_open is not iterable
    except FileNotFoundError:
        raise CheckpointError(f"{file}: missing") from None
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"{file}: unreadable ({e})") from None


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[SeqRecModel, dict[str, Any], dict[str, list]]:
    """Rebuild the model from config.json and load its weights; returns (model, config, items).

    Refuses (CheckpointError) a folder holding pickles, a config.json with unknown settings, values of the wrong
    type or range, or sizes that differ from the weights' header, all before the model is allocated.
    """
    path, parked = Path(path), _previous(Path(path))
    if not path.exists() and parked.exists():
        log.warning("%s: missing; loading the previous checkpoint %s (a save was interrupted)", path, parked)
        path = parked
    _refuse_pickles(path)
    cfg_file, weights = path / "config.json", path / "model.safetensors"
    if cfg_file.is_file() and (size := cfg_file.stat().st_size) > MAX_CONFIG_BYTES:
        raise CheckpointError(f"{cfg_file}: {size:,} bytes, not a config (at most {MAX_CONFIG_BYTES:,})")
    config = read_json(cfg_file)
    items = read_json(path / "items.json")
    if not isinstance(config, dict) or not isinstance(items, dict):
        raise CheckpointError(f"{path}: config.json and items.json must each hold a JSON object")
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{cfg_file}: unknown format {config.get('format')!r}, expected {FORMAT}")
    name = config.get("model")
    if name not in MODELS:
        raise CheckpointError(f"{cfg_file}: unknown model {name!r} (known: {sorted(MODELS)})")
    cfg, n_items, text_dim, image_dim = _model_settings(config, cfg_file)
    dims: dict[str, int | None] = {"text_dim": text_dim, "image_dim": image_dim}  # read by the content models
    build = lambda: MODELS[name](cfg, n_items, **dims)
    try:
        with torch.device("meta"):  # shapes only: nothing is allocated
            expected = {k: tuple(v.shape) for k, v in build().state_dict().items()}
    except (TypeError, ValueError, AttributeError, AssertionError, RuntimeError) as e:
        raise CheckpointError(f"{cfg_file}: incomplete or invalid model settings ({type(e).__name__}: {e})") from None
    listed = ["item_ids", "titles", *(k for k in ("popularity", "scored_by") if k in items)]
    if not all(isinstance(items.get(k), list) and len(items[k]) == n_items for k in listed):
        raise CheckpointError(f"{path / 'items.json'}: {', '.join(listed)} must each list the {n_items} items")
    if unknown_sources := set(items.get("scored_by", [])) - set(SCORED_BY):
        raise CheckpointError(
            f"{path / 'items.json'}: scored_by holds {sorted(map(str, unknown_sources))[:3]}; known: {sorted(SCORED_BY)}"
        )
    stored = _stored_shapes(weights)
    differ = [
        f"{k}: {stored.get(k, 'absent')} stored, {expected.get(k, 'none')} expected"
        for k in sorted(set(stored) | set(expected))
        if stored.get(k) != expected.get(k)
    ]
    if differ:
        raise CheckpointError(
            f"{weights}: does not match config.json ({len(differ)} tensors differ; " + "; ".join(differ[:3]) + ")"
        )
    model = build()
    try:
        model.load_state_dict(load_file(str(weights), device=device), strict=True)
    except Exception as e:  # data that does not match its own header, or an I/O error
        raise CheckpointError(f"{weights}: unreadable ({e})") from None
    model.to(device).eval()
    return model, config, items


__all__ = ["FORMAT", "SCORED_BY", "CheckpointError", "ItemTable", "item_table", "load_checkpoint", "save_checkpoint"]
