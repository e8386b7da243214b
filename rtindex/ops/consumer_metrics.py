"""A consumer process's metrics: Prometheus series on its own ``/metrics`` endpoint, and
the rolling figures of its status report (``ops/status.py``).

Each consumer process serves its own endpoint (``ops.metrics_port_<kind>``) rather than
pushing to a gateway: Prometheus discovers every member of a scaled service by DNS and
scrapes it, so a dead member's series simply stop.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server
from prometheus_client import Counter as PromCounter

from rtindex.ops.rolling import Rolling
from rtindex.ops.status import Report

log = logging.getLogger(__name__)

FRESHNESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
APPLY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
BATCH_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 5000)


def member_id(kind: str) -> str:
    return f"{kind}@{socket.gethostname()}:{os.getpid()}"


class ConsumerMetrics:
    def __init__(self, kind: str, topic: str, group: str, window_s: float) -> None:
        self.kind, self.topic, self.group = kind, topic, group
        self.member = member_id(kind)
        self.registry = r = CollectorRegistry()
        self.events = PromCounter(
            "rtindex_consumer_events_total",
            "Events consumed, by outcome (applied, stale, duplicate, redelivered, invalid)",
            ["topic", "outcome"],
            registry=r,
        )
        self.dlq = PromCounter(
            "rtindex_consumer_dlq_total",
            "Messages sent to the dead-letter topic, by reason",
            ["topic", "reason"],
            registry=r,
        )
        self.batches = PromCounter(
            "rtindex_consumer_batches_total", "Batches applied and committed", ["topic"], registry=r
        )
        self.batch_records = Histogram(
            "rtindex_consumer_batch_records",
            "Records per batch",
            ["topic"],
            registry=r,
            buckets=BATCH_BUCKETS,
        )
        self.apply_seconds = Histogram(
            "rtindex_consumer_apply_seconds",
            "Time to apply a batch (DLQ and Redis), retries included",
            ["topic"],
            registry=r,
            buckets=APPLY_BUCKETS,
        )
        self.freshness = Histogram(
            "rtindex_consumer_freshness_seconds",
            "Applied time minus the event's ts, per applied event",
            ["topic"],
            registry=r,
            buckets=FRESHNESS_BUCKETS,
        )
        self.lag_messages = Gauge(
            "rtindex_consumer_lag_messages",
            "Messages in the partition not yet applied and committed",
            ["topic", "partition"],
            registry=r,
        )
        self.lag_seconds = Gauge(
            "rtindex_consumer_lag_seconds",
            "Age of the oldest message not yet applied (0 when caught up)",
            ["topic", "partition"],
            registry=r,
        )
        self.commit_failures = PromCounter(
            "rtindex_consumer_commit_failures_total",
            "Offset commits refused (a rebalance took the partitions)",
            ["topic"],
            registry=r,
        )
        self.redis_retries = PromCounter(
            "rtindex_consumer_redis_retries_total",
            "Retries of transient Redis or Kafka failures",
            ["topic"],
            registry=r,
        )
        self.last_batch = Gauge(
            "rtindex_consumer_last_batch_timestamp_seconds",
            "When the last batch was committed (Unix time)",
            ["topic"],
            registry=r,
        )
        # Create the label sets up front so every series exists from the start (a
        # dashboard query for rate() of a series that never appeared shows nothing).
        for outcome in ("applied", "stale", "duplicate", "redelivered", "invalid"):
            self.events.labels(topic, outcome)
        for m in (self.commit_failures, self.redis_retries):
            m.labels(topic)
        self._events = Rolling(window_s)
        self._fresh = Rolling(window_s)
        self._lag: dict[int, tuple[int | None, float | None]] = {}
        self.totals: Counter[str] = Counter()

    def serve(self, host: str, port: int) -> int:
        """Serve ``/metrics`` in a daemon thread; the port it listens on."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        bound = int(server.server_port)
        log.info("%s consumer metrics on http://%s:%d/metrics", self.kind, host, bound)
        return bound

    def batch_done(
        self,
        counts: Mapping[str, int],
        records: int,
        apply_s: float,
        freshness_ms: Iterable[float],
        dead: Mapping[str, int],
    ) -> None:
        now = time.time()
        t = self.topic
        for outcome, n in counts.items():
            if n:
                self.events.labels(t, outcome).inc(n)
                self.totals[outcome] += n
        for reason, n in dead.items():
            self.dlq.labels(t, reason).inc(n)
        self.batches.labels(t).inc()
        self.batch_records.labels(t).observe(records)
        self.apply_seconds.labels(t).observe(apply_s)
        fresh = list(freshness_ms)
        h = self.freshness.labels(t)
        for ms in fresh:
            h.observe(ms / 1000)
        self._fresh.observe(fresh, now)
        self._events.count(records, now)
        self.last_batch.labels(t).set(now)

    def retried(self) -> None:
        self.redis_retries.labels(self.topic).inc()

    def commit_failed(self) -> None:
        self.commit_failures.labels(self.topic).inc()

    def set_lag(self, lags: Mapping[int, tuple[int | None, float | None]]) -> None:
        """Partition -> (messages, seconds) behind, None where unknown; partitions no
        longer assigned lose their series."""
        for gone in set(self._lag) - set(lags):
            self.lag_messages.remove(self.topic, str(gone))
            self.lag_seconds.remove(self.topic, str(gone))
        for p, (msgs, secs) in lags.items():
            if msgs is not None:
                self.lag_messages.labels(self.topic, str(p)).set(msgs)
            if secs is not None:
                self.lag_seconds.labels(self.topic, str(p)).set(secs)
        self._lag = dict(lags)

    def report(self, now: float) -> Report:
        return {
            "kind": self.kind,
            "topic": self.topic,
            "group": self.group,
            "member": self.member,
            "at_ms": int(now * 1000),
            "events_per_s": round(self._events.rate(now), 3),
            "totals": dict(self.totals),
            "freshness_bins": {str(b): n for b, n in self._fresh.bins(now).items()},
            "partitions": {
                str(p): {"lag_messages": m, "lag_seconds": None if s is None else round(s, 3)}
                for p, (m, s) in sorted(self._lag.items())
            },
        }


def lag_of(
    highwater: int | None,
    next_offset: int | None,
    oldest_pending_ts_ms: int | None,
    last_applied_ts_ms: int | None,
    now_ms: int,
) -> tuple[int | None, float | None]:
    """(messages, seconds) a partition is behind.

    Messages: the highwater mark minus the first offset not yet applied and committed.
    Seconds: 0 when caught up; else the age of the oldest message polled but not yet
    committed, or, when none is polled yet, the age of the last one applied (an upper
    bound: the next message is younger than that).
    """
    if highwater is None or next_offset is None:
        return None, None
    msgs = max(0, highwater - next_offset)
    if msgs == 0:
        return 0, 0.0
    ts = oldest_pending_ts_ms if oldest_pending_ts_ms is not None else last_applied_ts_ms
    if ts is None or ts < 0:
        return msgs, None
    return msgs, max(0.0, (now_ms - ts) / 1000)
