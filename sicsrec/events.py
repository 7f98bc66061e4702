"""Typed progress events: what the trainer, feature extraction and stage A report while they run.

One hook type (`ProgressHook`) carries all of them from the library to whoever listens (the run
layer forwards them; the app's Train tab turns them into status lines, ETAs and curves). Each
event is a frozen dataclass stamped with its wall-clock time, so a listener never parses dicts.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def _now() -> float:
    return time.time()


@dataclass(frozen=True)
class FeatureProgress:
    """Content feature extraction: `done` of `total` items encoded in `stage` ("text", "image", ...)."""

    stage: str
    done: int
    total: int
    t: float = field(default_factory=_now)


@dataclass(frozen=True)
class StageAProgress:
    """Stage A: `done` of `total` questions (pair mining) or optimiser steps (encoder alignment); total 0 = loading."""

    stage: str  # STAGE_MINING | STAGE_ALIGN
    done: int
    total: int
    t: float = field(default_factory=_now)


@dataclass(frozen=True)
class MiningDone:
    """Stage A1 finished (or was current): the backend, whether it is the no-LLM fallback, and the counts."""

    backend: str
    fallback: bool
    pairs: int
    counts: dict
    skipped: bool = False
    t: float = field(default_factory=_now)


@dataclass(frozen=True)
class AlignDone:
    """Stage A2 finished (or was cached): the loss curve's ends, time, and the feature source training will use."""

    optimizer: str
    lr: float
    epochs: int
    first_loss: float
    last_loss: float
    seconds: float
    source: str
    skipped: bool = False
    note: str = ""  # a FALLBACK, when the chosen text encoder could not be fine-tuned
    t: float = field(default_factory=_now)


@dataclass(frozen=True)
class PhaseEvent:
    """A run entered `phase` (PHASE_PREPARE: loading, splitting, reading features; PHASE_TRAIN: the data is ready)."""

    phase: str
    t: float = field(default_factory=_now)


@dataclass(frozen=True)
class StepEvent:
    """A training step of `stage` (reported every few steps and at the epoch's end)."""

    stage: str
    epoch: int
    step: int
    steps: int
    loss: float
    t: float = field(default_factory=_now)


@dataclass(frozen=True)
class EpochEvent:
    """An epoch of `stage` ended: mean loss terms, validation metrics, the best epoch so far."""

    stage: str
    epoch: int
    max_epochs: int
    loss: dict
    valid: dict
    best_epoch: int
    seconds: float
    t: float = field(default_factory=_now)


@dataclass(frozen=True)
class FitDone:
    """A fit of `stage` ended: why it stopped, the kept epoch and its validation metrics."""

    stage: str
    stopped: str
    best_epoch: int
    best_valid: dict
    seconds: float
    t: float = field(default_factory=_now)


STAGE_MINING, STAGE_ALIGN = "pair mining", "encoder alignment"
PHASE_PREPARE, PHASE_TRAIN = "prepare", "train"

ProgressEvent = (
    FeatureProgress | StageAProgress | MiningDone | AlignDone | PhaseEvent | StepEvent | EpochEvent | FitDone
)
ProgressHook = Callable[[ProgressEvent], None]
EVENT_TYPES: dict[str, type] = {
    t.__name__: t
    for t in (FeatureProgress, StageAProgress, MiningDone, AlignDone, PhaseEvent, StepEvent, EpochEvent, FitDone)
}


def event_to_json(event: ProgressEvent) -> str:
    """One event as one JSON line ({"type": class name, **fields}): how a run in another process reports to the app."""
    return json.dumps({"type": type(event).__name__, **dataclasses.asdict(event)}, default=str)


def event_from_json(line: str) -> ProgressEvent | None:
    """The event of one `event_to_json` line; None for a line that is not one (torn, unknown type, wrong fields)."""
    try:
        d: dict[str, Any] = json.loads(line)
        cls = EVENT_TYPES[d.pop("type")]
        return cls(**d)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


__all__ = [
    "EVENT_TYPES",
    "PHASE_PREPARE",
    "PHASE_TRAIN",
    "STAGE_ALIGN",
    "STAGE_MINING",
    "AlignDone",
    "EpochEvent",
    "FeatureProgress",
    "FitDone",
    "MiningDone",
    "PhaseEvent",
    "ProgressEvent",
    "ProgressHook",
    "StageAProgress",
    "StepEvent",
    "event_from_json",
    "event_to_json",
]
