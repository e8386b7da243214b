"""Recall merging (pure): shard sums in log2 space, normalization, similarity, seeds and
the channel mix. Expected values are computed by hand."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtindex.indexer.behavior import Recent
from rtindex.query.merge import (
    Scored,
    combine,
    log_sum,
    merge_shards,
    normalize,
    seed_weights,
    similarity,
    to_linear,
)

# -- log_sum, merge_shards -----------------------------------------------------------------


def test_log_sum_values() -> None:
    assert log_sum([3.0]) == 3.0
    assert log_sum([1.0, 1.0]) == pytest.approx(2.0)
    assert log_sum([0.0, math.log2(3)]) == pytest.approx(2.0)
    assert log_sum([0.0, 0.0, 1.0]) == pytest.approx(2.0)  # 1 + 1 + 2 = 4
    assert log_sum([1e5, 1e5]) == pytest.approx(1e5 + 1)  # no overflow
    assert log_sum([-1e5, -1e5, -1e5, -1e5]) == pytest.approx(-1e5 + 2)
    assert log_sum(iter([2.0, 2.0])) == pytest.approx(3.0)  # any iterable


def test_merge_shards_adds_partial_sums_in_linear_space() -> None:
    shard0 = [("a", 1.0), ("b", 0.0)]  # a: 2, b: 1
    shard1 = [("a", 1.0), ("c", math.log2(5))]  # a: 2, c: 5
    shard2 = [("b", math.log2(3))]  # b: 3
    merged = merge_shards([shard0, shard1, shard2])
    assert merged.keys() == {"a", "b", "c"}
    assert merged["a"] == pytest.approx(2.0)  # 2 + 2 = 4
    assert merged["b"] == pytest.approx(2.0)  # 1 + 3 = 4
    assert merged["c"] == math.log2(5)  # one shard: unchanged
    assert merge_shards([]) == {} and merge_shards([[], []]) == {}
    assert merge_shards([[("a", 1.5), ("b", -2.0)]]) == {"a": 1.5, "b": -2.0}
    assert merge_shards(iter([iter([("a", 1.0)]), iter([("a", 1.0)])])) == {"a": 2.0}


# Each shard's list comes from one sorted set: a member appears at most once per shard.
shard_lists = st.lists(
    st.dictionaries(st.sampled_from("abcdef"), st.floats(-1e4, 1e4, allow_nan=False), max_size=6),
    max_size=5,
).map(lambda shards: [list(d.items()) for d in shards])


@given(shard_lists, st.randoms(use_true_random=False))
def test_merge_shards_order_independent(
    lists: list[list[tuple[str, float]]], rnd: random.Random
) -> None:
    merged = merge_shards(lists)
    rows = [r for rows in lists for r in rows]
    rnd.shuffle(rows)
    shuffled = merge_shards([[row] for row in rows])  # one row per shard, in any order
    assert merged.keys() == shuffled.keys() == {m for m, _ in rows}
    for m, v in merged.items():
        assert shuffled[m] == pytest.approx(v, abs=1e-9)
        parts = [x for k, x in rows if k == m]
        assert max(parts) <= v <= max(parts) + math.log2(len(parts)) + 1e-9


@given(st.lists(st.floats(-500, 500, allow_nan=False), min_size=1, max_size=8))
def test_log_sum_is_log2_of_the_linear_sum(values: list[float]) -> None:
    assert log_sum(values) == pytest.approx(math.log2(sum(2.0**v for v in values)), abs=1e-9)


# -- to_linear, normalize, similarity ------------------------------------------------------


def test_to_linear_best_is_one() -> None:
    assert to_linear({"a": 3.0, "b": 1.0, "c": 3.0 - math.log2(5)}) == pytest.approx(
        {"a": 1.0, "b": 0.25, "c": 0.2}
    )
    assert to_linear({"a": 1e5, "b": 1e5 - 1}) == pytest.approx({"a": 1.0, "b": 0.5})
    assert to_linear({"x": -7.0}) == {"x": 1.0}
    assert to_linear({}) == {}


def test_normalize() -> None:
    assert normalize({"a": 4.0, "b": 2.0, "c": 0.0, "d": -1.0}) == {"a": 1.0, "b": 0.5}
    assert normalize({"a": 0.002, "b": 0.001}) == pytest.approx({"a": 1.0, "b": 0.5})
    assert normalize({}) == {}
    assert normalize({"a": 0.0, "b": -3.0}) == {}


def test_similarity_log_space() -> None:
    assert similarity(5.0, 3.0, 1.0, 0.0) == 5.0  # alpha 0: the raw co-occurrence
    assert similarity(5.0, 3.0, 1.0, 0.5) == pytest.approx(3.0)  # 5 - (3 + 1) / 2
    assert similarity(5.0, 3.0, 1.0, 1.0) == pytest.approx(1.0)
    # In linear terms: co / (pop_a * pop_b)^alpha = 32 / (8 * 2)^0.5 = 8 = 2^3.
    assert 2 ** similarity(5.0, 3.0, 1.0, 0.5) == pytest.approx(32 / math.sqrt(8 * 2))


def test_similarity_demotes_a_popular_neighbour() -> None:
    seed_pop, co = 2.0, 4.0
    bestseller, niche = 10.0, 1.0  # log2 popularities
    assert similarity(co, seed_pop, bestseller, 0.0) == similarity(co, seed_pop, niche, 0.0)
    assert similarity(co, seed_pop, bestseller, 0.5) < similarity(co, seed_pop, niche, 0.5)
    # A stronger co-occurrence can still win against the damping.
    assert similarity(co + 5, seed_pop, bestseller, 0.5) > similarity(co, seed_pop, niche, 0.5)


# -- seed_weights --------------------------------------------------------------------------

H = 3600.0  # the recency half-life, seconds
NOW = 1_800_000_000_000
W = {"view": 1.0, "click": 2.0, "like": 0.0, "cart": 4.0, "purchase": 6.0}


def r(age_h: float, action: str, item: str, eid: str = "") -> Recent:
    return Recent(NOW - int(age_h * 3600_000), action, eid or f"{item}{age_h}{action}", item)


def test_seed_weights_max_per_item_and_recency() -> None:
    recent = [
        r(0, "view", "a"),  # 1 * 1
        r(1, "purchase", "a"),  # 6 * 1/2 = 3: the strongest for a
        r(2, "click", "b"),  # 2 * 1/4 = 0.5
        r(3, "cart", "b"),  # 4 * 1/8 = 0.5
        r(1, "view", "c"),  # 0.5
        r(5, "click", "c"),  # 2 / 32: weaker than the view, so the view's 0.5 stays
    ]
    assert seed_weights(recent, W, 10, H) == pytest.approx({"a": 3.0, "b": 0.5, "c": 0.5})


def test_seed_weights_relative_to_the_newest_event_not_the_first() -> None:
    # The list is in arrival order; a late event may be older than what follows it.
    recent = [r(2, "view", "late"), r(0, "click", "new"), r(1, "view", "mid")]
    assert seed_weights(recent, W, 10, H) == pytest.approx({"late": 0.25, "new": 2.0, "mid": 0.5})
    # Only relative ages count: the same list shifted by a week weighs the same.
    week = 7 * 86_400_000
    shifted = [Recent(x.ts - week, x.action, x.event_id, x.item) for x in recent]
    assert seed_weights(shifted, W, 10, H) == pytest.approx(seed_weights(recent, W, 10, H))


def test_seed_weights_cap_and_zero_weight_actions() -> None:
    recent = [
        r(0, "view", "a"),
        r(0.5, "like", "z"),  # weight 0: skipped, and takes no slot
        r(1, "view", "b"),
        r(1.5, "view", "c"),  # beyond the cap of 2 distinct items
        r(2, "purchase", "a"),  # a is already in: it still raises a (6 / 4 = 1.5)
        r(2, "bogus", "d"),  # unknown action: weight 0
    ]
    assert seed_weights(recent, W, 2, H) == pytest.approx({"a": 1.5, "b": 0.5})
    assert seed_weights([r(0, "like", "z")], W, 5, H) == {}
    assert seed_weights([], W, 5, H) == {}


# -- combine -------------------------------------------------------------------------------


def test_combine_normalizes_weights_and_ranks() -> None:
    channels = {"i2i": {"x": 10.0, "y": 5.0}, "trending": {"y": 0.2, "z": 0.1}}
    out = combine(channels, {"i2i": 1.0, "trending": 0.8})
    # i2i: x 1, y .5; trending: y 1, z .5 -> y .5 + .8 = 1.3, x 1, z .4
    assert out == [
        Scored("y", pytest.approx(1.3), ("trending", "i2i")),  # type: ignore[arg-type]
        Scored("x", 1.0, ("i2i",)),
        Scored("z", pytest.approx(0.4), ("trending",)),  # type: ignore[arg-type]
    ]


def test_combine_channel_scale_does_not_matter() -> None:
    base = {"i2i": {"x": 10.0, "y": 5.0}, "trending": {"y": 0.2, "z": 0.1}}
    scaled = {"i2i": {"x": 1e-6, "y": 5e-7}, "trending": {"y": 2e5, "z": 1e5}}
    weights = {"i2i": 1.0, "trending": 0.8}
    a, b = combine(base, weights), combine(scaled, weights)
    assert [(s.id, s.sources) for s in a] == [(s.id, s.sources) for s in b]
    assert [s.score for s in a] == pytest.approx([s.score for s in b])


def test_combine_ties_by_id_and_sources_by_name() -> None:
    channels = {"b": {"y": 1.0, "x": 2.0}, "a": {"y": 4.0, "x": 2.0}}
    out = combine(channels, {"a": 1.0, "b": 1.0})
    # x: b 1 + a .5 = 1.5; y: b .5 + a 1 = 1.5 -> tie, by id.
    assert [(s.id, s.score) for s in out] == [("x", 1.5), ("y", 1.5)]
    assert out[0].sources == ("b", "a") and out[1].sources == ("a", "b")
    tied = combine({"q": {"m": 1.0}, "p": {"m": 3.0}}, {"p": 0.5, "q": 0.5})
    assert tied == [Scored("m", 1.0, ("p", "q"))]  # equal contributions: by channel name


def test_combine_exclusion() -> None:
    channels = {"i2i": {"x": 4.0, "y": 2.0}, "trending": {"y": 1.0, "z": 1.0}}
    out = combine(channels, {"i2i": 1.0, "trending": 1.0}, exclude={"x", "nope"})
    assert [(s.id, s.score) for s in out] == [("y", 1.5), ("z", 1.0)]
    # Normalization happens before exclusion: y keeps 0.5 of i2i, it is not promoted to 1.
    assert out[0].sources == ("trending", "i2i")


def test_combine_zero_or_missing_weight_contributes_nothing() -> None:
    channels = {"i2i": {"x": 1.0}, "trending": {"x": 9.0, "t": 1.0}, "extra": {"e": 1.0}}
    out = combine(channels, {"i2i": 1.0, "trending": 0.0})
    assert out == [Scored("x", 1.0, ("i2i",))]
    assert combine(channels, {}) == []
    assert combine({}, {"i2i": 1.0}) == []
    assert combine({"i2i": {"x": 0.0, "y": -1.0}}, {"i2i": 1.0}) == []


channel_maps = st.dictionaries(
    st.sampled_from(["i2i", "preference", "trending", "other"]),
    st.dictionaries(st.sampled_from("abcdefgh"), st.floats(-10, 1e6, allow_nan=False), max_size=6),
    max_size=4,
)
channel_weights = st.dictionaries(
    st.sampled_from(["i2i", "preference", "trending", "other"]),
    st.floats(0, 5, allow_nan=False),
    max_size=4,
)


@given(channel_maps, channel_weights, st.sets(st.sampled_from("abcdefgh"), max_size=3))
def test_combine_invariants(
    channels: dict[str, dict[str, float]], weights: dict[str, float], exclude: set[str]
) -> None:
    out = combine(channels, weights, exclude)
    total = sum(w for name, w in weights.items() if name in channels and w > 0)
    ids = [s.id for s in out]
    assert len(ids) == len(set(ids)) and not set(ids) & exclude
    for s in out:
        assert 0 <= s.score <= total * (1 + 1e-12)
        assert s.sources and set(s.sources) <= {n for n, w in weights.items() if w > 0}
        assert all(s.id in channels[n] and channels[n][s.id] > 0 for n in s.sources)
        # The score is the sum of its sources' normalized, weighted contributions.
        parts = {n: weights[n] * normalize(channels[n])[s.id] for n in s.sources}
        assert s.score == pytest.approx(sum(parts.values()))
        assert [parts[n] for n in s.sources] == sorted(parts.values(), reverse=True)
    keys = [(-s.score, s.id) for s in out]
    assert keys == sorted(keys)
    # Every eligible item is listed.
    eligible = {
        i
        for n, sc in channels.items()
        if weights.get(n, 0) > 0
        for i, v in sc.items()
        if v > 0 and i not in exclude
    }
    assert set(ids) == eligible
    # The order of the channels does not matter.
    again = combine(dict(reversed(list(channels.items()))), weights, exclude)
    assert {s.id: s.score for s in again} == pytest.approx({s.id: s.score for s in out})
