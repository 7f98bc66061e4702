"""Checkpoints: `model.safetensors` + `config.json` + `items.json`, written atomically as a folder.

Loading reads only safetensors and JSON, so it never executes code. A save goes to a temp folder
that replaces the old one by rename; an interrupted save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
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
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
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
        old = path.with_name(f".{path.name}.old")
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


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing (is this a checkpoint folder?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[SeqRecModel, dict[str, Any], dict[str, list]]:
    """Rebuild the model from config.json and load its weights; returns (model, config, items)."""
    path = Path(path)
    config = read_json(path / "config.json")
    items = read_json(path / "items.json")
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{path / 'config.json'}: unknown format {config.get('format')!r}, expected {FORMAT}")
    name = config.get("model")
    if name not in MODELS:
        raise CheckpointError(f"{path / 'config.json'}: unknown model {name!r} (known: {sorted(MODELS)})")
    cfg: ModelConfig = model_config_from_dict(config["model_cfg"])
    model = MODELS[name](cfg, config["n_items"], text_dim=config.get("text_dim") or 384, image_dim=config.get("image_dim"))
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
    if len(items.get("item_ids", [])) != config["n_items"]:
        raise CheckpointError(f"{path / 'items.json'}: {len(items.get('item_ids', []))} items, config says {config['n_items']}")
    model.to(device).eval()
    return model, config, items


__all__ = ["CheckpointError", "FORMAT", "item_table", "load_checkpoint", "save_checkpoint"]
