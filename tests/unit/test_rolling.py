"""Rolling windows: quantiles within the bin width, rates, expiry, merging."""

from __future__ import annotations

import math
import random

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from rtindex.ops.rolling import BASE, ZERO, Rolling, bin_of, bin_value, merge, quantile


@given(st.floats(min_value=1e-2, max_value=1e9, allow_nan=False))
def test_a_value_is_within_its_bin(v: float) -> None:
    b = bin_of(v)
    assert BASE**b <= v * (1 + 1e-9) and v < BASE ** (b + 1) * (1 + 1e-9)
    assert abs(bin_value(b) - v) / v < BASE - 1


def test_zero_negative_and_nan_share_the_zero_bin() -> None:
    assert bin_of(0.0) == bin_of(-5.0) == bin_of(math.nan) == ZERO
    assert bin_value(ZERO) == 0.0


@given(st.lists(st.floats(min_value=0.01, max_value=1e6), min_size=1, max_size=300))
def test_quantiles_are_within_five_percent_of_numpy(values: list[float]) -> None:
    bins = merge([{bin_of(v): 1} for v in values])
    for q in (0.5, 0.9, 0.99):
        exact = float(np.quantile(values, q, method="inverted_cdf"))
        got = quantile(bins, q)
        assert got is not None
        assert abs(got - exact) <= (BASE - 1) * exact * 1.0001, (q, got, exact)


def test_empty_has_no_quantile() -> None:
    assert quantile({}, 0.5) is None
    assert Rolling(60).quantiles(1000.0) == [None, None]


def test_rate_total_and_expiry() -> None:
    r = Rolling(10)
    t0 = 1_000_000.0
    for i in range(10):
        r.count(100, t0 + i)
    assert r.total(t0 + 9.5) == 1000
    # Five seconds later the first five seconds have left the window.
    assert r.total(t0 + 14.5) == 500
    assert r.total(t0 + 100) == 0 and r.rate(t0 + 100) == 0.0


def test_a_steady_stream_reads_its_rate() -> None:
    r = Rolling(10)
    t = 5_000.0
    for _ in range(300):  # 30 s of 200 events/s, in 0.1 s steps
        r.count(20, t)
        t += 0.1
    assert abs(r.rate(t) - 200) / 200 < 0.1


def test_a_fresh_window_does_not_read_low() -> None:
    r = Rolling(60)
    r.count(50, 2000.0)
    assert r.rate(2000.5) == 50.0  # over one second, not over sixty


def test_observe_counts_and_bins() -> None:
    rng = random.Random(7)
    r = Rolling(60)
    values = [rng.lognormvariate(3, 1) for _ in range(5000)]
    for i in range(0, 5000, 100):
        r.observe(values[i : i + 100], 500.0 + i / 1000)
    assert r.total(505.0) == 5000
    p50, p99 = r.quantiles(505.0)
    assert p50 is not None and p99 is not None
    assert abs(p50 - float(np.quantile(values, 0.5))) / p50 < 0.06
    assert abs(p99 - float(np.quantile(values, 0.99))) / p99 < 0.06


def test_merging_members_equals_one_window() -> None:
    """Bins from two consumer processes add up to the bins of all their values."""
    a, b, both = Rolling(60), Rolling(60), Rolling(60)
    xs, ys = [1.0, 2.0, 300.0], [5.0, 5.0, 9000.0]
    a.observe(xs, 10.0)
    b.observe(ys, 10.0)
    both.observe(xs + ys, 10.0)
    assert merge([a.bins(10.0), b.bins(10.0)]) == both.bins(10.0)
