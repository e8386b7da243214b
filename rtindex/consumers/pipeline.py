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
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Generic, TypeVar

import redis.exceptions as rx
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError, RebalanceInProgressError
from kafka.structs import OffsetAndMetadata

from rtindex.consumers.dlq import DeadLetter, DeadLetterQueue
from rtindex.consumers.failpoints import failpoint
from rtindex.consumers.kafka_config import kafka_client_config
from rtindex.consumers.offsets import batch_offsets, forget_committed, merge_refused, to_recommit
from rtindex.consumers.retry import Interrupted, retry_transient
from rtindex.indexer.connection import connect
from rtindex.indexer.events import InvalidEvent
from rtindex.ops.board import StatusBoard
from rtindex.ops.consumer_metrics import ConsumerMetrics, lag_of
from rtindex.settings import Settings

log = logging.getLogger(__name__)
E = TypeVar("E")


class _AssignmentListener(ConsumerRebalanceListener):
    """Tells the loop when a rebalance has completed (the group is stable again): only
    then can a refused commit succeed; retried any earlier, it is refused again."""

    def __init__(self, on_assigned: Callable[[], None]) -> None:
        self._on_assigned = on_assigned

    def on_partitions_revoked(self, revoked: Any) -> None:
        pass  # nothing to flush: every applied batch is committed or kept in _refused

    def on_partitions_assigned(self, assigned: Any) -> None:
        self._on_assigned()


@dataclass(slots=True)
class ConsumerTotals:
    """Running totals since start (the metrics endpoint and the tests read these)."""

    batches: int = 0
    events: Counter[str] = field(default_factory=Counter)
    dlq_reasons: Counter[str] = field(default_factory=Counter)
    commit_failures: int = 0
    redis_retries: int = 0


@dataclass(frozen=True, slots=True)
class Applied:
    """What ``apply_events`` did: counts by outcome, and the ``ts`` of each applied event
    (freshness is measured from it)."""

    counts: Counter[str]
    applied_ts: list[int]


@dataclass(frozen=True, slots=True)
class BatchResult:
    counts: Counter[str]
    freshness_ms: list[float]
    apply_s: float
    dead: Counter[str]


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

    kind = "events"  # in log lines: "document batch: ..."
    stream = "events"  # in status reports and /stats: "documents", "behaviors"
    outcomes: tuple[str, ...] = ("applied", "invalid")

    def __init__(self, settings: Settings, topic: str, group: str) -> None:
        self.settings = settings
        self.topic = topic
        self.group = group
        k = settings.kafka
        self.redis = connect(settings, pool_size=4)
        self.totals = ConsumerTotals()
        self.consumer = KafkaConsumer(
            **kafka_client_config(
                settings,
                group_id=group,
                enable_auto_commit=False,
                auto_offset_reset=k.auto_offset_reset,
                max_poll_records=k.max_batch,
                session_timeout_ms=k.session_timeout_ms,
                heartbeat_interval_ms=k.heartbeat_interval_ms,
                max_poll_interval_ms=k.max_poll_interval_ms,
                fetch_max_wait_ms=k.fetch_max_wait_ms,
                # An oversized message must still be fetched, so that it can reach the DLQ.
                max_partition_fetch_bytes=max(settings.index.max_message_bytes * 4, 1 << 20),
                fetch_max_bytes=max(settings.index.max_message_bytes * 8, 50 << 20),
            ),
        )
        self._rebalanced = False  # an assignment completed since the last refused commit
        self.consumer.subscribe([topic], listener=_AssignmentListener(self._on_rebalanced))
        self.dlq = DeadLetterQueue(settings, group)
        self.metrics = ConsumerMetrics(self.stream, topic, group, settings.ops.window_s)
        self.board = StatusBoard(self.redis, settings.redis.namespace, settings.ops.report_ttl_s)
        self._next_report = 0.0
        self._last_ts: dict[TopicPartition, int] = {}  # last committed record's timestamp
        self._report_failing = False
        self._assigned: set[TopicPartition] = set()
        self._refused: dict[TopicPartition, int] = {}  # applied, commit refused by a rebalance

    # -- hooks ------------------------------------------------------------------------
    def ensure_layout(self) -> None:
        raise NotImplementedError

    def prepare(self, records: list[Any]) -> Prepared[E]:
        """CPU work that needs no Redis state; runs while the previous batch applies."""
        raise NotImplementedError

    def apply_events(self, batch: Prepared[E]) -> Applied:
        """Write the valid events to Redis; the counts by outcome and the applied ts."""
        raise NotImplementedError

    def on_assigned(self, partitions: set[TopicPartition], stop: threading.Event) -> None:
        """Called with newly assigned partitions before any of their records is applied."""

    # -- the loop ---------------------------------------------------------------------
    def _retry(self, fn: Callable[[], Any], stop: threading.Event, what: str) -> Any:
        def counted(_e: BaseException) -> None:
            self.totals.redis_retries += 1
            self.metrics.retried()

        r = self.settings.redis
        return retry_transient(
            fn, stop, what=what, initial_s=r.retry_initial_s, max_s=r.retry_max_s, on_retry=counted
        )

    def apply(self, batch: Prepared[E], stop: threading.Event) -> BatchResult:
        """DLQ first, then Redis. Does not commit."""
        t0 = time.perf_counter()
        dead = Counter(d.reason for d in batch.dead)
        if batch.dead:
            self._retry(lambda: self.dlq.send_all(batch.dead), stop, "publishing to the DLQ")
            self.totals.dlq_reasons.update(dead)
            # The tally /stats shows; at least once, like the DLQ itself.
            self._retry(
                lambda: self.board.count_dead_letters(self.topic, dead),
                stop,
                "counting dead letters",
            )
        counts: Counter[str] = Counter(invalid=len(batch.dead))
        fresh: list[float] = []
        if batch.events:
            applied: Applied = self._retry(
                lambda: self.apply_events(batch), stop, "writing the batch to Redis"
            )
            counts.update(applied.counts)
            now_ms = time.time() * 1000  # visible to queries from now on
            fresh = [now_ms - ts for ts in applied.applied_ts]
        return BatchResult(counts, fresh, time.perf_counter() - t0, dead)

    def process(self, records: list[Any], stop: threading.Event) -> Counter[str]:
        """Prepare and apply one batch in this thread. Does not commit."""
        return self.apply(self.prepare(records), stop).counts

    def commit(self, records: list[Any], stop: threading.Event) -> None:
        self._commit(batch_offsets(records), stop)

    def _commit(self, offsets: dict[TopicPartition, int], stop: threading.Event) -> None:
        meta = {tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()}
        try:
            self._retry(lambda: self.consumer.commit(meta), stop, "committing offsets")
        except (CommitFailedError, RebalanceInProgressError) as e:
            # A rebalance refused the commit. Partitions that moved are redelivered to
            # their new owner (applying again changes nothing); partitions this member
            # keeps are committed again once the group is stable (see offsets.py).
            self._refused = merge_refused(self._refused, offsets)
            self._rebalanced = False  # retry once this rebalance has completed
            self.totals.commit_failures += 1
            self.metrics.commit_failed()
            log.warning("offset commit refused during a rebalance (%s); will retry or redeliver", e)
        else:
            self._refused = forget_committed(self._refused, offsets)

    def _on_rebalanced(self) -> None:
        self._rebalanced = True

    def _recommit_refused(self, assigned: set[TopicPartition], stop: threading.Event) -> None:
        refused, self._refused = self._refused, {}
        due = self._retry(
            lambda: to_recommit(refused, assigned, self.consumer.position, self.consumer.committed),
            stop,
            "reading positions and committed offsets",
        )
        if due:
            log.info("committing %d partition offset(s) a rebalance had refused", len(due))
            self._commit(due, stop)

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
        inflight: tuple[Prepared[E], Future[BatchResult]] | None = None
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
                    assigned = self._assigned = now_assigned
                    if self._refused and self._rebalanced:
                        self._recommit_refused(assigned, stop)
                    if batch is not None:
                        inflight = (batch, writer.submit(self.apply, batch, stop))
                    elif stop.is_set():
                        return
                    self._maybe_report(assigned, inflight[0] if inflight else None)
            except Interrupted as e:
                log.warning(
                    "stopping during an outage (%s): batch not committed, it will be redelivered",
                    e,
                )

    def _finish(
        self, batch: Prepared[E], applied: Future[BatchResult], stop: threading.Event
    ) -> None:
        while True:
            try:
                # Re-raises the writer's exception, Interrupted included.
                result = applied.result(timeout=self.settings.ops.report_interval_s)
                break
            except FutureTimeout:
                # A slow batch or a Redis outage: the lag must still be reported.
                self._maybe_report(self._assigned, batch)
        failpoint("after_apply_before_commit")
        self.commit(batch.records, stop)
        counts = result.counts
        self.totals.batches += 1
        for name in self.outcomes:
            self.totals.events[name] += counts.get(name, 0)
        for r in batch.records:
            self._last_ts[TopicPartition(r.topic, r.partition)] = r.timestamp
        self.metrics.batch_done(
            {name: counts.get(name, 0) for name in self.outcomes},
            len(batch.records),
            result.apply_s,
            result.freshness_ms,
            result.dead,
        )
        fresh = sorted(result.freshness_ms)
        p50 = int(fresh[len(fresh) // 2]) if fresh else None
        worst = int(fresh[-1]) if fresh else None
        outcomes = {name: counts.get(name, 0) for name in self.outcomes}
        log.info(
            "%s batch: %d records, %s, freshness p50 %s ms max %s ms, %.1f ms",
            self.kind,
            len(batch.records),
            ", ".join(f"{name} {n}" for name, n in outcomes.items()),
            "-" if p50 is None else p50,
            "-" if worst is None else worst,
            result.apply_s * 1e3,
            # The same figures as fields, for JSON logs (log_format = "json").
            extra={
                "topic": self.topic,
                "records": len(batch.records),
                "outcomes": outcomes,
                "freshness_p50_ms": p50,
                "freshness_max_ms": worst,
                "apply_ms": round(result.apply_s * 1e3, 3),
            },
        )

    # -- status -----------------------------------------------------------------------
    def lags(
        self, assigned: set[TopicPartition], pending: Prepared[E] | None
    ) -> dict[int, tuple[int | None, float | None]]:
        """Partition -> (messages, seconds) behind, from the fetch highwater marks, the
        batch in flight and the consumer's position."""
        oldest: dict[TopicPartition, Any] = {}
        for r in pending.records if pending is not None else ():
            tp = TopicPartition(r.topic, r.partition)
            if tp not in oldest or r.offset < oldest[tp].offset:
                oldest[tp] = r
        now_ms = int(time.time() * 1000)
        out: dict[int, tuple[int | None, float | None]] = {}
        for tp in assigned:
            first = oldest.get(tp)
            next_offset = first.offset if first is not None else self._position(tp)
            out[tp.partition] = lag_of(
                self.consumer.highwater(tp),
                next_offset,
                first.timestamp if first is not None else None,
                self._last_ts.get(tp),
                now_ms,
            )
        return out

    def _position(self, tp: TopicPartition) -> int | None:
        try:
            return int(self.consumer.position(tp, timeout_ms=0))
        except (KafkaError, TypeError, ValueError):
            return None  # not known yet (no offset fetched for it): lag unknown

    def _maybe_report(self, assigned: set[TopicPartition], pending: Prepared[E] | None) -> None:
        """About every ``ops.report_interval_s``: update the lag gauges and write this
        member's status report to Redis (a failure is counted and logged, not raised:
        the index is what matters, and the next report comes a second later)."""
        now = time.time()
        if now < self._next_report:
            return
        self._next_report = now + self.settings.ops.report_interval_s
        self.metrics.set_lag(self.lags(assigned, pending))
        try:
            self.board.publish(self.metrics.report(now))
        except rx.RedisError as e:
            if not self._report_failing:
                log.warning("%s consumer: status report not written: %s", self.kind, e)
            self._report_failing = True
            return
        if self._report_failing:
            log.info("%s consumer: status reports written again", self.kind)
        self._report_failing = False

    def close(self) -> None:
        try:
            self.board.withdraw(self.metrics.member)
        except rx.RedisError as e:
            log.warning("%s consumer: status report not withdrawn (it expires): %s", self.kind, e)
        self.consumer.close(autocommit=False)
        self.dlq.close()
        self.redis.close()


def install_stop_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: finishing the current batch, then stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_consumer(consumer: PipelinedConsumer[Any], metrics_port: int) -> int:
    """Serve /metrics; run until SIGTERM/SIGINT, then finish the batch, commit and close."""
    stop = threading.Event()
    install_stop_signals(stop)
    consumer.metrics.serve(consumer.settings.ops.metrics_host, metrics_port)
    try:
        consumer.run(stop)
    finally:
        consumer.close()
    log.info("%s consumer stopped: %s", consumer.kind, dict(consumer.totals.events))
    return 0
