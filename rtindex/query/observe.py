"""The query service's own metrics: Prometheus series, the rolling latency figures of
``/stats``, and the index gauges read from Redis when Prometheus scrapes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis.exceptions as rx
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rtindex.ops.rolling import Rolling, quantile

# Operators' own calls are not query traffic: the dashboard polling /stats every two
# seconds must not show up as the service's latency.
OPS_ENDPOINTS = frozenset(
    {"/metrics", "/stats", "/dashboard", "/healthz", "/readyz", "/openapi.json", "/api/docs"}
)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class QueryWindow:
    """Per endpoint: requests, errors and latency bins over the rolling window."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._lock = threading.Lock()
        self._latency: dict[str, Rolling] = {}
        self._errors: dict[str, Rolling] = {}

    def observe(self, endpoint: str, seconds: float, error: bool, now: float) -> None:
        with self._lock:
            lat = self._latency.setdefault(endpoint, Rolling(self.window_s))
            lat.observe((seconds * 1000,), now)
            if error:
                self._errors.setdefault(endpoint, Rolling(self.window_s)).count(1, now)

    def summary(self, now: float) -> dict[str, Any]:
        with self._lock:
            endpoints = {}
            merged: dict[int, int] = {}
            per_s = 0.0
            for name, lat in sorted(self._latency.items()):
                bins = lat.bins(now)
                rate = lat.rate(now)
                err = self._errors.get(name)
                endpoints[name] = {
                    "requests": lat.total(now),
                    "per_s": round(rate, 3),
                    "errors": err.total(now) if err else 0,
                    "p50_ms": _r(quantile(bins, 0.5)),
                    "p99_ms": _r(quantile(bins, 0.99)),
                }
                per_s += rate
                for b, n in bins.items():
                    merged[b] = merged.get(b, 0) + n
        return {
            "per_s": round(per_s, 3),
            "p50_ms": _r(quantile(merged, 0.5)),
            "p99_ms": _r(quantile(merged, 0.99)),
            "endpoints": endpoints,
        }


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


class Metrics:
    def __init__(self, window_s: float) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "rtindex_query_seconds",
            "Query service latency by endpoint",
            ["endpoint"],
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self.errors = Counter(
            "rtindex_query_errors_total",
            "Query service errors by endpoint and status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.results = Histogram(
            "rtindex_query_results",
            "Items or hits returned per call",
            ["endpoint"],
            registry=self.registry,
            buckets=(0, 1, 5, 10, 20, 50, 100, 1000),
        )
        self.total_hits = Histogram(
            "rtindex_search_total_hits",
            "Matching documents per search",
            registry=self.registry,
            buckets=(0, 1, 10, 100, 1000, 10_000, 100_000),
        )
        self.window = QueryWindow(window_s)

    def observe(self, endpoint: str, seconds: float, status: int) -> None:
        self.latency.labels(endpoint).observe(seconds)
        if status >= 400:
            self.errors.labels(endpoint, str(status)).inc()
        if endpoint not in OPS_ENDPOINTS:
            # 4xx are the caller's mistakes; only 5xx count as the service's errors.
            self.window.observe(endpoint, seconds, status >= 500, time.time())


class ObserveMiddleware:
    """Latency and error counts per route, as plain ASGI: Starlette's
    ``@app.middleware("http")`` costs about a millisecond a request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            endpoint = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe(endpoint, time.perf_counter() - t0, status)


class IndexCollector(Collector):
    """Index and Redis gauges, read from Redis at scrape time (every replica of the
    query service exports the same values: aggregate them with max())."""

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("rtindex_redis_up", "1 when Redis answered this scrape")
        try:
            s = self.read()
        except (rx.ConnectionError, rx.TimeoutError, rx.BusyLoadingError):
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        gauges = [
            ("rtindex_index_documents", "Live documents", s["index"]["documents"]),
            (
                "rtindex_index_tombstones",
                "Deleted document ids remembered",
                s["index"]["tombstones"],
            ),
            ("rtindex_index_terms", "Distinct terms", s["index"]["terms"]),
            ("rtindex_index_postings", "Text postings", s["index"]["postings"]),
            (
                "rtindex_index_bigram_postings",
                "Han bigram postings (the substring index)",
                s["index"]["bigram_postings"],
            ),
            ("rtindex_behavior_users", "Users with behavior state", s["behavior"]["users"]),
            ("rtindex_behavior_items", "Items with behavior state", s["behavior"]["items"]),
        ]
        memory = s["redis"]["used_memory_bytes"]
        if memory is not None:
            gauges.append(("rtindex_redis_memory_bytes", "Redis used_memory", memory))
        for name, doc, value in gauges:
            yield GaugeMetricFamily(name, doc, value=value)
        dlq = CounterMetricFamily(
            "rtindex_dlq_messages",
            "Messages dead-lettered, by topic and reason",
            labels=["topic", "reason"],
        )
        for (topic, reason), n in sorted(s["dead_letters"].items()):
            dlq.add_metric([topic, reason], n)
        yield dlq
