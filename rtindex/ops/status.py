"""Consumer status reports and what the query service makes of them (pure).

Every consumer process writes a small report about itself to Redis about once a second
(``ops/board.py``): its events/s, totals, freshness bins and the lag of each partition it
owns. The query service reads the live reports to answer ``/stats``, ``/readyz`` and the
dashboard, so it knows every member of every consumer group without knowing where they
run (compose may scale them to any number).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rtindex.ops.rolling import merge, quantile

Report = dict[str, Any]


def live_reports(raw: Iterable[Report], now_ms: int, ttl_ms: int) -> list[Report]:
    """Reports younger than ``ttl_ms``: an older one is from a consumer that died."""
    return [r for r in raw if now_ms - int(r.get("at_ms", 0)) <= ttl_ms]


def _bins(report: Report) -> dict[int, int]:
    return {int(b): int(n) for b, n in report.get("freshness_bins", {}).items()}


def aggregate_kind(reports: list[Report]) -> dict[str, Any]:
    """One consumer kind (documents or behaviors), over its live members.

    A partition reported by two members (a rebalance in progress) counts once, from the
    newest report. Freshness quantiles come from the members' merged bins.
    """
    owner: dict[int, tuple[int, str, Mapping[str, Any]]] = {}
    for r in reports:
        for p, lag in r.get("partitions", {}).items():
            part = int(p)
            if part not in owner or owner[part][0] < r["at_ms"]:
                owner[part] = (r["at_ms"], r["member"], lag)
    partitions = [
        {
            "partition": p,
            "member": member,
            "lag_messages": lag.get("lag_messages"),
            "lag_seconds": lag.get("lag_seconds"),
        }
        for p, (_, member, lag) in sorted(owner.items())
    ]
    msgs = [p["lag_messages"] for p in partitions if p["lag_messages"] is not None]
    secs = [p["lag_seconds"] for p in partitions if p["lag_seconds"] is not None]
    bins = merge(_bins(r) for r in reports)
    totals: dict[str, int] = {}
    for r in reports:
        for name, n in r.get("totals", {}).items():
            totals[name] = totals.get(name, 0) + int(n)
    return {
        "topic": reports[0].get("topic") if reports else None,
        "members": len(reports),
        "events_per_s": round(sum(float(r.get("events_per_s", 0.0)) for r in reports), 3),
        "totals": totals,
        "lag_messages": sum(msgs) if msgs else (0 if not partitions else None),
        "lag_seconds": max(secs) if secs else (0.0 if not partitions else None),
        "freshness_p50_ms": _round(quantile(bins, 0.5)),
        "freshness_p99_ms": _round(quantile(bins, 0.99)),
        "partitions": partitions,
    }


def aggregate(reports: list[Report]) -> dict[str, dict[str, Any]]:
    """Live reports -> per kind aggregates, keyed by kind."""
    kinds: dict[str, list[Report]] = {}
    for r in reports:
        kinds.setdefault(str(r.get("kind")), []).append(r)
    return {kind: aggregate_kind(rs) for kind, rs in sorted(kinds.items())}


def readiness(
    consumers: Mapping[str, Mapping[str, Any]],
    max_lag_messages: int | None,
    max_lag_s: float | None,
    *,
    required: Iterable[str] = (),
    ttl_s: float | None = None,
) -> list[str]:
    """Why the service is not ready to take traffic; empty when it is.

    ``consumers`` is :func:`aggregate` of the live reports; ``required`` names the kinds
    that must be consuming (``ops.ready_requires_consumers``: "documents").
    """
    reasons = [
        f"{kind} consumer: {why} (ops.ready_requires_consumers)"
        for kind in required
        if (why := _not_consuming(consumers.get(kind), ttl_s))
    ]
    for kind, c in consumers.items():
        for p in c["partitions"]:
            where = f"{kind} consumer, {c['topic']} partition {p['partition']}"
            msgs, secs = p["lag_messages"], p["lag_seconds"]
            if max_lag_messages is not None and msgs is not None and msgs > max_lag_messages:
                reasons.append(f"{where}: {msgs} messages behind (limit {max_lag_messages})")
            if max_lag_s is not None and secs is not None and secs > max_lag_s:
                reasons.append(f"{where}: {secs:.1f} s behind (limit {max_lag_s:g} s)")
    return reasons


def _not_consuming(kind: Mapping[str, Any] | None, ttl_s: float | None) -> str | None:
    """Why a kind is not consuming: no live member, or none owning a partition yet (a
    member still joining its group has not started, and its lag is not known)."""
    if kind is None:
        return "no status report" + (f" in the last {ttl_s:g} s" if ttl_s is not None else "")
    if not kind["partitions"]:
        return "no partition assigned yet"
    return None


def dead_letter_summary(counts: Mapping[tuple[str, str], int]) -> dict[str, Any]:
    """``{"total": n, "reasons": {reason: n}, "topics": {topic: n}}``."""
    reasons: dict[str, int] = {}
    topics: dict[str, int] = {}
    for (topic, reason), n in counts.items():
        reasons[reason] = reasons.get(reason, 0) + n
        topics[topic] = topics.get(topic, 0) + n
    ranked = dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))
    return {"total": sum(reasons.values()), "reasons": ranked, "topics": topics}


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)
