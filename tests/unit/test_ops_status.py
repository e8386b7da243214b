"""Consumer status reports: aggregation over members, readiness, lag, the DLQ summary."""

from __future__ import annotations

from typing import Any

from rtindex.ops.consumer_metrics import lag_of
from rtindex.ops.rolling import bin_of
from rtindex.ops.status import (
    aggregate,
    dead_letter_summary,
    live_reports,
    readiness,
)

Lags = dict[int, tuple[int | None, float | None]]


def report(
    member: str,
    at_ms: int,
    partitions: Lags,
    kind: str = "documents",
    rate: float = 10.0,
    fresh: tuple[float, ...] = (),
) -> dict[str, Any]:
    bins: dict[str, int] = {}
    for v in fresh:
        bins[str(bin_of(v))] = bins.get(str(bin_of(v)), 0) + 1
    return {
        "kind": kind,
        "topic": f"rtindex.{kind}",
        "group": "g",
        "member": member,
        "at_ms": at_ms,
        "events_per_s": rate,
        "totals": {"applied": 5, "invalid": 1},
        "freshness_bins": bins,
        "partitions": {
            str(p): {"lag_messages": m, "lag_seconds": s} for p, (m, s) in partitions.items()
        },
    }


def test_dead_members_are_dropped() -> None:
    reports = [report("a", 10_000, {}), report("b", 1_000, {})]
    assert [r["member"] for r in live_reports(reports, now_ms=12_000, ttl_ms=5_000)] == ["a"]


def test_members_add_up_and_a_partition_counts_once() -> None:
    # During a rebalance two members may both report partition 1: the newer report wins.
    a = report("a", 5_000, {0: (10, 2.0), 1: (100, 9.0)}, fresh=(10.0, 20.0))
    b = report("b", 6_000, {1: (3, 0.5), 2: (0, 0.0)}, fresh=(1000.0,))
    c = aggregate([a, b])["documents"]
    assert c["members"] == 2
    assert c["events_per_s"] == 20.0
    assert c["totals"] == {"applied": 10, "invalid": 2}
    assert [(p["partition"], p["member"], p["lag_messages"]) for p in c["partitions"]] == [
        (0, "a", 10),
        (1, "b", 3),
        (2, "b", 0),
    ]
    assert c["lag_messages"] == 13
    assert c["lag_seconds"] == 2.0
    # Quantiles over the merged values 10, 20, 1000 (within the 5% bins).
    assert abs(c["freshness_p50_ms"] - 20.0) / 20.0 < 0.05
    assert abs(c["freshness_p99_ms"] - 1000.0) / 1000.0 < 0.05


def test_unknown_lag_stays_unknown() -> None:
    c = aggregate([report("a", 1, {0: (None, None)})])["documents"]
    assert c["lag_messages"] is None and c["lag_seconds"] is None
    idle = aggregate([report("a", 1, {})])["documents"]
    assert idle["lag_messages"] == 0 and idle["freshness_p99_ms"] is None


def test_kinds_are_kept_apart() -> None:
    agg = aggregate([report("a", 1, {0: (1, 1.0)}), report("b", 1, {0: (7, 3.0)}, "behaviors")])
    assert agg["documents"]["lag_messages"] == 1
    assert agg["behaviors"]["lag_messages"] == 7


def test_readiness_names_each_lagging_partition() -> None:
    agg = aggregate([report("a", 1, {0: (500, 1.0), 1: (5, 90.0), 2: (None, None)})])
    reasons = readiness(agg, max_lag_messages=100, max_lag_s=30)
    assert len(reasons) == 2
    assert "partition 0: 500 messages behind" in reasons[0]
    assert "partition 1: 90.0 s behind" in reasons[1]
    assert readiness(agg, max_lag_messages=None, max_lag_s=None) == []
    assert readiness(agg, max_lag_messages=1000, max_lag_s=100) == []


def test_readiness_can_require_a_live_consumer_of_a_kind() -> None:
    behaviors_only = aggregate([report("b", 1, {0: (0, 0.0)}, kind="behaviors")])
    reasons = readiness(behaviors_only, None, None, required=("documents",), ttl_s=15)
    assert reasons == [
        "documents consumer: no status report in the last 15 s (ops.ready_requires_consumers)"
    ]
    assert readiness({}, None, None, required=("documents",)) == [
        "documents consumer: no status report (ops.ready_requires_consumers)"
    ]
    # A member still joining its group (no partition yet) is not consuming.
    joining = aggregate([report("a", 1, {})])
    assert readiness(joining, None, None, required=("documents",), ttl_s=15) == [
        "documents consumer: no partition assigned yet (ops.ready_requires_consumers)"
    ]
    # One member owning a partition is enough, even with another member idle.
    owning = aggregate([report("a", 1, {}), report("b", 2, {0: (0, 0.0)})])
    assert readiness(owning, None, None, required=("documents",), ttl_s=15) == []
    # Not required (the default): no consumer at all is ready.
    assert readiness({}, max_lag_messages=10, max_lag_s=1) == []
    # Both kinds of reason together: the missing kind first, then each lagging partition.
    lagging = aggregate([report("a", 1, {0: (50, 1.0)})])
    both = readiness(lagging, 10, None, required=("documents", "behaviors"), ttl_s=2)
    assert both[0].startswith("behaviors consumer: no status report in the last 2 s")
    assert "partition 0: 50 messages behind (limit 10)" in both[1] and len(both) == 2


def test_lag_of() -> None:
    now = 100_000
    assert lag_of(None, 5, None, None, now) == (None, None)  # no fetch yet
    assert lag_of(10, None, None, None, now) == (None, None)  # position unknown
    assert lag_of(10, 10, None, 50_000, now) == (0, 0.0)  # caught up
    # Behind, with the oldest pending message 4 s old.
    assert lag_of(10, 7, 96_000, 50_000, now) == (3, 4.0)
    # Behind, nothing polled yet: bounded by the last applied message's age.
    assert lag_of(10, 7, None, 90_000, now) == (3, 10.0)
    assert lag_of(10, 7, None, None, now) == (3, None)
    assert lag_of(10, 12, None, None, now) == (0, 0.0)  # a highwater seen before a fetch


def test_dead_letter_summary() -> None:
    s = dead_letter_summary({("d", "invalid_json"): 3, ("b", "invalid_json"): 1, ("d", "x"): 2})
    assert s == {
        "total": 6,
        "reasons": {"invalid_json": 4, "x": 2},
        "topics": {"d": 5, "b": 1},
    }
