"""The results.json schema: one typed object every reader uses (CLI table, app, plots, bench).

A run folder's `results.json` holds the dataset, its split sizes, the device, the feature
provenance, the run config, and per model the full-ranking valid/test metrics with how the model
was trained. `Results.read` tolerates files written by earlier versions (missing fields take
their defaults) and returns None for a missing, unreadable or malformed file instead of raising.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sicsrec.config import RunConfig
from sicsrec.eval.metrics import TIE_RULE
from sicsrec.utils import atomic_write_text

log = logging.getLogger("sicsrec")

# Table order: popularity, the baselines, step 2's ID-only control, SICSRec.
MODEL_ORDER = ("pop", "sasrec", "content", "id_control", "sicsrec")
BASELINES = ("pop", "sasrec", "content")  # the published ones; the control is reported beside them
METRICS = ("hr@5", "hr@10", "ndcg@5", "ndcg@10")
SCHEMA_VERSION = 1


def _settings(config: dict[str, Any]) -> dict[str, Any]:
    """A run's settings as JSON, those added since it was written at their defaults (so they compare equal)."""
    if not config:
        return config
    return json.loads(json.dumps(RunConfig.from_dict(config).to_dict()))


@dataclass
class ModelResult:
    """One model's full-ranking metrics on valid and test, and how its training went."""

    valid: dict[str, float]
    test: dict[str, float]
    epochs: int = 0
    train_seconds: float = 0.0
    stopped: str | None = None  # max_epochs | early_stop | cancelled | diverged; None for popularity

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelResult:
        """From a results.json entry; KeyError/TypeError/ValueError when the metrics are not there."""
        metrics = lambda part: {str(k): float(v) for k, v in d[part].items()}
        return cls(
            metrics("valid"),
            metrics("test"),
            int(d.get("epochs", 0)),
            float(d.get("train_seconds", 0.0)),
            d.get("stopped"),
        )


@dataclass
class Results:
    """A run's results.json: what was trained on what, and every model's metrics."""

    dataset: str
    split: dict[str, int] = field(default_factory=dict)
    device: str = ""
    features: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    models: dict[str, ModelResult] = field(default_factory=dict)
    cancelled: bool = False
    ranking: str = ""  # how ties were ranked (sicsrec.eval.metrics.TIE_RULE); "" in files written before the rule

    # --- reading and writing ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (models in table order)."""
        d = asdict(self)
        d["models"] = {n: asdict(self.models[n]) for n in self.model_names(with_pop=True)}
        return {"schema": SCHEMA_VERSION, **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Results:
        """From the JSON form; unknown keys are ignored, a malformed model entry raises ValueError."""
        if not isinstance(d, dict):
            raise ValueError("results.json is not a JSON object")
        try:
            models = {str(n): ModelResult.from_dict(m) for n, m in (d.get("models") or {}).items()}
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"malformed model entry in results.json: {e!r}") from e
        return cls(
            str(d.get("dataset", "?")),
            dict(d.get("split") or {}),
            str(d.get("device", "")),
            dict(d.get("features") or {}),
            dict(d.get("config") or {}),
            models,
            bool(d.get("cancelled", False)),
            str(d.get("ranking", "")),
        )

    @classmethod
    def read(cls, path: str | Path) -> Results | None:
        """The results.json at `path` (a file or a run folder), or None when absent, unreadable or malformed."""
        path = Path(path)
        path = path / "results.json" if path.is_dir() else path
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:  # ValueError: not JSON, not UTF-8, or not our schema
            log.warning("ignoring %s: %s", path, e)
            return None

    def write(self, path: str | Path) -> None:
        """Write atomically (temp file + rename): an interrupted save never leaves half a file."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, ensure_ascii=False, default=str))

    # --- questions every reader asks ----------------------------------------------------------------

    def model_names(self, with_pop: bool = False) -> list[str]:
        """Models present, in table order (known models first, then any others)."""
        known = [m for m in MODEL_ORDER if m in self.models and (with_pop or m != "pop")]
        return known + [m for m in self.models if m not in MODEL_ORDER]

    def metric(self, model: str, name: str, part: str = "test") -> float:
        """One metric of one model (NaN when the model or metric is missing)."""
        m = self.models.get(model)
        return getattr(m, part).get(name, math.nan) if m is not None else math.nan

    def best_baseline(self, metric: str = "ndcg@5", part: str = "test") -> str | None:
        """The baseline (popularity, SASRec or content-only) with the highest `metric`, or None."""
        present = [b for b in BASELINES if b in self.models]
        return max(present, key=lambda b: self.metric(b, metric, part)) if present else None

    def gain(self, model: str = "sicsrec", over: str | None = None, metric: str = "ndcg@5") -> float | None:
        """Relative test gain of `model` over `over` (default: the best baseline), or None when either is missing."""
        over = over or self.best_baseline(metric)
        if model not in self.models or over is None or over not in self.models:
            return None
        base = self.metric(over, metric)
        return self.metric(model, metric) / base - 1 if base else None

    def is_current(self, config: dict[str, Any], models: tuple[str, ...], source: str) -> bool:
        """True when this run finished exactly `models` with `config`, feature `source` and the current tie rule
        (a run asked for fewer or other models is not current: it rewrites results.json with just those)."""
        same = (
            _settings(self.config) == _settings(json.loads(json.dumps(config)))
            and self.features.get("source") == source
            and self.ranking == TIE_RULE
        )
        return same and not self.cancelled and set(models) == set(self.model_names())

    def markdown_table(self, names: dict[str, str] | None = None) -> str:
        """Test (and valid) HR/NDCG@5/10 of every model, epochs and seconds, as a markdown table."""
        head = "| model | test HR@5 | test HR@10 | test NDCG@5 | test NDCG@10 | valid HR@10 | epochs | train s |"
        rows = [head, "|" + "---|" * 8]
        for n in self.model_names(with_pop=True):
            m = self.models[n]
            t = m.test
            rows.append(
                f"| {(names or {}).get(n, n)} | {t['hr@5']:.4f} | {t['hr@10']:.4f} | {t['ndcg@5']:.4f} | "
                f"{t['ndcg@10']:.4f} | {m.valid['hr@10']:.4f} | {m.epochs} | {m.train_seconds:.0f} |"
            )
        return "\n".join(rows)


__all__ = ["BASELINES", "METRICS", "MODEL_ORDER", "ModelResult", "Results"]
