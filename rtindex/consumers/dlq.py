"""The dead-letter queue: bad input goes here with its reason, untouched, and is counted."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer
from kafka.errors import MessageSizeTooLargeError

from rtindex.consumers.kafka_config import kafka_client_config
from rtindex.settings import Settings

log = logging.getLogger(__name__)

# What we keep of a message the broker refuses even in the DLQ (over its own size limit).
_TRUNCATE_TO = 64 * 1024


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    error: str


def dlq_headers(letter: DeadLetter, group: str) -> list[tuple[str, bytes]]:
    return [
        ("reason", letter.reason.encode()),
        ("error", letter.error.encode("utf-8", errors="replace")[:4096]),
        ("source_topic", letter.topic.encode()),
        ("source_partition", str(letter.partition).encode()),
        ("source_offset", str(letter.offset).encode()),
        ("consumer_group", group.encode()),
    ]


class DeadLetterQueue:
    def __init__(self, settings: Settings, group: str) -> None:
        self.topic = settings.kafka.dlq_topic
        self.group = group
        limit = max(settings.index.max_message_bytes * 4, 16 << 20)
        self.producer = KafkaProducer(
            **kafka_client_config(
                settings,
                acks="all",
                linger_ms=5,
                max_request_size=limit,
                retries=5,
                client_id=f"{settings.kafka.client_id}-dlq",
            )
        )

    def send_all(self, letters: list[DeadLetter]) -> None:
        """Publish and wait for the broker's acknowledgement of every letter.

        Raises on a transient Kafka failure: the caller retries the batch and commits nothing.
        """
        futures: list[tuple[DeadLetter, Any]] = []
        for x in letters:
            try:
                fut = self.producer.send(
                    self.topic, key=x.key, value=x.value, headers=dlq_headers(x, self.group)
                )
            except MessageSizeTooLargeError:
                # Over this producer's own max_request_size: refused before it is sent.
                self._send_truncated(x)
                continue
            futures.append((x, fut))
        self.producer.flush()
        for letter, fut in futures:
            try:
                fut.get(timeout=30)
            except MessageSizeTooLargeError:
                # Over the broker's limit.
                self._send_truncated(letter)

    def _send_truncated(self, letter: DeadLetter) -> None:
        """The original cannot be published: keep a prefix and say so, rather than block
        the partition forever on one message."""
        log.warning(
            "DLQ refused %d bytes from %s/%d@%d; publishing a truncated copy",
            len(letter.value or b""),
            letter.topic,
            letter.partition,
            letter.offset,
        )
        headers = [
            *dlq_headers(letter, self.group),
            ("truncated_from", str(len(letter.value or b"")).encode()),
        ]
        self.producer.send(
            self.topic,
            key=(letter.key or b"")[:1024] or None,
            value=(letter.value or b"")[:_TRUNCATE_TO],
            headers=headers,
        ).get(timeout=30)

    def close(self) -> None:
        self.producer.close(timeout=5)
