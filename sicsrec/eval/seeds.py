"""Whether a gain is more than noise, for readers of results (the app's Evaluate tab): one line per metric.

Two sources, two kinds of noise:

* a benchmark over seeds (`bench/quality.py`'s JSON, schema "sicsrec-quality/1"): every model's mean ± sample std
  over seeds and SICSRec's per-seed relative gain with its 95% t-interval (`sicsrec.eval.stats.summarise`), read
  as they were written (`read_benchmark`, `benchmark_lines`);
* a single run (its results.json): one seed, so seed-to-seed variation is unknown; only the test users' sampling
  noise is bounded (`run_lines`). A user's HR/NDCG lies in [0, 1], so its variance is at most m(1 - m) for a
  mean m (Bhatia-Davis); summing both models' variances ignores their positive correlation, which only widens
  the interval. A gain outside it is still one seed, and is reported as such, never as a gain.

The verdict: the 95% interval covers zero -> "within noise"; otherwise "gain" / "loss" over seeds, and
"one seed" for a single run.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sicsrec.eval.results import METRICS, Results

log = logging.getLogger("sicsrec")

BENCHMARK_SCHEMA = "sicsrec-quality/1"
MAIN = "sicsrec"
Z95 = 1.96
WITHIN_NOISE, GAIN, LOSS, ONE_SEED = "within noise", "gain", "loss", "one seed"


@dataclass(frozen=True)
class MetricLine:
    """One metric: SICSRec against the best baseline and the popularity floor, its gain and the verdict.

    `gain`, `low`, `high` are relative (0.05 = +5%); `model_std`/`baseline_std` are NaN for a single run.
    """

    metric: str
    model: float
    model_std: float
    baseline_name: str
    baseline: float
    baseline_std: float
    floor: float
    gain: float
    low: float
    high: float
    seeds: int
    verdict: str
    above_floor: bool  # SICSRec beyond noise above popularity (False: it sits at popularity level)


def verdict(low: float, high: float, seeds: int) -> str:
    """'within noise' when the interval [low, high] covers zero (or is unknown); else the direction, or 'one seed'."""
    if math.isnan(low) or math.isnan(high) or low <= 0 <= high:
        return WITHIN_NOISE
    if seeds < 2:
        return ONE_SEED
    return GAIN if low > 0 else LOSS


def user_noise(a: float, b: float, users: int) -> float:
    """Half-width of a conservative 95% interval of a - b, two models' means over the same `users` test users."""
    if users < 1:
        return math.nan
    return Z95 * math.sqrt((_variance_bound(a) + _variance_bound(b)) / users)


def _variance_bound(mean: float) -> float:
    """The largest variance of a per-user metric in [0, 1] with this mean: m(1 - m)."""
    m = min(max(mean, 0.0), 1.0)
    return m * (1 - m)


def run_lines(results: Results) -> list[MetricLine]:
    """One line per test metric of a single run: SICSRec vs its best baseline (per metric) and popularity.

    Empty when the run has no SICSRec or no baseline. The interval only covers the test users' sampling noise.
    """
    users = int(results.split.get("test", 0))
    lines = []
    for k in METRICS:
        over = results.best_baseline(k)
        if MAIN not in results.models or over is None:
            continue
        a, b, floor = results.metric(MAIN, k), results.metric(over, k), results.metric("pop", k)
        half = user_noise(a, b, users)
        low, high, gain = (_relative(d, b) for d in (a - b - half, a - b + half, a - b))
        above = not math.isnan(floor) and a - floor > user_noise(a, floor, users)
        lines.append(
            MetricLine(k, a, math.nan, over, b, math.nan, floor, gain, low, high, 1, verdict(low, high, 1), above)
        )
    return lines


def _relative(diff: float, base: float) -> float:
    """An absolute difference relative to the baseline's value (NaN for a zero baseline)."""
    return diff / base if base else math.nan


def read_benchmark(path: str | Path) -> dict[str, Any] | None:
    """The benchmark file of `bench/quality.py`, or None when absent, unreadable or of another schema."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("ignoring %s: %s", path, e)
        return None
    if not isinstance(report, dict) or report.get("schema") != BENCHMARK_SCHEMA:
        log.warning("ignoring %s: not a %s file", path, BENCHMARK_SCHEMA)
        return None
    return report


@dataclass(frozen=True)
class BenchmarkEntry:
    """One dataset of the benchmark: its name, seeds and one line per metric."""

    key: str  # the benchmark's short name ("food")
    dataset: str  # the dataset's own name ("Bili_Food"), as in a run's results.json
    seeds: list[int]
    lines: list[MetricLine]
    paired: list[PairedLine]


@dataclass(frozen=True)
class PairedLine:
    """The paired bootstrap over test users (per-user metric averaged over seeds): relative gain and its interval."""

    over: str
    metric: str
    users: int
    gain: float
    low: float
    high: float
    verdict: str


def benchmark_lines(report: dict[str, Any]) -> list[BenchmarkEntry]:
    """Every dataset of a benchmark report with SICSRec and a baseline, one line per metric (malformed ones skipped)."""
    entries = []
    for key, d in (report.get("datasets") or {}).items():
        try:
            entries.append(_benchmark_entry(str(key), d))
        except (KeyError, TypeError, ValueError) as e:
            log.warning("benchmark dataset %s skipped: %r", key, e)
    return [e for e in entries if e.lines]


def _benchmark_entry(key: str, d: dict[str, Any]) -> BenchmarkEntry:
    """One dataset's lines from its summaries (`summarise(...).to_dict()` as bench/quality.py wrote them)."""
    models, gains = d["models"], d.get("gains") or {}
    seeds = [int(s) for s in d["seeds"]]
    lines = []
    for k in METRICS:
        if MAIN not in models or "best" not in gains.get(k, {}):
            continue
        g = gains[k]["best"]
        over = str(g["over"])
        mine, base = models[MAIN]["test"][k], models[over]["test"][k]
        floor = float(models["pop"]["test"][k]["mean"]) if "pop" in models else math.nan
        n = int(g["n"])
        low, high = _num(g["low"]), _num(g["high"])
        lines.append(
            MetricLine(
                k,
                float(mine["mean"]),
                _num(mine["std"]),
                over,
                float(base["mean"]),
                _num(base["std"]),
                floor,
                float(g["mean"]),
                low,
                high,
                n,
                verdict(low, high, n),
                not math.isnan(floor) and _num(mine["low"]) > floor,
            )
        )
    paired = [
        PairedLine(
            str(p["over"]),
            str(p["metric"]),
            int(p["users"]),
            float(p["relative"]),
            _num(p["relative_low"]),
            _num(p["relative_high"]),
            verdict(_num(p["relative_low"]), _num(p["relative_high"]), len(seeds)),
        )
        for p in (d.get("paired") or {}).values()
    ]
    return BenchmarkEntry(key, str(d.get("dataset", key)), seeds, lines, paired)


def _num(x: Any) -> float:
    """A JSON number, NaN for null (json writes NaN summaries of one seed as NaN or null)."""
    return math.nan if x is None else float(x)


__all__ = [
    "BENCHMARK_SCHEMA",
    "GAIN",
    "LOSS",
    "ONE_SEED",
    "WITHIN_NOISE",
    "BenchmarkEntry",
    "MetricLine",
    "PairedLine",
    "benchmark_lines",
    "read_benchmark",
    "run_lines",
    "user_noise",
    "verdict",
]
