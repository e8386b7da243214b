"""A Redis outage: the consumer waits and retries, commits nothing, loses nothing."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import pytest
import redis
from helpers import wait_until
from kafka.admin import KafkaAdminClient

from rtindex.consumers.behaviors import BehaviorConsumer
from rtindex.consumers.documents import DocumentConsumer
from rtindex.consumers.kafka_config import kafka_client_config
from rtindex.consumers.publish import make_producer
from rtindex.consumers.topics import ensure_topics
from rtindex.runtime.servers import RedisServer
from rtindex.settings import Settings

pytestmark = pytest.mark.e2e


def committed_total(settings: Settings) -> int:
    admin = KafkaAdminClient(**kafka_client_config(settings))
    try:
        offsets = admin.list_group_offsets(settings.kafka.documents_group).get(
            settings.kafka.documents_group, {}
        )
    finally:
        admin.close()
    return sum(om.offset for om in offsets.values() if om.offset >= 0)


def publish(settings: Settings, first: int, count: int) -> None:
    producer = make_producer(settings)
    try:
        for i in range(first, first + count):
            ev = {
                "op": "upsert",
                "id": f"d{i}",
                "version": 1,
                "ts": 0,
                "doc": {"title": f"doc{i} 标题"},
            }
            producer.send(
                settings.kafka.documents_topic, key=f"d{i}".encode(), value=json.dumps(ev).encode()
            )
        producer.flush()
    finally:
        producer.close()


def series(port: int, name: str, topic: str) -> float | None:
    """The sum of a series over its partitions, from the consumer's own /metrics; None
    while the consumer has not exported it (a gauge appears with the first report)."""
    total = None
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
        head, _, value = line.rpartition(" ")
        if head.startswith(name + "{") and f'topic="{topic}"' in head:
            total = (total or 0.0) + float(value)
    return total


def metric(port: int, name: str, topic: str) -> float:
    total = series(port, name, topic)
    assert total is not None, f"no {name} for {topic}"
    return total


def test_consumer_waits_out_a_redis_outage(settings: Settings, tmp_path: Path) -> None:
    server = RedisServer.start(data_dir=tmp_path / "redis")
    s = settings.with_overrides({"redis": {"url": server.url, "retry_max_s": 0.5}})
    ensure_topics(s, partitions=3)
    consumer = DocumentConsumer(s)
    port = consumer.metrics.serve("127.0.0.1", 0)
    topic = s.kafka.documents_topic
    retries = "rtindex_consumer_redis_retries_total"
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        publish(s, 0, 50)
        wait_until(lambda: consumer.totals.events["applied"] == 50, timeout=30)
        wait_until(lambda: committed_total(s) == 50, timeout=30)
        assert metric(port, retries, topic) == 0

        server.stop()
        publish(s, 50, 50)
        # Prometheus sees the retries, and the lag of the batch that cannot be applied.
        wait_until(
            lambda: (series(port, retries, topic) or 0) >= 3, timeout=30, message="no retries"
        )
        lag = "rtindex_consumer_lag_messages"
        wait_until(lambda: (series(port, lag, topic) or 0) > 0, timeout=30, message="no lag")
        assert committed_total(s) == 50, "nothing may be committed while Redis is down"
        assert thread.is_alive(), "the consumer must wait, not die"

        server.restart()
        wait_until(lambda: committed_total(s) == 100, timeout=60)
        assert metric(port, retries, topic) == consumer.totals.redis_retries >= 3
        assert metric(port, "rtindex_consumer_events_total", topic) == 100  # all applied
        client = redis.Redis.from_url(server.url)
        n = int(client.hget(f"{s.redis.namespace}:{{s0}}:st", "N") or 0)
        client.close()
        assert n == 100
        assert consumer.totals.events["applied"] == 100
    finally:
        stop.set()
        thread.join(timeout=30)
        consumer.close()
        server.stop()


def test_behavior_consumer_waits_out_a_redis_outage_and_counts_once(
    settings: Settings, tmp_path: Path
) -> None:
    """Behavior counters are not idempotent: a batch interrupted by the outage (some
    chunks written, some not) is retried whole, and its written chunks are recognised."""
    server = RedisServer.start(data_dir=tmp_path / "redis")
    s = settings.with_overrides(
        {"redis": {"url": server.url, "retry_max_s": 0.5}, "behavior": {"apply_chunk": 3}}
    )
    ensure_topics(s, partitions=3)
    consumer = BehaviorConsumer(s)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()

    def clicks(first: int, count: int) -> None:
        producer = make_producer(s)
        try:
            for i in range(first, first + count):
                ev = {
                    "event_id": f"e{i}",
                    "user_id": f"u{i % 7}",
                    "item_id": "x",
                    "action": "click",
                    "ts": 1_795_389_111_326 + i,
                }
                producer.send(
                    s.kafka.behaviors_topic, key=f"u{i % 7}".encode(), value=json.dumps(ev).encode()
                )
            producer.flush()
        finally:
            producer.close()

    try:
        clicks(0, 40)
        wait_until(lambda: consumer.totals.events["applied"] == 40, timeout=30)
        server.stop()
        clicks(40, 40)
        wait_until(lambda: consumer.totals.redis_retries >= 3, timeout=30)
        assert thread.is_alive(), "the consumer must wait, not die"
        server.restart()
        wait_until(
            lambda: consumer.totals.events["applied"] + consumer.totals.events["redelivered"] >= 80,
            timeout=60,
        )
        client = redis.Redis.from_url(server.url)
        clicks_counted = client.hget(f"{s.redis.namespace}:{{b0}}:ic:x", "click")
        client.close()
        assert clicks_counted == b"80"
    finally:
        stop.set()
        thread.join(timeout=30)
        consumer.close()
        server.stop()
