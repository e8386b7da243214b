"""The consumer loop both consumers share: poll, prepare, apply, then commit.

The order is the guarantee (and ARCHITECTURE.md's): poll a micro-batch; send its bad
messages to the DLQ and wait for the broker's acknowledgement; apply the valid events to
Redis; only then commit the batch's offsets. A crash anywhere before the commit means
the batch is delivered again, and applying it again changes nothing (document versions
and behavior offsets decide). Transient outages are waited out with backoff and never
commit; bugs raise. A subclass says how to decode, prepare and apply its events.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Generic, TypeVar

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import CommitFailedError
from kafka.structs import OffsetAndMetadata

from rtindex.consumers.dlq import DeadLetter, DeadLetterQueue
from rtindex.consumers.failpoints import failpoint
from rtindex.consumers.kafka_config import kafka_client_config
from rtindex.consumers.retry import Interrupted, retry_transient
from rtindex.indexer.connection import connect
from rtindex.indexer.events import InvalidEvent
from rtindex.settings import Settings

log = logging.getLogger(__name__)
E = TypeVar("E")


@dataclass(slots=True)
class ConsumerTotals:
    """Running totals since start (the metrics endpoint and the tests read these)."""

    batches: int = 0
    events: Counter[str] = field(default_factory=Counter)
    dlq_reasons: Counter[str] = field(default_factory=Counter)
    commit_failures: int = 0
    redis_retries: int = 0


@dataclass(frozen=True, slots=True)
class Prepared(Generic[E]):
    """A polled batch, decoded; ``extra`` is what the consumer precomputed without Redis."""

    records: list[Any]
    events: list[E]
    dead: list[DeadLetter]
    extra: Any = None


def decode_records(
    records: list[Any], decode: Callable[[Any], E]
) -> tuple[list[E], list[DeadLetter]]:
    """Split records into valid events and dead letters, each in record order."""
    events: list[E] = []
    dead: list[DeadLetter] = []
    for r in records:
        try:
            events.append(decode(r))
        except InvalidEvent as e:
            dead.append(
                DeadLetter(r.topic, r.partition, r.offset, r.key, r.value, e.reason, e.detail)
            )
    return events, dead


class PipelinedConsumer(Generic[E]):
    """One consumer of ``topic`` in ``group``; subclasses implement the three hooks."""

    kind = "events"
    outcomes: tuple[str, ...] = ("applied", "invalid")

    def __init__(self, settings: Settings, topic: str, group: str) -> None:
        self.settings = settings
        self.topic = topic
        self.group = group
        k = settings.kafka
        self.redis = connect(settings, pool_size=4)
        self.totals = ConsumerTotals()
        self.consumer = KafkaConsumer(
            topic,
            **kafka_client_config(
                settings,
                group_id=group,
                enable_auto_commit=False,
                auto_offset_reset=k.auto_offset_reset,
                max_poll_records=k.max_batch,
                session_timeout_ms=k.session_timeout_ms,
                heartbeat_interval_ms=k.heartbeat_interval_ms,
                fetch_max_wait_ms=k.fetch_max_wait_ms,
                # An oversized message must still be fetched, so that it can reach the DLQ.
                max_partition_fetch_bytes=max(settings.index.max_message_bytes * 4, 1 << 20),
                fetch_max_bytes=max(settings.index.max_message_bytes * 8, 50 << 20),
            ),
        )
        self.dlq = DeadLetterQueue(settings, group)

    # -- hooks ------------------------------------------------------------------------
    def ensure_layout(self) -> None:
        raise NotImplementedError

    def prepare(self, records: list[Any]) -> Prepared[E]:
        """CPU work that needs no Redis state; runs while the previous batch applies."""
        raise NotImplementedError

    def apply_events(self, batch: Prepared[E]) -> Counter[str]:
        """Write the valid events to Redis; the counts by outcome (and freshness)."""
        raise NotImplementedError

    def on_assigned(self, partitions: set[TopicPartition], stop: threading.Event) -> None:
        """Called with newly assigned partitions before any of their records is applied."""

    # -- the loop ---------------------------------------------------------------------
    def _retry(self, fn: Callable[[], Any], stop: threading.Event, what: str) -> Any:
        def counted(_e: BaseException) -> None:
            self.totals.redis_retries += 1

        r = self.settings.redis
        return retry_transient(
            fn, stop, what=what, initial_s=r.retry_initial_s, max_s=r.retry_max_s, on_retry=counted
        )

    def apply(self, batch: Prepared[E], stop: threading.Event) -> Counter[str]:
        """DLQ first, then Redis. Does not commit."""
        if batch.dead:
            self._retry(lambda: self.dlq.send_all(batch.dead), stop, "publishing to the DLQ")
            for d in batch.dead:
                self.totals.dlq_reasons[d.reason] += 1
        counts: Counter[str] = Counter(invalid=len(batch.dead))
        if batch.events:
            counts.update(
                self._retry(lambda: self.apply_events(batch), stop, "writing the batch to Redis")
            )
        return counts

    def process(self, records: list[Any], stop: threading.Event) -> Counter[str]:
        """Prepare and apply one batch in this thread. Does not commit."""
        return self.apply(self.prepare(records), stop)

    def commit(self, records: list[Any], stop: threading.Event) -> None:
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            nxt = r.offset + 1
            if tp not in offsets or offsets[tp].offset < nxt:
                offsets[tp] = OffsetAndMetadata(nxt, "", -1)
        try:
            self._retry(lambda: self.consumer.commit(offsets), stop, "committing offsets")
        except CommitFailedError as e:
            # A rebalance took the partitions away: their new owner gets the batch again,
            # and applying it again changes nothing. Count it; do not crash.
            self.totals.commit_failures += 1
            log.warning(
                "offset commit refused after a rebalance (%s); the batch will be redelivered", e
            )

    def run(self, stop: threading.Event) -> None:
        """Poll, prepare, apply, commit, with one batch in flight.

        A writer thread applies batch N (DLQ, then Redis) while this thread polls and
        prepares batch N+1; then this thread waits for N, commits N, and hands N+1 over.
        So a batch is committed only after it is applied, batches apply in order, and the
        Kafka consumer is only ever touched by this thread.
        """
        k = self.settings.kafka
        log.info("%s consumer: group %s, topic %s", self.kind, self.group, self.topic)
        try:
            self._retry(self.ensure_layout, stop, "checking the Redis layout")
        except Interrupted:
            return
        inflight: tuple[Prepared[E], Future[Counter[str]], float] | None = None
        assigned: set[TopicPartition] = set()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtindex-writer") as writer:
            try:
                while True:
                    batch = None
                    if not stop.is_set():
                        polled = self.consumer.poll(
                            timeout_ms=k.poll_timeout_ms, max_records=k.max_batch
                        )
                        records = [r for tp in sorted(polled) for r in polled[tp]]
                        if records:
                            batch = self.prepare(records)
                    if inflight is not None:
                        self._finish(*inflight, stop)
                        inflight = None
                    now_assigned = set(self.consumer.assignment())
                    if now_assigned - assigned:
                        self.on_assigned(now_assigned - assigned, stop)
                    assigned = now_assigned
                    if batch is not None:
                        started = time.perf_counter()
                        inflight = (batch, writer.submit(self.apply, batch, stop), started)
                    elif stop.is_set():
                        return
            except Interrupted as e:
                log.warning(
                    "stopping during an outage (%s): batch not committed, it will be redelivered",
                    e,
                )

    def _finish(
        self,
        batch: Prepared[E],
        applied: Future[Counter[str]],
        started: float,
        stop: threading.Event,
    ) -> None:
        counts = applied.result()  # re-raises the writer's exception, Interrupted included
        failpoint("after_apply_before_commit")
        self.commit(batch.records, stop)
        self.totals.batches += 1
        for name in self.outcomes:
            self.totals.events[name] += counts.get(name, 0)
        log.info(
            "%s batch: %d records, %s, freshness p50 %s ms max %s ms, %.1f ms",
            self.kind,
            len(batch.records),
            ", ".join(f"{name} {counts.get(name, 0)}" for name in self.outcomes),
            counts.get("freshness_p50_ms", "-"),
            counts.get("freshness_max_ms", "-"),
            (time.perf_counter() - started) * 1e3,
        )

    def close(self) -> None:
        self.consumer.close(autocommit=False)
        self.dlq.close()
        self.redis.close()


def freshness(applied_ts: list[int]) -> Counter[str]:
    """p50 and max of (now - event ts) over the applied events, for the batch log line."""
    out: Counter[str] = Counter()
    if applied_ts:
        now = time.time() * 1000
        lag = sorted(now - t for t in applied_ts)
        out["freshness_p50_ms"] = int(lag[len(lag) // 2])
        out["freshness_max_ms"] = int(lag[-1])
    return out


def install_stop_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: finishing the current batch, then stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_consumer(consumer: PipelinedConsumer[Any]) -> int:
    """Run until SIGTERM/SIGINT, then finish the batch, commit and close."""
    stop = threading.Event()
    install_stop_signals(stop)
    try:
        consumer.run(stop)
    finally:
        consumer.close()
    log.info("%s consumer stopped: %s", consumer.kind, dict(consumer.totals.events))
    return 0
