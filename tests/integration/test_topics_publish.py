"""Topic creation (idempotent) and JSON-lines publishing (bytes untouched, keyed)."""

from __future__ import annotations

import io

import pytest
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient

from rtindex.consumers.kafka_config import kafka_client_config
from rtindex.consumers.publish import key_of, publish_jsonl
from rtindex.consumers.topics import ensure_topics, rtindex_topics
from rtindex.settings import Settings

pytestmark = pytest.mark.integration


def _partitions(settings: Settings) -> dict[str, int]:
    admin = KafkaAdminClient(**kafka_client_config(settings))
    try:
        described = admin.describe_topics(rtindex_topics(settings))
    finally:
        admin.close()
    return {t["name"]: len(t["partitions"]) for t in described if t["error_code"] == 0}


def _consume_all(settings: Settings, topic: str, expected: int) -> list[tuple[bytes | None, bytes]]:
    """Read ``expected`` records from the start (counting them: end offsets are unreliable)."""
    consumer = KafkaConsumer(
        topic,
        **kafka_client_config(settings),
        group_id=f"{settings.kafka.documents_group}-check",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        consumer_timeout_ms=20_000,  # bound: the loop ends if records stop arriving
    )
    out: list[tuple[bytes | None, bytes]] = []
    try:
        for record in consumer:
            out.append((record.key, record.value))
            if len(out) >= expected:
                break
    finally:
        consumer.close()
    return out


def test_ensure_topics_creates_all_three_and_is_idempotent(settings: Settings) -> None:
    ensure_topics(settings, partitions=3)
    assert _partitions(settings) == {t: 3 for t in rtindex_topics(settings)}
    ensure_topics(settings, partitions=3)  # again: no error
    ensure_topics(settings, partitions=5)  # existing topics are left alone
    assert _partitions(settings) == {t: 3 for t in rtindex_topics(settings)}


def test_key_of() -> None:
    assert key_of(b'{"id": "d-1"}', "id") == b"d-1"
    assert key_of('{"id": "北京-1"}'.encode(), "id") == "北京-1".encode()
    assert key_of(b'{"id": 7}', "id") is None
    assert key_of(b'["id"]', "id") is None
    assert key_of(b"not json", "id") is None
    assert key_of(b'{"id": "x"', "id") is None
    assert key_of(b"\xff\xfe", "id") is None


def test_publish_jsonl_sends_lines_untouched_with_keys(settings: Settings) -> None:
    ensure_topics(settings)
    lines = [
        b'{"op": "upsert", "id": "d-1", "version": 1, "ts": 1, "doc": {"title": "\xe4\xbd\xa0"}}',
        b'{"id":"d-2",   "spacing":  "kept" }',
        b"not json at all",
        b'{"id": 3}',
        b"\xff\xfe invalid utf-8",
        b'{"op": "delete", "id": "\\u5317\\u4eac", "version": 2, "ts": 2}',
    ]
    # Blank lines are skipped; CRLF and a missing final newline are handled.
    source = b"\n".join(lines[:3]) + b"\n\n   \n" + lines[3] + b"\r\n" + b"\n".join(lines[4:])
    topic = settings.kafka.documents_topic

    count = publish_jsonl(settings, topic, io.BytesIO(source), key_field="id")

    assert count == len(lines)
    received = _consume_all(settings, topic, expected=len(lines))
    expected_keys = [b"d-1", b"d-2", None, None, None, "北京".encode()]
    assert sorted(received, key=lambda kv: kv[1]) == sorted(
        zip(expected_keys, lines, strict=True), key=lambda kv: kv[1]
    )
