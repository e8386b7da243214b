"""Operations end to end: /stats, /readyz, /metrics and logs from real consumers.

Consumers run against the real broker and Redis; their status reports reach the query
service through Redis, and their own /metrics endpoints are scraped over HTTP.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from typing import Any

import httpx
import pytest
from helpers import running, serving, wait_until
from processes import consumer_process, publish

from rtindex.consumers.behaviors import BehaviorConsumer
from rtindex.consumers.documents import DocumentConsumer
from rtindex.query.server import create_app
from rtindex.runtime.servers import free_port
from rtindex.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Quick reports, and a readiness limit a test can cross with a few dozen messages.
    return settings.with_overrides(
        {
            "ops": {
                "report_interval_s": 0.2,
                "report_ttl_s": 5,
                "ready_max_lag_messages": 10,
                "ready_max_lag_s": None,
            }
        }
    )


def doc(i: int, **extra: Any) -> bytes:
    body = {"title": f"标题 {i} report", "body": "实时 索引 freshness", "category": "c"}
    event = {"op": "upsert", "id": f"d{i}", "version": 1, "ts": int(time.time() * 1000)}
    return json.dumps({**event, "doc": body, **extra}).encode()


def click(i: int) -> bytes:
    event = {"event_id": f"e{i}", "user_id": f"u{i % 4}", "item_id": f"d{i % 7}"}
    return json.dumps({**event, "action": "click", "ts": int(time.time() * 1000)}).encode()


def stats(api: httpx.Client) -> dict[str, Any]:
    r = api.get("/stats")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one series in Prometheus text exposition."""
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if m is None or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return None


def test_stats_and_metrics_follow_the_stream(
    topics: Settings,
    consumer: DocumentConsumer,
    behavior_consumer: BehaviorConsumer,
    api: httpx.Client,
) -> None:
    k = topics.kafka
    publish(topics, k.documents_topic, [doc(i) for i in range(30)] + [b"{not json", b"\xff"] * 2)
    publish(topics, k.behaviors_topic, [click(i) for i in range(20)], key_field="user_id")
    for q in ("标题", "report", "索引"):
        assert api.get("/search", params={"q": q}).status_code == 200
    assert api.get("/search", params={"q": ""}).status_code == 422

    def settled() -> dict[str, Any] | None:
        # Done when both consumers' reports (written after each commit) count everything.
        s = stats(api)
        c = s["consumers"]
        if "documents" not in c or "behaviors" not in c:
            return None
        docs, clicks = c["documents"]["totals"], c["behaviors"]["totals"]
        if sum(docs.values()) < 34 or sum(clicks.values()) < 20 or s["headline"]["lag_messages"]:
            return None
        return s

    s = wait_until(settled, timeout=60, interval=0.2, message=lambda: str(stats(api)))
    h = s["headline"]
    assert (h["documents"], h["users"], h["items"], h["dlq_total"]) == (30, 4, 7, 4)
    assert s["dlq"]["reasons"] == {"not_json": 2, "not_utf8": 2}
    assert h["documents_events_per_s"] > 0 and h["behaviors_events_per_s"] > 0
    assert h["events_per_s"] == pytest.approx(
        h["documents_events_per_s"] + h["behaviors_events_per_s"], abs=1e-3
    )
    assert h["freshness_p50_ms"] is not None and h["freshness_p99_ms"] is not None
    assert 0 <= h["freshness_p50_ms"] <= h["freshness_p99_ms"] < 60_000
    assert h["redis_memory_bytes"] > 0 and h["postings"] > 0
    docs = s["consumers"]["documents"]
    assert docs["members"] == 1 and docs["topic"] == k.documents_topic
    assert docs["totals"]["applied"] == 30 and docs["totals"]["invalid"] == 4
    assert sorted(p["partition"] for p in docs["partitions"]) == [0, 1, 2]
    assert all(p["lag_messages"] == 0 for p in docs["partitions"])
    assert s["ready"] == {"ready": True, "reasons": []}
    # Only query traffic counts: three searches and a 422, not the /stats polling.
    search = s["query"]["endpoints"]["/search"]
    assert search["requests"] == 4 and search["errors"] == 0
    assert "/stats" not in s["query"]["endpoints"]
    assert h["query_p50_ms"] is not None and h["query_p50_ms"] <= h["query_p99_ms"]

    # The consumer's own Prometheus endpoint.
    port = consumer.metrics.serve("127.0.0.1", 0)
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    t = k.documents_topic
    assert sample(text, "rtindex_consumer_events_total", topic=t, outcome="applied") == 30
    assert sample(text, "rtindex_consumer_events_total", topic=t, outcome="invalid") == 4
    assert sample(text, "rtindex_consumer_dlq_total", topic=t, reason="not_utf8") == 2
    assert sample(text, "rtindex_consumer_freshness_seconds_count", topic=t) == 30
    for p in ("0", "1", "2"):
        assert sample(text, "rtindex_consumer_lag_messages", topic=t, partition=p) == 0
    assert (sample(text, "rtindex_consumer_batches_total", topic=t) or 0) >= 1

    # The query service's: index gauges read from Redis, and its own latency.
    text = api.get("/metrics").text
    assert sample(text, "rtindex_index_documents") == 30
    assert sample(text, "rtindex_behavior_users") == 4
    assert sample(text, "rtindex_redis_up") == 1
    assert sample(text, "rtindex_dlq_messages_total", topic=t, reason="not_json") == 2
    assert sample(text, "rtindex_query_seconds_count", endpoint="/search") == 4
    assert sample(text, "rtindex_query_errors_total", endpoint="/search", status="422") == 1


def test_readyz_waits_for_the_consumers_to_catch_up(
    topics: Settings, consumer: DocumentConsumer, api: httpx.Client
) -> None:
    def consumers_reporting() -> bool:
        docs = stats(api)["consumers"].get("documents")
        return docs is not None and len(docs["partitions"]) == 3

    wait_until(consumers_reporting, timeout=30, message=lambda: str(stats(api)))
    assert api.get("/readyz").status_code == 200

    # Hold the consumer's writes: the messages are polled but cannot be applied.
    gate = threading.Event()
    apply_events = consumer.apply_events

    def held(batch: Any) -> Any:
        assert gate.wait(60), "the test never opened the gate"
        return apply_events(batch)

    consumer.apply_events = held  # type: ignore[method-assign]
    try:
        publish(topics, topics.kafka.documents_topic, [doc(i) for i in range(90)])

        def not_ready() -> httpx.Response | None:
            r = api.get("/readyz")
            return r if r.status_code == 503 else None

        r = wait_until(not_ready, timeout=30, interval=0.1, message="/readyz stayed ready")
        reasons = r.json()["reasons"]
        assert reasons and all("messages behind (limit 10)" in x for x in reasons), reasons
        h = stats(api)["headline"]
        assert h["lag_messages"] > 10 and h["lag_seconds"] is not None
        assert stats(api)["ready"]["ready"] is False
    finally:
        gate.set()
    wait_until(lambda: api.get("/readyz").status_code == 200, timeout=30, interval=0.1)
    assert stats(api)["headline"]["documents"] == 90


def test_query_result_counts_and_index_gauges_by_value(
    topics: Settings, consumer: DocumentConsumer, api: httpx.Client
) -> None:
    """rtindex_query_results and rtindex_search_total_hits count what the calls returned;
    the index gauges equal /stats after known upserts and deletes."""
    upserts = [doc(i) for i in range(30)]
    now = int(time.time() * 1000)
    deletes = [
        json.dumps({"op": "delete", "id": f"d{i}", "version": 2, "ts": now}).encode()
        for i in range(3)
    ]
    publish(topics, topics.kafka.documents_topic, upserts + deletes, key_field="id")

    def indexed() -> dict[str, Any] | None:
        h = stats(api)["headline"]
        return h if (h["documents"], h["tombstones"]) == (27, 3) else None

    wait_until(indexed, timeout=60, interval=0.2, message=lambda: str(stats(api)["headline"]))

    calls = [  # (params, total, hits): every live document has 标题, report and 索引
        ({"q": "标题"}, 27, 10),
        ({"q": "report", "k": "50"}, 27, 27),
        ({"q": "索引", "offset": "20"}, 27, 7),
        ({"q": "zzznomatch"}, 0, 0),
    ]
    for params, total, hits in calls:
        body = api.get("/search", params=params).json()
        assert (body["total"], len(body["hits"])) == (total, hits), (params, body)
    assert api.get("/search", params={"q": ""}).status_code == 422  # not a result
    assert api.get("/trending", params={"k": "5"}).json()["items"] == []

    text = api.get("/metrics").text
    results = "rtindex_query_results"
    assert sample(text, f"{results}_count", endpoint="/search") == 4
    assert sample(text, f"{results}_sum", endpoint="/search") == 10 + 27 + 7 + 0
    assert sample(text, f"{results}_bucket", endpoint="/search", le="0.0") == 1
    assert sample(text, f"{results}_bucket", endpoint="/search", le="10.0") == 3
    assert sample(text, f"{results}_bucket", endpoint="/search", le="50.0") == 4
    assert sample(text, f"{results}_count", endpoint="/trending") == 1
    assert sample(text, f"{results}_sum", endpoint="/trending") == 0
    hits = "rtindex_search_total_hits"
    assert sample(text, f"{hits}_count") == 4
    assert sample(text, f"{hits}_sum") == 3 * 27
    assert sample(text, f"{hits}_bucket", le="0.0") == 1
    assert sample(text, f"{hits}_bucket", le="10.0") == 1
    assert sample(text, f"{hits}_bucket", le="100.0") == 4

    # Index gauges, read from Redis at scrape time: the same figures as /stats.
    h = stats(api)["headline"]
    assert sample(text, "rtindex_index_documents") == h["documents"] == 27
    assert sample(text, "rtindex_index_tombstones") == h["tombstones"] == 3
    terms = sample(text, "rtindex_index_terms")
    assert terms is not None and terms == h["terms"] > 0
    memory = sample(text, "rtindex_redis_memory_bytes")
    assert memory is not None and memory > 0


def test_consumer_metrics_by_value(topics: Settings) -> None:
    """The /metrics of a running `rtindex consume documents`, after known events: one
    stale and one duplicate among them, and one that is not JSON."""

    def upsert(i: int, version: int) -> bytes:
        event = {"op": "upsert", "id": f"m{i}", "version": version, "ts": int(time.time() * 1000)}
        return json.dumps({**event, "doc": {"title": f"metrics {i}"}}).encode()

    events = [upsert(i, 2) for i in range(10)]
    events += [upsert(0, 1), events[1], b"{not json"]  # stale, exact duplicate, invalid
    publish(topics, topics.kafka.documents_topic, events, key_field="id")
    port = free_port()
    proc = consumer_process(
        topics,
        topics.redis.namespace,
        topics.kafka.documents_group,
        metrics_port=port,
        env_extra={"RTINDEX_OPS__REPORT_INTERVAL_S": "0.2"},
    )
    t = topics.kafka.documents_topic

    def scrape() -> str:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx.TransportError:
            return ""

    def caught_up() -> str | None:
        # Every event counted, and every partition's lag reported since (0 behind).
        text = scrape()
        counted = sum(
            sample(text, "rtindex_consumer_events_total", topic=t, outcome=o) or 0
            for o in ("applied", "stale", "duplicate", "invalid")
        )
        lags = [
            sample(text, f"rtindex_consumer_lag_{unit}", topic=t, partition=p)
            for unit in ("messages", "seconds")
            for p in ("0", "1", "2")
        ]
        return text if counted == len(events) and lags == [0] * 6 else None

    try:
        wait_until(caught_up, timeout=90, interval=0.2, message=scrape)
        text = scrape()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0

    def value(name: str, **labels: str) -> float:
        v = sample(text, name, topic=t, **labels)
        assert v is not None, f"no {name} {labels} in:\n{text}"
        return v

    events_total = "rtindex_consumer_events_total"
    assert value(events_total, outcome="applied") == 10
    assert value(events_total, outcome="stale") == 1
    assert value(events_total, outcome="duplicate") == 1
    assert value(events_total, outcome="invalid") == 1
    assert value(events_total, outcome="redelivered") == 0
    assert value("rtindex_consumer_dlq_total", reason="not_json") == 1
    batches = value("rtindex_consumer_batches_total")
    assert batches >= 1
    # One observation per batch: its records (all of them, whatever their outcome)...
    assert value("rtindex_consumer_batch_records_count") == batches
    assert value("rtindex_consumer_batch_records_sum") == len(events)
    assert value("rtindex_consumer_batch_records_bucket", le="+Inf") == batches
    # ...and the time it took to apply.
    assert value("rtindex_consumer_apply_seconds_count") == batches
    assert value("rtindex_consumer_apply_seconds_sum") > 0
    # Freshness per applied event only.
    assert value("rtindex_consumer_freshness_seconds_count") == 10
    assert value("rtindex_consumer_redis_retries_total") == 0
    assert value("rtindex_consumer_commit_failures_total") == 0
    assert value("rtindex_consumer_last_batch_timestamp_seconds") > 0


def test_readyz_is_not_ready_without_redis(settings: Settings) -> None:
    from fastapi.testclient import TestClient

    from rtindex.query.server import create_app

    down = settings.with_overrides({"redis": {"url": "redis://127.0.0.1:1/0"}})
    with TestClient(create_app(down)) as client:
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["reasons"][0].startswith("redis:")
        assert client.get("/healthz").status_code == 200
        metrics = client.get("/metrics").text
        assert sample(metrics, "rtindex_redis_up") == 0


def test_json_logs_one_line_per_batch(topics: Settings) -> None:
    n = 120
    ends = publish(topics, topics.kafka.documents_topic, [doc(i) for i in range(n)])
    proc = consumer_process(
        topics,
        topics.redis.namespace,
        topics.kafka.documents_group,
        env_extra={"RTINDEX_LOG_FORMAT": "json", "RTINDEX_LOG_LEVEL": "INFO"},
        capture_stderr=True,
    )
    try:
        from processes import committed

        wait_until(lambda: committed(topics, topics.kafka.documents_group) == ends, timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    lines = [json.loads(line) for line in err.decode().splitlines()]  # every line is JSON
    batches = [x for x in lines if x["msg"].startswith("document batch:")]
    assert sum(b["records"] for b in batches) == n
    assert sum(b["outcomes"]["applied"] for b in batches) == n
    assert all(b["level"] == "INFO" and b["topic"] == topics.kafka.documents_topic for b in batches)
    # Per batch, never per event: at most max_batch (40) records a line.
    info = [x for x in lines if x["level"] == "INFO"]
    assert len(batches) <= n / 10 and len(info) < n / 4, [x["msg"] for x in info]


@pytest.mark.parametrize("error", ["CommitFailedError", "RebalanceInProgressError"])
def test_a_commit_refused_by_a_rebalance_is_counted_not_fatal(topics: Settings, error: str) -> None:
    """kafka-python refuses a commit during a rebalance with either error; the batch is
    redelivered to the partition's new owner (and re-applying changes nothing), so the
    consumer must carry on."""
    from types import SimpleNamespace

    import kafka.errors

    c = DocumentConsumer(topics)
    try:

        def refuse(_offsets: Any) -> None:
            raise getattr(kafka.errors, error)("a rebalance is in progress")

        c.consumer.commit = refuse  # type: ignore[method-assign]
        record = SimpleNamespace(topic=topics.kafka.documents_topic, partition=0, offset=7)
        c.commit([record], threading.Event())
        assert c.totals.commit_failures == 1
        text = c.metrics.registry
        from prometheus_client import generate_latest

        failures = sample(
            generate_latest(text).decode(),
            "rtindex_consumer_commit_failures_total",
            topic=topics.kafka.documents_topic,
        )
        assert failures == 1
    finally:
        c.close()


def test_readyz_with_no_consumer_is_ready_by_default(topics: Settings, api: httpx.Client) -> None:
    """ops.ready_requires_consumers is off by default: a query service over an index that
    no consumer updates (all stopped, or a read-only replica) still serves it."""
    assert topics.ops.ready_requires_consumers is False
    assert stats(api)["consumers"] == {}
    r = api.get("/readyz")
    assert (r.status_code, r.json()) == (200, {"status": "ready"})


def test_readyz_can_require_a_consuming_documents_consumer(topics: Settings) -> None:
    """With ops.ready_requires_consumers: not ready until a documents consumer reports a
    partition; not ready again when its report expires (a consumer that died) or when it
    withdraws it (stopped cleanly)."""
    s = topics.with_overrides({"ops": {"ready_requires_consumers": True, "report_ttl_s": 2}})
    missing = "documents consumer: no status report in the last 2 s (ops.ready_requires_consumers)"

    def not_ready(api: httpx.Client) -> list[str] | None:
        r = api.get("/readyz")
        return r.json()["reasons"] if r.status_code == 503 else None

    with serving(create_app(s)) as base, httpx.Client(base_url=base, timeout=10) as api:
        assert not_ready(api) == [missing]
        stats = api.get("/stats").json()
        assert stats["consumers"] == {}
        # The dashboard's readiness badge says what /readyz says.
        assert stats["ready"] == {"ready": False, "reasons": [missing]}

        # A consumer that dies: its last report stays in Redis until it is too old.
        dying = DocumentConsumer(s)
        stop = threading.Event()
        thread = threading.Thread(target=dying.run, args=(stop,), daemon=True)
        thread.start()
        try:
            wait_until(lambda: api.get("/readyz").status_code == 200, timeout=60, interval=0.1)
            assert api.get("/stats").json()["ready"]["ready"] is True
            stop.set()
            thread.join(timeout=30)
            assert not thread.is_alive()
            reasons = wait_until(lambda: not_ready(api), timeout=30, interval=0.1)
            assert reasons == [missing]
        finally:
            stop.set()
            thread.join(timeout=30)
            dying.close()

        # A consumer that stops cleanly takes its report with it: not ready at once.
        with running(DocumentConsumer(s)):
            wait_until(lambda: api.get("/readyz").status_code == 200, timeout=60, interval=0.1)
        assert not_ready(api) == [missing]
