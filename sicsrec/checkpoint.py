"""Checkpoints: `model.safetensors` + `config.json` + `items.json`, written atomically as a folder.

Loading reads only safetensors and JSON, so it never executes code. A save goes to a temp folder
that replaces the old one by rename; an interrupted save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
from safetensors.torch import load_file, save_file

from sicsrec.config import ModelConfig, model_config_from_dict
from sicsrec.data.split import Split
from sicsrec.model import MODELS, SeqRecModel
from sicsrec.utils import atomic_write_text

FORMAT = "sicsrec-checkpoint/1"
log = logging.getLogger(__name__)


class CheckpointError(Exception):
    """A checkpoint folder is missing, incomplete or inconsistent; the message names the file."""


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


def save_checkpoint(path: str | Path, model: SeqRecModel, items: dict[str, list], extra: dict[str, Any] | None = None) -> Path:
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
        text_dim = model.content.text.weight.shape[1] if model.uses_content else None
        image = getattr(getattr(model, "content", None), "image", None)
        config = {
            "format": FORMAT,
            "model": model.name,
            "n_items": model.n_items,
            "text_dim": text_dim,
            "image_dim": image.weight.shape[1] if image is not None else None,
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


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[SeqRecModel, dict[str, Any], dict[str, list]]:
    """Rebuild the model from config.json and load its weights; returns (model, config, items)."""
    path, parked = Path(path), _previous(Path(path))
    if not path.exists() and parked.exists():
        log.warning("%s: missing; loading the previous checkpoint %s (a save was interrupted)", path, parked)
        path = parked
    config = read_json(path / "config.json")
    items = read_json(path / "items.json")
    if not isinstance(config, dict) or not isinstance(items, dict):
        raise CheckpointError(f"{path}: config.json and items.json must each hold a JSON object")
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{path / 'config.json'}: unknown format {config.get('format')!r}, expected {FORMAT}")
    name = config.get("model")
    if name not in MODELS:
        raise CheckpointError(f"{path / 'config.json'}: unknown model {name!r} (known: {sorted(MODELS)})")
    try:
        cfg: ModelConfig = model_config_from_dict(config["model_cfg"])
        model = MODELS[name](cfg, int(config["n_items"]), text_dim=config.get("text_dim") or 384,
                             image_dim=config.get("image_dim"))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{path / 'config.json'}: incomplete or invalid model settings ({type(e).__name__}: {e})") from None
    listed = ["item_ids", "titles", *(["popularity"] if "popularity" in items else [])]
    if not all(isinstance(items.get(k), list) and len(items[k]) == model.n_items for k in listed):
        raise CheckpointError(f"{path / 'items.json'}: {', '.join(listed)} must each list the {model.n_items} items")
    try:
        state = load_file(str(path / "model.safetensors"), device=device)
    except FileNotFoundError:
        raise CheckpointError(f"{path / 'model.safetensors'}: missing") from None
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"{path / 'model.safetensors'}: unreadable ({e})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path / 'model.safetensors'}: does not match config.json ({e})") from None
    model.to(device).eval()
    return model, config, items


__all__ = ["CheckpointError", "FORMAT", "item_table", "load_checkpoint", "save_checkpoint"]
