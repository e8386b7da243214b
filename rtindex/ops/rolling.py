"""Rolling statistics over the last ``window_s`` seconds, in constant memory.

Values (latencies, freshness) go into log-spaced bins, 5% wide, kept per second of
arrival; a quantile is read from the merged bins. So p50/p99 are within 5% of the exact
value whatever the rate, memory is bounded by bins x seconds, and bins from different
processes (the members of a consumer group) merge by adding counts, which averaging
their p99s could not do.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Iterable, Mapping

# Bin i holds values in [BASE^i, BASE^(i+1)); bin ZERO holds values <= MIN_VALUE.
BASE = 1.05
_LOG_BASE = math.log(BASE)
MIN_VALUE = 1e-3
ZERO = -(10**6)


def bin_of(value: float) -> int:
    if not value > MIN_VALUE:  # also catches NaN
        return ZERO
    return math.floor(math.log(value) / _LOG_BASE)


def bin_value(b: int) -> float:
    """A bin's representative: the geometric middle of its bounds."""
    if b == ZERO:
        return 0.0
    return float(BASE ** (b + 0.5))


def quantile(bins: Mapping[int, int], q: float) -> float | None:
    """The q-quantile (0 < q <= 1) of the values counted in ``bins``; None when empty."""
    total = sum(bins.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for b in sorted(bins):
        seen += bins[b]
        if seen >= rank:
            return bin_value(b)
    return bin_value(max(bins))  # unreachable: seen reaches total


def merge(many: Iterable[Mapping[int, int]]) -> Counter[int]:
    out: Counter[int] = Counter()
    for bins in many:
        out.update(bins)
    return out


class Rolling:
    """Counts and value bins per second over a sliding window. Not thread-safe: the
    owner serializes (one thread, or a lock)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = max(1, math.ceil(window_s))
        self._seconds: deque[tuple[int, int, Counter[int]]] = deque()

    def _slot(self, now: float) -> tuple[int, int, Counter[int]]:
        sec = math.floor(now)
        if not self._seconds or self._seconds[-1][0] != sec:
            self._seconds.append((sec, 0, Counter()))
        self._expire(now)
        return self._seconds[-1]

    def _expire(self, now: float) -> None:
        oldest = math.floor(now) - self.window_s
        while self._seconds and self._seconds[0][0] <= oldest:
            self._seconds.popleft()

    def count(self, n: int, now: float) -> None:
        """Count ``n`` occurrences (events, requests) without values."""
        sec, c, bins = self._slot(now)
        self._seconds[-1] = (sec, c + n, bins)

    def observe(self, values: Iterable[float], now: float) -> None:
        """Count each value and put it in its bin."""
        sec, c, bins = self._slot(now)
        n = 0
        for v in values:
            bins[bin_of(v)] += 1
            n += 1
        self._seconds[-1] = (sec, c + n, bins)

    def total(self, now: float) -> int:
        self._expire(now)
        return sum(c for _, c, _ in self._seconds)

    def rate(self, now: float) -> float:
        """Occurrences per second over the window (or over the time since the first one,
        when that is shorter, so that a fresh start does not read low)."""
        self._expire(now)
        if not self._seconds:
            return 0.0
        span = min(float(self.window_s), max(1.0, now - self._seconds[0][0]))
        return sum(c for _, c, _ in self._seconds) / span

    def bins(self, now: float) -> Counter[int]:
        self._expire(now)
        return merge(b for _, _, b in self._seconds)

    def quantiles(self, now: float, qs: tuple[float, ...] = (0.5, 0.99)) -> list[float | None]:
        bins = self.bins(now)
        return [quantile(bins, q) for q in qs]
