"""Publish JSON-lines files to a topic, bytes untouched (``rtindex produce`` and the demo).

Lines are not validated here on purpose: a malformed line must reach the consumer,
which sends it to the DLQ with its reason, exactly as a bad event from any other
producer would.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, BinaryIO

import orjson
from kafka import KafkaProducer
from kafka.producer.future import FutureRecordMetadata

from rtindex.consumers.kafka_config import kafka_client_config
from rtindex.settings import Settings

# Futures are checked (and dropped) every this many sends, so a huge file needs bounded memory.
_CHECK_EVERY = 10_000


def make_producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """A producer with rtindex's defaults: every replica acknowledges, idempotent, small linger."""
    config: dict[str, Any] = {
        "acks": "all",
        "linger_ms": 5,
        # Room above the consumer's size limit, so an over-size event can still be sent
        # and be counted and dead-lettered by the consumer instead of failing here.
        "max_request_size": max(2 * settings.index.max_message_bytes, 1 << 20),
    }
    config.update(overrides)
    return KafkaProducer(**kafka_client_config(settings, **config))


def key_of(line: bytes, key_field: str) -> bytes | None:
    """The UTF-8 key: ``line[key_field]`` when ``line`` is a JSON object with a string there."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None  # not JSON: published without a key; the consumer dead-letters it
    value = data.get(key_field) if isinstance(data, dict) else None
    return value.encode("utf-8") if isinstance(value, str) else None


def _lines(source: BinaryIO) -> Iterable[bytes]:
    for raw in source:
        line = raw[:-1] if raw.endswith(b"\n") else raw
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.strip():
            yield line


def _settle(producer: KafkaProducer, pending: list[FutureRecordMetadata]) -> None:
    """Flush and raise the first send error: a publish never fails silently."""
    producer.flush()
    for future in pending:
        future.get(timeout=0)
    pending.clear()


def publish_lines(
    producer: KafkaProducer, topic: str, lines: Iterable[bytes], key_field: str
) -> int:
    """Send each line as one record (keyed when possible) and flush; returns the count."""
    pending: list[FutureRecordMetadata] = []
    count = 0
    for line in lines:
        pending.append(producer.send(topic, value=line, key=key_of(line, key_field)))
        count += 1
        if len(pending) >= _CHECK_EVERY:
            _settle(producer, pending)
    _settle(producer, pending)
    return count


def publish_jsonl(settings: Settings, topic: str, source: BinaryIO, key_field: str) -> int:
    """Publish every non-blank line of ``source`` (line ending removed, otherwise untouched)."""
    producer = make_producer(settings)
    try:
        return publish_lines(producer, topic, _lines(source), key_field)
    finally:
        producer.close()
