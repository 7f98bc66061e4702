"""Seed-level t-intervals and the paired per-user bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sicsrec.eval.stats import paired_bootstrap, summarise, t975


def test_t_interval_by_hand() -> None:
    s = summarise([0.10, 0.12, 0.08, 0.11, 0.09])
    assert math.isclose(s.mean, 0.10) and math.isclose(s.std, math.sqrt(0.0001 * 10 / 4))
    half = 2.776 * s.std / math.sqrt(5)  # t_{0.975, 4}
    assert math.isclose(s.low, 0.10 - half) and math.isclose(s.high, 0.10 + half)
    assert s.excludes_zero() and not summarise([-0.1, 0.1, 0.05]).excludes_zero()
    assert math.isnan(summarise([0.3]).std) and t975(100) == 1.96


def test_paired_bootstrap_finds_a_real_difference_and_not_a_fake_one() -> None:
    rng = np.random.default_rng(0)
    b = rng.random(2000)
    better = paired_bootstrap(b + 0.05, b, resamples=2000)
    assert better.diff_low > 0 and math.isclose(better.mean_diff, 0.05) and better.relative_low > 0
    same = paired_bootstrap(b[rng.permutation(2000)], b, resamples=2000)
    assert same.diff_low < 0 < same.diff_high
    assert paired_bootstrap(b, b, resamples=100, seed=1) == paired_bootstrap(b, b, resamples=100, seed=1)


def test_paired_bootstrap_refuses_unpaired_input() -> None:
    with pytest.raises(ValueError, match="equal"):
        paired_bootstrap(np.ones(3), np.ones(4))
