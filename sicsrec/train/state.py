"""Saved training state, so a killed or cancelled run continues where it stopped (`--continue`).

A run keeps `<out>/train_state/`: `run.json` (the run's settings and models, enough to restart it) and
one folder per fit stage (`sasrec/`, `content/`, `sicsrec-step-2/`, ...) written after every epoch:

    state.safetensors  model/<name> (weights), best/<name> (the best epoch's weights),
                       optim/<i>/<key> (Adam's step and moments per trainable parameter),
                       rng/torch, rng/cuda, rng/batches (the batch-order generator), rng/numpy
    state.json         format, stage, settings, epoch, best epoch/score/metrics, bad epochs,
                       history, seconds, finished, stopped, python's RNG, numpy's RNG position

Only safetensors and JSON: loading never unpickles. Each folder is replaced atomically
(`atomic_dir`), so a kill while saving leaves the previous epoch's state. Restored at an epoch
boundary with every RNG the training draws from, a continued fit repeats the uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from sicsrec.train.trainer import EpochLog, FitResult, FitState
from sicsrec.utils import atomic_dir, atomic_write_text, committed_dir

log = logging.getLogger("sicsrec.train")

FORMAT = "sicsrec-train-state/1"
STATE_DIR = "train_state"
RUN_FILE = "run.json"


class TrainStateError(ValueError):
    """A saved training state cannot be restored into this model; the message names the folder (the CLI
    reports ValueErrors as one `error:` line)."""


def stage_folder(stage: str) -> str:
    """A folder name for a fit stage ("sicsrec step 2" -> "sicsrec-step-2")."""
    return re.sub(r"[^a-z0-9]+", "-", stage.lower()).strip("-") or "stage"


def _normalized(settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` as they read back from JSON (tuples become lists), so saved and current compare equal."""
    return json.loads(json.dumps(settings, default=str))


class StateStore:
    """The training states of one run folder: saved after every epoch, restored when `resume` is set.

    `settings` identify the run (a state saved with other settings is ignored, with a warning); `identity` maps
    settings to what must match (the run layer's: settings added since compare at their defaults, how a run
    executes does not count).
    """

    def __init__(
        self,
        out: str | Path,
        settings: dict[str, Any],
        resume: bool = False,
        identity: Callable[[dict[str, Any]], dict[str, Any]] = lambda s: s,
    ) -> None:
        self.root, self.settings, self.resume = Path(out) / STATE_DIR, _normalized(settings), resume
        self.identity = identity

    def record(self, models: tuple[str, ...]) -> None:
        """Write run.json: the settings and models, so the run can be restarted from its folder alone."""
        atomic_write_text(
            self.root / RUN_FILE,
            json.dumps({"format": FORMAT, "config": self.settings, "models": list(models)}, indent=2),
        )

    def clear(self) -> None:
        """Remove every saved state (a fresh run, or a run that finished)."""
        shutil.rmtree(self.root, ignore_errors=True)

    def save(
        self, stage: str, state: FitState, model: torch.nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator
    ) -> None:
        """Write the stage's state folder atomically (called at an epoch boundary)."""
        tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
        tensors.update({f"best/{k}": v for k, v in (state.best or {}).items()})
        # Adam's state is all tensors (its step count included), keyed by the trainable parameter's index
        tensors.update(
            {
                f"optim/{i}/{key}": value
                for i, entry in opt.state_dict()["state"].items()
                for key, value in entry.items()
            }
        )
        tensors["rng/torch"] = torch.get_rng_state()
        tensors["rng/batches"] = gen.get_state()
        device = next(model.parameters()).device
        if device.type == "cuda":
            tensors["rng/cuda"] = torch.cuda.get_rng_state(device)
        np_state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
        np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np_state
        tensors["rng/numpy"] = torch.from_numpy(np_keys.astype(np.int64))
        py_version, py_internal, py_gauss = random.getstate()
        # clone: saved tensors must not share memory, and must not change while the file is written
        tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}
        r = state.result
        info = {
            "format": FORMAT,
            "stage": stage,
            "settings": self.settings,
            "epoch": state.epoch,
            "best_epoch": r.best_epoch,
            "best_valid": r.best_valid,
            "best_score": state.best_score,
            "bad_epochs": state.bad_epochs,
            "history": [asdict(h) for h in r.history],
            "seconds": r.seconds,
            "finished": state.finished,
            "stopped": r.stopped,
            "optim_params": len(opt.param_groups[0]["params"]),
            "has_best": state.best is not None,
            "rng_python": [py_version, list(py_internal), py_gauss],
            "rng_numpy": [np_kind, int(np_pos), int(np_has_gauss), float(np_gauss)],
        }
        with atomic_dir(self.root / stage_folder(stage)) as tmp:
            save_file(tensors, str(tmp / "state.safetensors"))
            atomic_write_text(tmp / "state.json", json.dumps(info, indent=1))

    def load(
        self, stage: str, model: torch.nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator
    ) -> FitState | None:
        """Restore the stage's saved state into `model`, `opt`, `gen` and the global RNGs; None when there is
        none to continue from (not resuming, nothing saved, other settings, unreadable)."""
        folder = committed_dir(self.root / stage_folder(stage)) if self.resume else None
        if folder is None:
            return None
        try:
            info = json.loads((folder / "state.json").read_text(encoding="utf-8"))
            tensors = load_file(str(folder / "state.safetensors"))
        except Exception as e:  # unreadable (hand-edited, disk trouble): the stage starts over
            log.warning(
                "%s: the saved training state in %s is unreadable (%s); starting the stage over", stage, folder, e
            )
            return None
        saved = info.get("settings")
        if (
            info.get("format") != FORMAT
            or info.get("stage") != stage
            or not isinstance(saved, dict)
            or self.identity(saved) != self.identity(self.settings)
        ):
            log.warning(
                "%s: the saved training state in %s was made with other settings; starting the stage over",
                stage,
                folder,
            )
            return None
        params = opt.param_groups[0]["params"]
        if info["optim_params"] != len(params):
            raise TrainStateError(
                f"{folder}: saved for {info['optim_params']} trainable tensors, the model has "
                f"{len(params)}; delete the folder or run without --continue"
            )
        try:
            model.load_state_dict(_part(tensors, "model/"), strict=True)
        except RuntimeError as e:
            raise TrainStateError(
                f"{folder}: does not fit the model ({e}); delete it or run without --continue"
            ) from None
        opt_state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in _part(tensors, "optim/").items():
            i, name = key.split("/", 1)
            opt_state.setdefault(int(i), {})[name] = value
        # the current param groups: the same settings, built from the same config; the optimizer moves
        # the moments to the parameters' device
        opt.load_state_dict({"state": opt_state, "param_groups": opt.state_dict()["param_groups"]})
        gen.set_state(tensors["rng/batches"])
        torch.set_rng_state(tensors["rng/torch"])
        device = next(model.parameters()).device
        if device.type == "cuda" and "rng/cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng/cuda"], device)
        kind, pos, has_gauss, gauss = info["rng_numpy"]
        np.random.set_state((kind, tensors["rng/numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
        py_version, py_internal, py_gauss = info["rng_python"]
        random.setstate((py_version, tuple(py_internal), py_gauss))
        history = [EpochLog(**h) for h in info["history"]]
        result = FitResult(stage, info["best_epoch"], info["best_valid"], history, info["seconds"], info["stopped"])
        best = {k: v.to(device) for k, v in _part(tensors, "best/").items()} if info["has_best"] else None
        log.info("%s: continuing from the training state saved after epoch %d (%s)", stage, len(history), folder)
        return FitState(result, best, info["best_score"], info["bad_epochs"], info["finished"])


def _part(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under `prefix`, keyed without it."""
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


@dataclass
class SavedRun:
    """An interrupted run found on disk: its folder, settings and models (what run.json recorded)."""

    out: Path
    config: dict[str, Any]
    models: tuple[str, ...]


def saved_run(out: str | Path) -> SavedRun | None:
    """The interrupted run whose training state is saved in `out`, or None (none saved, or unreadable)."""
    path = Path(out) / STATE_DIR / RUN_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        not isinstance(info, dict)
        or info.get("format") != FORMAT
        or not isinstance(info.get("config"), dict)
        or not isinstance(info.get("models"), list)
    ):
        return None
    return SavedRun(Path(out), info["config"], tuple(map(str, info["models"])))


__all__ = ["FORMAT", "STATE_DIR", "SavedRun", "StateStore", "TrainStateError", "saved_run", "stage_folder"]
