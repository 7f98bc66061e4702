"""Statistics for claims of a gain: seed-level t-intervals and a paired bootstrap over test users.

Seeds: each seed is one full run (same split, every model reseeded), so a model's per-seed
figures are independent draws; a gain is taken per seed (both models of one run) and summarised
by its mean, sample standard deviation and a 95% Student-t interval. Users: the same test users
score both models, so per-user differences are paired; resampling users gives an interval for
the mean difference and for the relative gain (ratio of means).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

# Two-sided 95% Student-t quantiles t_{0.975, df} for df = 1..30 (beyond: the normal 1.96 is within 2%).
T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with `df` degrees of freedom."""
    if df < 1:
        return math.nan
    return T975[df - 1] if df <= len(T975) else 1.96


@dataclass
class Summary:
    """Mean, sample standard deviation (ddof 1) and 95% t-interval of a few per-seed values."""

    n: int
    mean: float
    std: float
    low: float
    high: float
    values: list[float]

    def to_dict(self) -> dict:
        return asdict(self)

    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of zero."""
        return self.low > 0 or self.high < 0


def summarise(values: list[float] | np.ndarray) -> Summary:
    """Mean ± sample std and the 95% t-interval of the mean (NaN bounds for fewer than two values)."""
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    mean = float(v.mean()) if n else math.nan
    std = float(v.std(ddof=1)) if n > 1 else math.nan
    half = t975(n - 1) * std / math.sqrt(n) if n > 1 else math.nan
    return Summary(n, mean, std, mean - half, mean + half, [float(x) for x in v])


@dataclass
class PairedBootstrap:
    """Per-user paired comparison of model A against model B on the same users."""

    users: int
    mean_a: float
    mean_b: float
    mean_diff: float  # mean over users of a_u - b_u
    diff_low: float
    diff_high: float
    relative: float  # mean_a / mean_b - 1
    relative_low: float
    relative_high: float
    resamples: int

    def to_dict(self) -> dict:
        return asdict(self)


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, resamples: int = 10_000, seed: int = 0, chunk: int = 500
) -> PairedBootstrap:
    """95% percentile intervals of mean(a - b) and mean(a)/mean(b) - 1, resampling users with replacement.

    Vectorised in chunks of resamples: each chunk draws a (chunk, U) index matrix."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"paired values must be two equal, non-empty 1-d arrays, got {a.shape} and {b.shape}")
    rng = np.random.default_rng(seed)
    n = len(a)
    diffs, ratios = [], []
    for start in range(0, resamples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, resamples - start), n))  # (r, U)
        ma, mb = a[idx].mean(axis=1), b[idx].mean(axis=1)  # (r,)
        diffs.append(ma - mb)
        ratios.append(ma / np.where(mb > 0, mb, np.nan) - 1)
    d, r = np.concatenate(diffs), np.concatenate(ratios)
    lo, hi = np.percentile(d, [2.5, 97.5])
    r = r[np.isfinite(r)]  # resamples whose B mean is 0 have no ratio
    rlo, rhi = np.percentile(r, [2.5, 97.5]) if len(r) else (math.nan, math.nan)
    ma, mb = float(a.mean()), float(b.mean())
    return PairedBootstrap(
        n, ma, mb, ma - mb, float(lo), float(hi), ma / mb - 1 if mb else math.nan, float(rlo), float(rhi), resamples
    )


__all__ = ["PairedBootstrap", "Summary", "paired_bootstrap", "summarise", "t975"]
