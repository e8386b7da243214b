"""Exponential time decay without rescans: forward decay, stored as log2.

A decayed sum ``S(now) = sum_i w_i * 2^(-(now - t_i) / h)`` is
``2^(-now / h) * sum_i w_i * 2^(t_i / h)``. The second factor does not depend on ``now``,
so it is what is stored, and adding an event never touches the other entries: no
periodic rescan of every item (which is what keeps trending lists cheap at any size).
Its raw value grows like ``2^(t / h)`` and would overflow a double after about a
thousand half-lives, so it is stored as its base-2 logarithm, ``log2(w) + t / h`` per
event, combined with :func:`log_add`. Entries of one key compare directly (the order is
the order of their decayed values at any ``now``), and :func:`value_at` turns a stored
number back into the decayed value at a given time.
"""

from __future__ import annotations

import math

MS_PER_S = 1000.0


def log_weight(weight: float, ts_ms: int, half_life_s: float) -> float:
    """The stored form of one event of ``weight`` at ``ts_ms``. ``weight`` must be > 0."""
    return math.log2(weight) + ts_ms / (half_life_s * MS_PER_S)


def log_add(a: float | None, b: float) -> float:
    """log2(2^a + 2^b) without overflow; ``a`` None means an empty sum."""
    if a is None:
        return b
    hi, lo = (a, b) if a >= b else (b, a)
    return hi + math.log2(1.0 + 2.0 ** (lo - hi))


def value_at(stored: float, now_ms: float, half_life_s: float) -> float:
    """The decayed sum at ``now_ms`` (0.0 when it has decayed below a double's range)."""
    exponent = stored - now_ms / (half_life_s * MS_PER_S)
    return 0.0 if exponent < -1000 else math.pow(2.0, min(exponent, 1000.0))


def halvings(gap_ms: float, half_life_s: float) -> float:
    """The weight factor of something ``gap_ms`` old: 2^(-gap / half-life)."""
    return math.pow(2.0, -abs(gap_ms) / (half_life_s * MS_PER_S))
