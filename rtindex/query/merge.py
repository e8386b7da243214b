"""Pure scoring and merging for behavior recall: plain functions over plain data.

Stored weights are log2 of forward-decayed sums (``indexer/decay.py``): per-shard
partial sums of one quantity add up with :func:`log_sum`, ratios are differences, and
:func:`to_linear` turns a set of them into values relative to their best.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rtindex.indexer.behavior import Recent
from rtindex.indexer.decay import halvings


def log_sum(values: Iterable[float]) -> float:
    """log2 of the sum of 2^v (values of one quantity from several shards)."""
    vs = list(values)
    top = max(vs)
    return top + math.log2(sum(2.0 ** (v - top) for v in vs))


def merge_shards(lists: Iterable[Iterable[tuple[str, float]]]) -> dict[str, float]:
    """Per-shard (member, log2 weight) lists -> member -> log2 of the total weight."""
    shards = [rows if isinstance(rows, list) else list(rows) for rows in lists]
    if len(shards) == 1:
        return dict(shards[0])  # one shard: nothing to add up
    parts: dict[str, list[float]] = {}
    for rows in shards:
        for member, value in rows:
            parts.setdefault(member, []).append(value)
    return {m: v[0] if len(v) == 1 else log_sum(v) for m, v in parts.items()}


def to_linear(log_scores: Mapping[str, float]) -> dict[str, float]:
    """log2 scores -> linear scores with the best at 1.0 (0 < score <= 1)."""
    if not log_scores:
        return {}
    top = max(log_scores.values())
    return {m: 2.0 ** (v - top) for m, v in log_scores.items()}


def normalize(scores: Mapping[str, float]) -> dict[str, float]:
    """Linear scores scaled so the best is 1.0 (a channel's scale must not decide a merge)."""
    top = max(scores.values(), default=0.0)
    if top <= 0:
        return {}
    return {m: v / top for m, v in scores.items() if v > 0}


def similarity(co: float, pop_a: float, pop_b: float, alpha: float) -> float:
    """log2 of co-occurrence / (popularity_a * popularity_b)^alpha: without the damping
    of popular items, every item's neighbours would be the bestsellers."""
    return co - alpha * (pop_a + pop_b)


def seed_weights(
    recent: Sequence[Recent],
    action_weights: Mapping[str, float],
    max_items: int,
    half_life_s: float,
) -> dict[str, float]:
    """The user's recent distinct items, each weighted by its strongest action and by
    how recent it is relative to the user's newest event (half-life ``half_life_s``):
    what the user did a minute ago says more than what they did last week."""
    if not recent:
        return {}
    newest = max(r.ts for r in recent)
    seeds: dict[str, float] = {}
    for r in recent:
        w = action_weights.get(r.action, 0.0) * halvings(newest - r.ts, half_life_s)
        if w <= 0:
            continue
        if r.item in seeds:
            seeds[r.item] = max(seeds[r.item], w)
        elif len(seeds) < max_items:
            seeds[r.item] = w
    return seeds


@dataclass(frozen=True, slots=True)
class Scored:
    id: str
    score: float
    sources: tuple[str, ...]


def combine(
    channels: Mapping[str, Mapping[str, float]],
    weights: Mapping[str, float],
    exclude: set[str] | frozenset[str] = frozenset(),
    limit: int | None = None,
) -> list[Scored]:
    """Merge channels (each normalized to a best of 1) into one ranking, best first, ties
    by id; each result names the channels that produced it, strongest first. Only the
    best ``limit`` are returned (all when None)."""
    total: dict[str, float] = {}
    by: dict[str, list[tuple[float, str]]] = {}
    for name, scores in channels.items():
        w = weights.get(name, 0.0)
        if w <= 0:
            continue
        for item, s in normalize(scores).items():
            if item in exclude:
                continue
            total[item] = total.get(item, 0.0) + w * s
            by.setdefault(item, []).append((w * s, name))
    ranked = sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [Scored(item, score, _strongest_first(by[item])) for item, score in ranked]


def _strongest_first(parts: list[tuple[float, str]]) -> tuple[str, ...]:
    if len(parts) == 1:
        return (parts[0][1],)
    return tuple(n for _, n in sorted(parts, key=lambda x: (-x[0], x[1])))
