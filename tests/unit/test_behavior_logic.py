"""Behavior planning (pure): forward decay, the co-occurrence window, pair weights, user
state and the flat operation lists ``plan_chunk`` hands to ``behavior.lua``.

Expected values are computed by hand; settings use round half-lives so they stay readable.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from rtindex.indexer.behavior import (
    APPLIED,
    DUPLICATE,
    REDELIVERED,
    SEP,
    ChunkPlan,
    ItemAttributes,
    Located,
    Op,
    Recent,
    UserState,
    expiry_ops,
    pair_weight,
    plan_chunk,
    window,
)
from rtindex.indexer.decay import halvings, log_add, log_weight, value_at
from rtindex.indexer.events import BehaviorEvent
from rtindex.indexer.keys import BehaviorKeys
from rtindex.settings import ActionWeights, BehaviorSettings

KEYS = BehaviorKeys("t", 1)
P = "t:{b0}:"  # the key prefix of shard 0
TOPIC = "beh"

# Readable numbers: a weight-2 event at T0 is stored as 1 + 2 = 3 (i2i), 1 + 20 = 21
# (trending), 1 + 0.2 = 1.2 (profile).
CFG = BehaviorSettings(
    i2i_half_life_s=1000.0,
    trending_half_life_s=100.0,
    profile_half_life_s=10_000.0,
    pair_half_life_s=60.0,
    activity_damping=1.0,
    window_s=1800.0,
    window_items=10,
    user_ttl_s=None,
)
T0 = 2_000_000
ATTRS: ItemAttributes = {"i1": {"category": ("餐饮",), "tags": ("a", "b")}}


# -- helpers -------------------------------------------------------------------------------

# Total widths (opcode included) of the fixed-width operations of behavior.lua.
WIDTHS = {"z": 5, "x": 5, "h": 4, "u": 5, "a": 4, "o": 6, "e": 8, "r": 7}


def parse(ops: Sequence[Op]) -> list[tuple[str, tuple[Op, ...]]]:
    """The flat list as (opcode, arguments) tuples, cut as behavior.lua cuts it."""
    out: list[tuple[str, tuple[Op, ...]]] = []
    i = 0
    while i < len(ops):
        op = ops[i]
        assert isinstance(op, str)
        if op == "Z":
            count = ops[i + 3]
            assert isinstance(count, int)
            width = 4 + 2 * count
        elif op == "l":
            count = ops[i + 3]
            assert isinstance(count, int)
            width = 4 + count
        else:
            width = WIDTHS[op]
        assert i + width <= len(ops), f"truncated {op!r} operation at {i}"
        out.append((op, tuple(ops[i + 1 : i + width])))
        i += width
    return out


def ev(eid: str, user: str, item: str, action: str, ts: int) -> BehaviorEvent:
    return BehaviorEvent(event_id=eid, user_id=user, item_id=item, action=action, ts=ts)  # type: ignore[arg-type]


def at(event: BehaviorEvent, offset: int, partition: int = 0, fingerprint: str = "") -> Located:
    return Located(event, TOPIC, partition, offset, fingerprint)


def plan(
    events: Sequence[Located],
    users: dict[str, UserState] | None = None,
    *,
    offsets: dict[tuple[str, int], int] | None = None,
    attrs: ItemAttributes | None = None,
    cfg: BehaviorSettings = CFG,
) -> ChunkPlan:
    if users is None:
        users = {}
    for loc in events:
        users.setdefault(loc.event.user_id, UserState())
    p = plan_chunk(0, events, users, offsets or {}, attrs or {}, KEYS, cfg)
    assert_keys_declared(p)
    return p


def assert_keys_declared(p: ChunkPlan) -> None:
    """Every key an operation touches is declared to the script (Redis Cluster's rule)."""
    declared = set(p.keys)
    assert set(p.cas) <= declared
    for code, args in parse(p.ops):
        assert args[0] in declared, (code, args[0])
        if code == "r":
            assert set(args[2:]) <= declared


def of(p: ChunkPlan, *codes: str) -> list[tuple[str, tuple[Op, ...]]]:
    return [o for o in parse(p.ops) if o[0] in codes]


# -- decay ---------------------------------------------------------------------------------


def test_log_weight_is_log2_weight_plus_half_lives_since_epoch() -> None:
    assert log_weight(1.0, 0, 10.0) == 0.0
    assert log_weight(8.0, 3000, 1.0) == pytest.approx(6.0)  # 3 + 3 s / 1 s
    assert log_weight(2.0, T0, 1000.0) == pytest.approx(3.0)
    assert log_weight(0.5, 500, 1.0) == pytest.approx(-0.5)


def test_log_add_values() -> None:
    assert log_add(None, 2.5) == 2.5
    assert log_add(3.0, 3.0) == pytest.approx(4.0)
    assert log_add(0.0, math.log2(3)) == pytest.approx(2.0)  # 1 + 3 = 4
    assert log_add(math.log2(3), 0.0) == pytest.approx(2.0)
    assert log_add(-2.0, -2.0) == pytest.approx(-1.0)


def test_log_add_does_not_overflow() -> None:
    assert log_add(1e5, 1e5) == pytest.approx(1e5 + 1)
    assert log_add(1e5, 0.0) == 1e5  # 2^-1e5 is far below a double's resolution
    assert log_add(0.0, 1e5) == 1e5
    assert log_add(1e5, 1e5 + math.log2(3)) == pytest.approx(1e5 + 2)
    assert log_add(-1e5, -1e5) == pytest.approx(-1e5 + 1)


moderate = st.floats(min_value=-500, max_value=500, allow_nan=False)
wide = st.floats(min_value=-1e5, max_value=1e5, allow_nan=False)


@given(moderate, moderate)
def test_log_add_is_log2_of_the_sum(a: float, b: float) -> None:
    assert log_add(a, b) == pytest.approx(math.log2(2.0**a + 2.0**b), rel=1e-12, abs=1e-12)


@given(wide, wide)
def test_log_add_commutative_and_bounded(a: float, b: float) -> None:
    assert log_add(a, b) == log_add(b, a)
    assert max(a, b) <= log_add(a, b) <= max(a, b) + 1 + 1e-9


@given(wide, wide, wide)
def test_log_add_associative(a: float, b: float, c: float) -> None:
    assert abs(log_add(log_add(a, b), c) - log_add(a, log_add(b, c))) < 1e-9


def test_value_at_halves_per_half_life() -> None:
    h = 3600.0
    for w, t in ((1.0, 0), (5.0, 1_700_000_000_000), (0.25, 123_456)):
        s = log_weight(w, t, h)
        assert value_at(s, t, h) == pytest.approx(w)
        assert value_at(s, t + h * 1000, h) == pytest.approx(w / 2)
        assert value_at(s, t + 3 * h * 1000, h) == pytest.approx(w / 8)
    # Far beyond a double's range: 0, not an error.
    assert value_at(log_weight(1.0, 0, 1.0), 2_000_000, 1.0) == 0.0


def test_halvings() -> None:
    assert halvings(0, 10.0) == 1.0
    assert halvings(10_000, 10.0) == pytest.approx(0.5)
    assert halvings(-10_000, 10.0) == pytest.approx(0.5)
    assert halvings(30_000, 10.0) == pytest.approx(0.125)


@given(st.floats(min_value=-1e9, max_value=1e9), st.floats(min_value=1, max_value=1e6))
def test_halvings_symmetric(gap: float, h: float) -> None:
    assert halvings(gap, h) == halvings(-gap, h)
    assert 0.0 <= halvings(gap, h) <= 1.0


weighted_events = st.lists(
    st.tuples(
        st.sampled_from([0.5, 1.0, 2.0, 3.0, 6.0]), st.integers(min_value=0, max_value=10**7)
    ),
    min_size=1,
    max_size=6,
)


def stored(events: list[tuple[float, int]], h: float) -> float:
    s: float | None = None
    for w, t in events:
        s = log_add(s, log_weight(w, t, h))
    assert s is not None
    return s


@given(weighted_events, weighted_events, st.integers(min_value=0, max_value=10**7))
def test_stored_order_is_the_decayed_order_at_any_later_time(
    a: list[tuple[float, int]], b: list[tuple[float, int]], later: int
) -> None:
    h = 600.0
    sa, sb = stored(a, h), stored(b, h)
    now = max(t for _, t in a + b) + later
    va, vb = value_at(sa, now, h), value_at(sb, now, h)
    # The true decayed sums, computed the direct way.
    da = sum(w * 2.0 ** (-(now - t) / (h * 1000)) for w, t in a)
    db = sum(w * 2.0 ** (-(now - t) / (h * 1000)) for w, t in b)
    assert va == pytest.approx(da, rel=1e-9, abs=1e-300)
    assert vb == pytest.approx(db, rel=1e-9, abs=1e-300)
    if sa < sb:
        assert va <= vb
    elif sa > sb:
        assert va >= vb
    else:
        assert va == vb
    if da > 1e-250 and db > 1e-250 and abs(da - db) > 1e-9 * max(da, db):
        assert (sa < sb) == (da < db)


# -- Recent, UserState ---------------------------------------------------------------------


def test_recent_pack_round_trip() -> None:
    r = Recent(1_700_000_000_123, "cart", "e:1 x", "商品-9")
    packed = r.pack()
    assert packed == f"1700000000123{SEP}cart{SEP}e:1 x{SEP}商品-9"
    assert Recent.unpack(packed) == r
    assert Recent.unpack(packed.encode()) == r


def test_user_state_push_cap_seen_n_last() -> None:
    s = UserState.of(5, 100, [Recent(100, "view", "old", "i0")])
    assert s.seen == {"old"}
    s.push(Recent(300, "view", "e1", "i1"), cap=2)
    assert [r.event_id for r in s.recent] == ["e1", "old"]
    assert s.seen == {"e1", "old"} and s.n == 6 and s.last == 300
    s.push(Recent(200, "click", "e2", "i2"), cap=2)  # a late event: last stays 300
    assert [r.event_id for r in s.recent] == ["e2", "e1"]  # the oldest was evicted...
    assert s.seen == {"e2", "e1"}  # ...and forgotten as a duplicate
    assert s.n == 7 and s.last == 300
    s.push(Recent(400, "like", "e3", "i3"), cap=1)
    assert [r.event_id for r in s.recent] == ["e3"] and s.seen == {"e3"}
    assert s.n == 8 and s.last == 400
    s.reset()
    assert (s.n, s.last, s.recent, s.seen) == (0, 0, [], set())


# -- window --------------------------------------------------------------------------------


def rec(ts: int, item: str, action: str = "view", eid: str | None = None) -> Recent:
    return Recent(ts, action, eid or f"e{item}{ts}", item)


def test_window_distinct_items_current_excluded_newest_first() -> None:
    recent = [
        rec(1000, "a", "click"),
        rec(990, "cur"),
        rec(980, "b"),
        rec(970, "a", "purchase"),  # an older event of a: the latest (the click) is kept
        rec(960, "c"),
    ]
    out = window(recent, "cur", 1000, max_items=10, window_ms=1e9)
    assert [(r.item, r.action) for r in out] == [("a", "click"), ("b", "view"), ("c", "view")]


def test_window_max_items() -> None:
    recent = [rec(1000 - i, f"i{i}") for i in range(6)]
    out = window(recent, "x", 1000, max_items=3, window_ms=1e9)
    assert [r.item for r in out] == ["i0", "i1", "i2"]
    assert window(recent, "i0", 1000, max_items=1, window_ms=1e9)[0].item == "i1"


def test_window_time_limit_either_side() -> None:
    recent = [rec(2000, "late"), rec(1500, "edge_hi"), rec(600, "in"), rec(500, "edge_lo")]
    recent += [rec(499, "out_lo"), rec(2001, "out_hi")]
    out = window(recent, "x", 1000, max_items=10, window_ms=500)
    assert [r.item for r in out] == ["edge_hi", "in", "edge_lo"]


def test_window_skips_an_out_of_window_event_but_keeps_the_item_open() -> None:
    # The newest event of "a" is far in the future; an older one is within the window.
    recent = [rec(10_000, "a", "like"), rec(900, "a", "click")]
    out = window(recent, "x", 1000, max_items=10, window_ms=500)
    assert [(r.item, r.action) for r in out] == [("a", "click")]


def test_window_empty() -> None:
    assert window([], "x", 0, 5, 1.0) == []
    assert window([rec(0, "x")], "x", 0, 5, 1.0) == []


# -- pair_weight ---------------------------------------------------------------------------


def test_pair_weight_product_of_actions_and_damping() -> None:
    cfg = BehaviorSettings(pair_half_life_s=60.0, activity_damping=1.0)
    assert pair_weight(2, 3, 0, 0, cfg) == pytest.approx(6.0)  # log2(2 + 0) = 1
    assert pair_weight(2, 3, 0, 2, cfg) == pytest.approx(3.0)  # log2(4) = 2
    assert pair_weight(2, 3, 0, 6, cfg) == pytest.approx(2.0)  # log2(8) = 3
    assert pair_weight(2, 3, 60_000, 0, cfg) == pytest.approx(3.0)  # one pair half-life
    assert pair_weight(2, 3, -120_000, 0, cfg) == pytest.approx(1.5)
    assert pair_weight(4, 1, 60_000, 2, cfg) == pytest.approx(1.0)
    squared = BehaviorSettings(pair_half_life_s=60.0, activity_damping=2.0)
    assert pair_weight(2, 3, 0, 2, squared) == pytest.approx(1.5)  # 6 / 2^2
    off = BehaviorSettings(pair_half_life_s=60.0, activity_damping=0.0)
    for n in (0, 2, 1000, 10**9):
        assert pair_weight(2, 3, 0, n, off) == pytest.approx(6.0)


# -- plan_chunk: the operations of one event -----------------------------------------------


def test_one_event_all_operations() -> None:
    p = plan([at(ev("e1", "u1", "i1", "click", T0), 5, fingerprint="fp5")], attrs=ATTRS)
    assert p.outcomes == [APPLIED] and p.counts == {APPLIED: 1}
    assert p.cas == {P + "u:u1": 0}
    assert p.offsets == {(TOPIC, 0): 5}
    assert parse(p.ops) == [
        ("h", (P + "ic:i1", "click", 1)),
        ("z", (P + "ip", 0, "i1", pytest.approx(3.0))),
        ("z", (P + "tr", CFG.trending_cap, "i1", pytest.approx(21.0))),
        ("z", (P + "tr:餐饮", CFG.trending_cap, "i1", pytest.approx(21.0))),
        ("z", (P + "up:u1", CFG.profile_cap, "category=餐饮", pytest.approx(1.2))),
        ("z", (P + "up:u1", CFG.profile_cap, "tags=a", pytest.approx(1.2))),
        ("z", (P + "up:u1", CFG.profile_cap, "tags=b", pytest.approx(1.2))),
        ("l", (P + "ur:u1", CFG.recent_cap, 1, Recent(T0, "click", "e1", "i1").pack())),
        ("u", (P + "u:u1", "1", str(T0), "1")),
        ("a", (P + "ua", "u1", str(T0))),
        ("o", (P + "bs", f"o:{TOPIC}:0", "5", f"f:{TOPIC}:0", "fp5")),
        ("h", (P + "bs", "applied", 1)),
    ]


def test_item_without_attributes_has_no_profile_or_field_trending() -> None:
    p = plan([at(ev("e1", "u1", "i2", "view", T0), 0)], attrs=ATTRS)
    zs = of(p, "z")
    assert [a[0] for _, a in zs] == [P + "ip", P + "tr"]


def test_co_occurrence_links_both_ways() -> None:
    # Two earlier events (so n = 2: damping log2(4) = 2); the new one is a cart (4).
    user = UserState.of(
        2,
        T0 - 60_000,
        [Recent(T0 - 60_000, "view", "e0", "i0"), Recent(T0 - 120_000, "like", "e9", "i9")],
    )
    p = plan([at(ev("e1", "u1", "i1", "cart", T0), 0)], {"u1": user})
    # i0: 4 * 1 * 2^-1 / 2 = 1 -> log2(1) + 2 = 2.0; i9: 4 * 3 * 2^-2 / 2 = 1.5
    l0, l9 = 2.0, math.log2(1.5) + 2.0
    assert l0 == pytest.approx(log_weight(pair_weight(4, 1, 60_000, 2, CFG), T0, 1000.0))
    cap = CFG.neighbours_cap
    assert of(p, "z", "Z")[-3:] == [
        ("z", (P + "nb:i0", cap, "i1", pytest.approx(l0))),
        ("z", (P + "nb:i9", cap, "i1", pytest.approx(l9))),
        ("Z", (P + "nb:i1", cap, 2, "i0", pytest.approx(l0), "i9", pytest.approx(l9))),
    ]
    assert p.cas == {P + "u:u1": 2}
    assert of(p, "u") == [("u", (P + "u:u1", "3", str(T0), "3"))]


def test_co_occurrence_within_one_chunk_uses_the_advancing_state() -> None:
    p = plan(
        [
            at(ev("e1", "u1", "a", "view", T0), 0),
            at(ev("e2", "u1", "b", "view", T0 + 60_000), 1),
            at(ev("e3", "u1", "a", "view", T0 + 120_000), 2),
        ]
    )
    cap = CFG.neighbours_cap
    # e2 (n = 1): 1 * 1 * 2^-1 / log2(3); e3 (n = 2): window = [b] only (a is itself).
    l2 = math.log2(0.5 / math.log2(3)) + (T0 + 60_000) / 1e6
    l3 = math.log2(0.5 / 2) + (T0 + 120_000) / 1e6
    assert of(p, "Z") == [
        ("Z", (P + "nb:b", cap, 1, "a", pytest.approx(l2))),
        ("Z", (P + "nb:a", cap, 1, "b", pytest.approx(l3))),
    ]
    assert [a for _, a in of(p, "z") if a[0].startswith(P + "nb:")] == [
        (P + "nb:a", cap, "b", pytest.approx(l2)),
        (P + "nb:b", cap, "a", pytest.approx(l3)),
    ]


def test_no_links_outside_the_window() -> None:
    cfg = CFG.model_copy(update={"window_s": 10.0})
    user = UserState.of(1, T0 - 11_000, [Recent(T0 - 11_000, "view", "e0", "i0")])
    p = plan([at(ev("e1", "u1", "i1", "view", T0), 0)], {"u1": user}, cfg=cfg)
    assert of(p, "Z") == [] and all("nb:" not in str(a[0]) for _, a in of(p, "z"))


def test_exclusion_only_for_exclude_actions() -> None:
    p = plan(
        [
            at(ev("e1", "u1", "i1", "click", T0), 0),
            at(ev("e2", "u1", "i2", "purchase", T0 + 1), 1),
        ]
    )
    assert of(p, "x") == [("x", (P + "ux:u1", CFG.exclude_cap, "i2", str(T0 + 1)))]
    cfg = CFG.model_copy(update={"exclude_actions": ("click",), "exclude_cap": 7})
    p = plan(
        [
            at(ev("e1", "u1", "i1", "click", T0), 0),
            at(ev("e2", "u1", "i2", "purchase", T0 + 1), 1),
        ],
        cfg=cfg,
    )
    assert of(p, "x") == [("x", (P + "ux:u1", 7, "i1", str(T0)))]
    assert of(plan([at(ev("e1", "u1", "i1", "purchase", T0), 0)], cfg=cfg), "x") == []


def test_zero_weight_action_counts_but_weighs_nothing() -> None:
    cfg = CFG.model_copy(update={"actions": ActionWeights(view=0.0)})
    user = UserState.of(1, T0 - 1000, [Recent(T0 - 1000, "click", "e0", "i0")])
    p = plan([at(ev("e1", "u1", "i1", "view", T0), 0)], {"u1": user}, attrs=ATTRS, cfg=cfg)
    assert [o for o, _ in parse(p.ops)] == ["h", "l", "u", "a", "o", "h"]
    assert of(p, "h")[0] == ("h", (P + "ic:i1", "view", 1))
    assert of(p, "u") == [("u", (P + "u:u1", "2", str(T0), "2"))]
    # A later event links nothing to the weight-0 view of i1, but still to the click of i0.
    p = plan([at(ev("e2", "u1", "i2", "click", T0 + 1000), 1)], {"u1": user}, cfg=cfg)
    assert [a[3] for _, a in of(p, "Z")] == ["i0"]
    assert [a[0] for _, a in of(p, "z") if "nb:" in str(a[0])] == [P + "nb:i0"]


def test_zero_weight_excluded_action_still_excludes() -> None:
    cfg = CFG.model_copy(update={"actions": ActionWeights(purchase=0.0)})
    p = plan([at(ev("e1", "u1", "i1", "purchase", T0), 0)], cfg=cfg)
    assert [o for o, _ in parse(p.ops)] == ["h", "x", "l", "u", "a", "o", "h"]


# -- plan_chunk: outcomes, cas, per-user and per-partition totals --------------------------


def test_duplicate_within_a_chunk() -> None:
    p = plan(
        [
            at(ev("e1", "u1", "i1", "view", T0), 0),
            at(ev("e1", "u1", "i1", "view", T0), 1),  # re-sent by the producer
            at(ev("e2", "u1", "i2", "view", T0 + 5), 2),
        ]
    )
    assert p.outcomes == [APPLIED, DUPLICATE, APPLIED]
    assert p.counts == {APPLIED: 2, DUPLICATE: 1}
    assert len(of(p, "h")) == 2 + 2  # two counters, then the applied and duplicate stats
    assert of(p, "h")[-2:] == [("h", (P + "bs", "applied", 2)), ("h", (P + "bs", "duplicate", 1))]
    assert p.offsets == {(TOPIC, 0): 2}  # a duplicate's offset is covered too
    assert of(p, "u") == [("u", (P + "u:u1", "2", str(T0 + 5), "2"))]


def test_duplicate_against_the_stored_state() -> None:
    user = UserState.of(4, T0, [Recent(T0, "view", "old", "i1")])
    p = plan([at(ev("old", "u1", "i9", "like", T0 + 1), 3)], {"u1": user})
    assert p.outcomes == [DUPLICATE]
    assert p.cas == {P + "u:u1": 4}  # still checked: the decision relied on the state
    assert [o for o, _ in parse(p.ops)] == ["o", "h"]
    assert of(p, "h") == [("h", (P + "bs", "duplicate", 1))]
    assert user.n == 4 and len(user.recent) == 1


def test_redelivery_by_offset_per_partition() -> None:
    applied = {(TOPIC, 0): 10}
    p = plan(
        [
            at(ev("a", "u1", "i1", "view", T0), 9, 0),
            at(ev("b", "u1", "i1", "view", T0), 10, 0),
            at(ev("c", "u1", "i2", "view", T0), 11, 0),
            at(ev("d", "u2", "i1", "view", T0), 3, 1, "p1"),  # another partition: new
            at(ev("e", "u2", "i1", "view", T0), 3, 1),  # the same offset again
            at(ev("f", "u1", "i1", "view", T0), 11, 0),
        ],
        offsets=applied,
    )
    assert p.outcomes == [REDELIVERED, REDELIVERED, APPLIED, APPLIED, REDELIVERED, REDELIVERED]
    assert p.counts == {APPLIED: 2, REDELIVERED: 4}
    assert p.offsets == {(TOPIC, 0): 11, (TOPIC, 1): 3}
    # Redeliveries are not state: no stats counter for them.
    assert of(p, "h")[-1] == ("h", (P + "bs", "applied", 2))
    assert [a[1] for _, a in of(p, "h")[:-1]] == ["view", "view"]
    assert of(p, "o")[1] == ("o", (P + "bs", f"o:{TOPIC}:1", "3", f"f:{TOPIC}:1", "p1"))


def test_only_redelivered_users_are_not_checked() -> None:
    p = plan([at(ev("a", "u1", "i1", "view", T0), 1)], offsets={(TOPIC, 0): 1})
    assert p.outcomes == [REDELIVERED] and p.cas == {} and p.ops == [] and p.offsets == {}


def test_cas_holds_the_count_as_read() -> None:
    users = {"u1": UserState.of(7, T0, []), "u2": UserState()}
    p = plan(
        [
            at(ev("a", "u1", "i1", "view", T0 + 1), 0),
            at(ev("b", "u2", "i1", "view", T0 + 2), 1),
            at(ev("c", "u1", "i2", "view", T0 + 3), 2),
        ],
        users,
    )
    assert p.cas == {P + "u:u1": 7, P + "u:u2": 0}
    assert users["u1"].n == 9 and users["u2"].n == 1  # the states advanced in place


def test_per_user_ops_once_at_the_end() -> None:
    events = [
        at(ev("a", "u1", "i1", "view", T0 + 5000), 0),
        at(ev("b", "u2", "i2", "click", T0 + 100), 1),
        at(ev("c", "u1", "i3", "like", T0 + 3000), 2),  # late: last stays T0 + 5000
    ]
    p = plan(events, {"u1": UserState.of(3, T0, []), "u2": UserState()})
    tail = parse(p.ops)[-8:]
    a, b, c = (
        Recent(e.event.ts, e.event.action, e.event.event_id, e.event.item_id) for e in events
    )
    assert tail == [
        ("l", (P + "ur:u1", CFG.recent_cap, 2, a.pack(), c.pack())),  # oldest first
        ("u", (P + "u:u1", "5", str(T0 + 5000), "5")),
        ("a", (P + "ua", "u1", str(T0 + 5000))),
        ("l", (P + "ur:u2", CFG.recent_cap, 1, b.pack())),
        ("u", (P + "u:u2", "1", str(T0 + 100), "1")),
        ("a", (P + "ua", "u2", str(T0 + 100))),
        ("o", (P + "bs", f"o:{TOPIC}:0", "2", f"f:{TOPIC}:0", "")),
        ("h", (P + "bs", "applied", 3)),
    ]
    # Nothing per-user before the tail.
    assert all(o not in ("l", "u", "a") for o, _ in parse(p.ops)[:-8])


def test_offset_op_has_the_highest_offset_and_its_fingerprint() -> None:
    p = plan(
        [
            at(ev("a", "u1", "i1", "view", T0), 3, 0, "fa"),
            at(ev("b", "u1", "i1", "view", T0), 9, 1, "fb"),
            at(ev("c", "u1", "i1", "view", T0), 4, 0, "fc"),
            at(ev("a", "u1", "i1", "view", T0), 5, 0, "fd"),  # a duplicate still moves it
        ]
    )
    assert of(p, "o") == [
        ("o", (P + "bs", f"o:{TOPIC}:0", "5", f"f:{TOPIC}:0", "fd")),
        ("o", (P + "bs", f"o:{TOPIC}:1", "9", f"f:{TOPIC}:1", "fb")),
    ]


def test_user_back_after_the_ttl_is_reset() -> None:
    cfg = CFG.model_copy(update={"user_ttl_s": 100.0, "window_s": 1e6})
    old = [Recent(T0, "view", "e0", "i0")]
    users = {"u1": UserState.of(3, T0, old)}
    p = plan(
        [
            at(ev("e1", "u1", "i1", "view", T0 + 50_000), 0),  # within the TTL: kept
            at(ev("e2", "u1", "i2", "purchase", T0 + 160_000), 1),  # 110 s after e1: reset
        ],
        users,
        cfg=cfg,
    )
    codes = [o for o, _ in parse(p.ops)]
    r = codes.index("r")
    # e1 linked to i0 (z + Z), then the reset, then e2 with no links at all.
    assert "Z" in codes[:r] and "Z" not in codes[r:]
    assert codes[r + 1] == "h" and codes.count("x") == 1 and codes.index("x") > r
    assert parse(p.ops)[r] == (
        "r",
        (P + "ua", "u1", P + "u:u1", P + "ur:u1", P + "ux:u1", P + "up:u1"),
    )
    e2 = Recent(T0 + 160_000, "purchase", "e2", "i2")
    assert of(p, "l", "u", "a") == [
        ("l", (P + "ur:u1", cfg.recent_cap, 1, e2.pack())),  # e1 was wiped with the rest
        ("u", (P + "u:u1", "1", str(T0 + 160_000), "5")),
        ("a", (P + "ua", "u1", str(T0 + 160_000))),
    ]
    assert p.cas == {P + "u:u1": 3}
    u = users["u1"]
    assert (u.n, u.last, u.recent, u.seen) == (1, T0 + 160_000, [e2], {"e2"})


def test_ttl_reset_from_the_stored_state_and_not_for_new_users() -> None:
    cfg = CFG.model_copy(update={"user_ttl_s": 100.0})
    far = T0 + 100_001
    p = plan([at(ev("e1", "u1", "i1", "view", far), 0)], {"u1": UserState.of(2, T0, [])}, cfg=cfg)
    assert parse(p.ops)[0][0] == "r"
    p = plan([at(ev("e1", "u1", "i1", "view", T0 + 100_000), 0)], {"u1": UserState.of(2, T0, [])})
    assert "r" not in [o for o, _ in parse(p.ops)]  # ttl None (CFG)
    p = plan(
        [at(ev("e1", "u1", "i1", "view", T0 + 100_000), 0)],
        {"u1": UserState.of(2, T0, [])},
        cfg=cfg,
    )
    assert "r" not in [o for o, _ in parse(p.ops)]  # exactly the TTL: kept
    p = plan([at(ev("e1", "u1", "i1", "view", far), 0)], {"u1": UserState(0, 0)}, cfg=cfg)
    assert "r" not in [o for o, _ in parse(p.ops)]  # nothing to forget


def test_expiry_ops() -> None:
    ops = expiry_ops(0, ["u1", "u2"], 12345, KEYS)
    assert parse(ops) == [
        ("e", (P + "ua", u, 12345, P + f"u:{u}", P + f"ur:{u}", P + f"ux:{u}", P + f"up:{u}"))
        for u in ("u1", "u2")
    ]
    assert expiry_ops(0, [], 1, KEYS) == []


def test_parse_rejects_a_truncated_list() -> None:
    with pytest.raises(AssertionError):
        parse(["z", "k", 0, "m"])
    with pytest.raises(AssertionError):
        parse(["Z", "k", 0, 2, "a", 1.0])


# -- batching invariance: a Python model of behavior.lua -----------------------------------


@dataclass
class Model:
    """The effect of the operations on Redis data (the semantics listed in behavior.lua)."""

    zsets: dict[str, dict[str, float]] = field(default_factory=dict)
    hashes: dict[str, dict[str, str]] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=dict)

    def _trim(self, key: str, cap: int) -> None:
        z = self.zsets[key]
        for m, _ in sorted(z.items(), key=lambda kv: (kv[1], kv[0]))[: max(0, len(z) - cap)]:
            del z[m]

    def _delete(self, *keys: Op) -> None:
        for k in keys:
            for store in (self.zsets, self.hashes, self.lists):
                store.pop(str(k), None)

    def run(self, ops: Sequence[Op]) -> None:
        for op, a in parse(ops):
            key = str(a[0])
            if op == "z":
                z = self.zsets.setdefault(key, {})
                member, d = str(a[2]), float(a[3])
                if member in z:
                    z[member] = log_add(z[member], d)
                else:
                    z[member] = d
                    if int(a[1]) > 0:
                        self._trim(key, int(a[1]))
            elif op == "Z":
                z = self.zsets.setdefault(key, {})
                pairs = [(str(a[3 + 2 * j]), float(a[4 + 2 * j])) for j in range(int(a[2]))]
                added = any(m not in z for m, _ in pairs)
                new = {m: log_add(z[m], d) if m in z else d for m, d in pairs}
                z.update(new)
                if added and int(a[1]) > 0:
                    self._trim(key, int(a[1]))
            elif op in ("x", "a"):
                z = self.zsets.setdefault(key, {})
                member, ts = (str(a[2]), float(a[3])) if op == "x" else (str(a[1]), float(a[2]))
                fresh = member not in z
                if fresh or ts > z[member]:
                    z[member] = ts
                if op == "x" and fresh:
                    self._trim(key, int(a[1]))
            elif op == "h":
                h = self.hashes.setdefault(key, {})
                h[str(a[1])] = str(int(h.get(str(a[1]), "0")) + int(a[2]))
            elif op == "l":
                lst = self.lists.setdefault(key, [])
                for entry in a[3:]:
                    lst.insert(0, str(entry))
                del lst[int(a[1]) :]
            elif op == "u":
                h = self.hashes.setdefault(key, {})
                h["n"] = str(a[1])
                if "last" not in h or int(h["last"]) < int(a[2]):
                    h["last"] = str(a[2])
            elif op == "o":
                h = self.hashes.setdefault(key, {})
                if str(a[1]) not in h or int(h[str(a[1])]) < int(a[2]):
                    h[str(a[1])], h[str(a[3])] = str(a[2]), str(a[4])
            elif op == "r":
                self._delete(*a[2:])
                self.zsets.get(key, {}).pop(str(a[1]), None)
            else:  # pragma: no cover
                raise AssertionError(op)

    def user(self, user_id: str) -> UserState:
        h = self.hashes.get(KEYS.user(0, user_id), {})
        recent = [Recent.unpack(r) for r in self.lists.get(KEYS.recent(0, user_id), [])]
        return UserState.of(int(h.get("n", "0")), int(h.get("last", "0")), recent)

    def applied(self) -> dict[tuple[str, int], int]:
        stats = self.hashes.get(KEYS.stats(0), {})
        return {
            (TOPIC, p): int(stats[f"o:{TOPIC}:{p}"]) for p in (0, 1) if f"o:{TOPIC}:{p}" in stats
        }

    def snapshot(self) -> tuple[object, ...]:
        drop_empty = lambda d: {k: v for k, v in d.items() if v}  # noqa: E731
        return drop_empty(self.zsets), drop_empty(self.hashes), drop_empty(self.lists)


SMALL = BehaviorSettings(
    recent_cap=3,
    window_items=2,
    window_s=100.0,
    pair_half_life_s=50.0,
    neighbours_cap=2,
    trending_cap=3,
    profile_cap=2,
    exclude_cap=2,
    exclude_actions=("purchase", "cart"),
    user_ttl_s=300.0,
    i2i_half_life_s=1000.0,
    trending_half_life_s=100.0,
    profile_half_life_s=500.0,
    actions=ActionWeights(view=0.0),
)
SMALL_ATTRS: ItemAttributes = {
    "i0": {"category": ("餐饮",), "tags": ("a", "b")},
    "i1": {"category": ("酒店",)},
    "i2": {"category": ("餐饮",), "tags": ("c",)},
}

streams = st.lists(
    st.tuples(
        st.integers(0, 2),  # user
        st.integers(0, 4),  # item
        st.sampled_from(["view", "click", "like", "cart", "purchase"]),
        st.integers(-60_000, 400_000),  # time step (may go back: late events)
        st.booleans(),  # re-send an earlier event id
        st.integers(0, 1),  # partition
    ),
    min_size=1,
    max_size=30,
)


def build(raw: list[tuple[int, int, str, int, bool, int]]) -> list[Located]:
    out: list[Located] = []
    ts, next_offset, ids = T0, [0, 0], []
    for k, (u, i, action, step, resend, part) in enumerate(raw):
        ts = max(0, ts + step)
        eid = ids[k % len(ids)] if resend and ids else f"e{k}"
        ids.append(eid)
        e = ev(eid, f"u{u}", f"i{i}", action, ts)
        out.append(Located(e, TOPIC, part, next_offset[part], f"fp{k}"))
        next_offset[part] += 1
    return out


def run_chunks(model: Model, events: Sequence[Located], cuts: list[int]) -> list[str]:
    outcomes: list[str] = []
    bounds = [0, *sorted(c for c in set(cuts) if 0 < c < len(events)), len(events)]
    for lo, hi in itertools.pairwise(bounds):
        chunk = events[lo:hi]
        users = {loc.event.user_id: model.user(loc.event.user_id) for loc in chunk}
        p = plan_chunk(0, chunk, users, model.applied(), SMALL_ATTRS, KEYS, SMALL)
        model.run(p.ops)
        outcomes += p.outcomes
    return outcomes


@hsettings(max_examples=150, deadline=None)
@given(streams, st.lists(st.integers(0, 30), max_size=6), st.integers(0, 30))
def test_state_does_not_depend_on_batching_or_redelivery(
    raw: list[tuple[int, int, str, int, bool, int]], cuts: list[int], crash: int
) -> None:
    events = build(raw)
    one = Model()
    whole = run_chunks(one, events, [])
    assert REDELIVERED not in whole
    cut = Model()
    assert run_chunks(cut, events, cuts) == whole
    assert cut.snapshot() == one.snapshot()
    # A crash after writing a prefix but before committing it: the prefix comes again.
    replay = Model()
    prefix = min(crash, len(events))
    run_chunks(replay, events[:prefix], cuts)
    again = run_chunks(replay, events, cuts)
    assert again[:prefix] == [REDELIVERED] * prefix
    assert replay.snapshot() == one.snapshot()


def test_the_cas_token_is_never_reset() -> None:
    """Review finding: with the events count as the token, a user reset after the TTL
    could come back to the count another writer had read, and its stale plan would pass."""
    hour = 3_600_000
    cfg = CFG.model_copy(update={"user_ttl_s": 3600.0})
    state = UserState.of(1, T0, [Recent(T0, "click", "e0", "i0")], seq=1)
    p = plan([at(ev("e1", "u1", "i1", "click", T0 + 2 * hour), 1)], {"u1": state}, cfg=cfg)
    assert p.cas == {P + "u:u1": 1}
    ((_, (_, n, _, seq)),) = of(p, "u")
    assert (n, seq) == ("1", "2")  # events since the reset 1, events ever 2
    assert state.seq == 2


def test_a_pair_decayed_to_nothing_is_skipped_not_a_crash() -> None:
    """Review finding: log2(0) when the gap is over ~1,074 pair half-lives."""
    cfg = CFG.model_copy(update={"window_s": 86_400.0, "pair_half_life_s": 30.0})
    users = {"u1": UserState()}
    plan([at(ev("a", "u1", "i1", "click", T0), 0)], users, cfg=cfg)
    p = plan([at(ev("b", "u1", "i2", "click", T0 + 80_000_000), 1)], users, cfg=cfg)
    assert of(p, "Z") == []
