"""``/stats``, ``/readyz`` and the index gauges: one read of Redis, assembled here.

Consumer figures come from the status reports every live consumer writes to Redis
(``rtindex/ops/status.py``), query figures from this process's rolling window.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from rtindex.ops.board import StatusBoard
from rtindex.ops.status import aggregate, dead_letter_summary, readiness
from rtindex.query.observe import QueryWindow
from rtindex.query.recall import Recaller
from rtindex.query.search import Searcher
from rtindex.settings import Settings


class OpsView:
    def __init__(self, searcher: Searcher, recaller: Recaller, settings: Settings) -> None:
        self.searcher = searcher
        self.recaller = recaller
        self.ops = settings.ops
        self.client: redis.Redis = searcher.client
        self.board = StatusBoard(self.client, settings.redis.namespace, settings.ops.report_ttl_s)

    def redis_memory(self) -> int | None:
        info = self.client.info("memory")
        used = info.get("used_memory")
        return int(used) if used is not None else None

    def snapshot(self) -> dict[str, Any]:
        """Everything the stats need from Redis. Raises Redis errors."""
        now_ms = int(time.time() * 1000)
        return {
            "index": self.searcher.index_stats(),
            "behavior": self.recaller.behavior_stats(),
            "redis": {"up": True, "used_memory_bytes": self.redis_memory()},
            "consumers": aggregate(self.board.reports(now_ms)),
            "dead_letters": self.board.dead_letters(),
        }

    def consumer_reasons(self, consumers: dict[str, Any] | None = None) -> list[str]:
        """Why the consumers make the service not ready (lag over the limits; with
        ``ops.ready_requires_consumers``, no documents consumer): /readyz and /stats'
        ``ready`` both say this."""
        o = self.ops
        if consumers is None:
            consumers = aggregate(self.board.reports(int(time.time() * 1000)))
        return readiness(
            consumers,
            o.ready_max_lag_messages,
            o.ready_max_lag_s,
            required=("documents",) if o.ready_requires_consumers else (),
            ttl_s=o.report_ttl_s,
        )

    def stats(self, window: QueryWindow) -> dict[str, Any]:
        now = time.time()
        s = self.snapshot()
        query = window.summary(now)
        consumers = s["consumers"]
        reasons = self.consumer_reasons(consumers)
        dlq = dead_letter_summary(s["dead_letters"])
        lag_msgs = [c["lag_messages"] for c in consumers.values() if c["lag_messages"] is not None]
        lag_secs = [c["lag_seconds"] for c in consumers.values() if c["lag_seconds"] is not None]
        fresh = _freshness(consumers)
        index, behavior = s["index"], s["behavior"]

        def rate(kind: str) -> float:
            return float(consumers[kind]["events_per_s"]) if kind in consumers else 0.0

        headline = {
            "events_per_s": round(sum(rate(k) for k in consumers), 3),
            "documents_events_per_s": rate("documents"),
            "behaviors_events_per_s": rate("behaviors"),
            "lag_messages": sum(lag_msgs) if lag_msgs else (0 if not consumers else None),
            "lag_seconds": max(lag_secs) if lag_secs else (0.0 if not consumers else None),
            "freshness_p50_ms": fresh[0],
            "freshness_p99_ms": fresh[1],
            "query_per_s": query["per_s"],
            "query_p50_ms": query["p50_ms"],
            "query_p99_ms": query["p99_ms"],
            "documents": index["documents"],
            "postings": index["postings"],
            "terms": index["terms"],
            "tombstones": index["tombstones"],
            "users": behavior["users"],
            "items": behavior["items"],
            "redis_memory_bytes": s["redis"]["used_memory_bytes"],
            "dlq_total": dlq["total"],
        }
        return {
            "at_ms": int(now * 1000),
            "window_s": self.ops.window_s,
            "headline": headline,
            "ready": {"ready": not reasons, "reasons": reasons},
            "index": index,
            "behavior": behavior,
            "consumers": consumers,
            "query": query,
            "dlq": dlq,
            "redis": s["redis"],
        }


def _freshness(consumers: dict[str, dict[str, Any]]) -> tuple[float | None, float | None]:
    """Headline freshness: the worse consumer kind's (documents and behaviors are separate
    pipelines; the operator wants to know if either is slow)."""
    p50 = [c["freshness_p50_ms"] for c in consumers.values() if c["freshness_p50_ms"] is not None]
    p99 = [c["freshness_p99_ms"] for c in consumers.values() if c["freshness_p99_ms"] is not None]
    return (max(p50) if p50 else None, max(p99) if p99 else None)
