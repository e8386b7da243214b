"""A rebalance that refuses a batch's commit must not leave the committed offset behind.

kafka-python 3 keeps the fetch position of a partition that stays with the same member
across a rebalance, so a refused batch is not redelivered to that member. Unless the
refused offsets are committed again, the group's lag on the partition never drains
(the chaos test once timed out on exactly this: 2 records applied, never committed).
"""

from __future__ import annotations

import json
import threading

import pytest
from helpers import running, wait_until
from kafka import KafkaConsumer

from rtindex.consumers.documents import DocumentConsumer
from rtindex.consumers.kafka_config import kafka_client_config
from rtindex.consumers.publish import make_producer
from rtindex.consumers.topics import ensure_topics
from rtindex.settings import Settings

pytestmark = pytest.mark.integration

PER_PARTITION = 5


def publish_to_both_partitions(s: Settings) -> None:
    producer = make_producer(s)
    try:
        for p in (0, 1):
            for i in range(PER_PARTITION):
                doc = {"op": "upsert", "id": f"d{p}-{i}", "version": 1, "ts": 1, "doc": {"t": "x"}}
                producer.send(
                    s.kafka.documents_topic, value=json.dumps(doc).encode(), partition=p
                ).get(timeout=10)
    finally:
        producer.close()


def test_a_partition_kept_through_a_rebalance_gets_its_refused_commit(settings: Settings) -> None:
    s = settings
    topic = s.kafka.documents_topic
    ensure_topics(s, partitions=2)
    publish_to_both_partitions(s)
    a = DocumentConsumer(s)
    stop = threading.Event()
    # The loop's steps, driven by hand: poll everything and apply it to Redis...
    records: list[object] = []
    while len(records) < 2 * PER_PARTITION:
        polled = a.consumer.poll(timeout_ms=200)
        records += [r for tp in sorted(polled) for r in polled[tp]]
    a.process(records, stop)
    # ...then a second member joins, and the first starts rejoining before it commits:
    # a poll that returns mid-join, as the loop's short polls do while a join waits.
    other = KafkaConsumer(
        topic,
        **kafka_client_config(
            s,
            group_id=s.kafka.documents_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        ),
    )
    # Reads the group's committed offsets without joining it (the consumer under test
    # is not thread-safe, and its loop owns it).
    reader = KafkaConsumer(**kafka_client_config(s, group_id=s.kafka.documents_group))
    done = threading.Event()

    def member() -> None:
        while not done.is_set():
            other.poll(timeout_ms=100)

    joiner = threading.Thread(target=member, daemon=True)
    joiner.start()
    try:
        wait_until(lambda: a.consumer._coordinator.need_rejoin(), 30, message="a rebalance")
        a.consumer.poll(timeout_ms=0)
        assert a.consumer._coordinator.rebalance_in_progress(), "the join finished at once"
        a.commit(records, stop)
        assert a.totals.commit_failures == 1, "the commit was not refused"
        # Now the real loop: it finishes the join, keeps one partition with its position...
        with running(a):
            wait_until(
                lambda: len(other.assignment()) == len(a.consumer.assignment()) == 1,
                30,
                message="a split",
            )
            kept = set(a.consumer.assignment())
            other_side = set(other.assignment())
            assert len(kept) == 1 and kept != other_side
            # ...and must commit what it applied there, though nothing is redelivered.
            (tp,) = kept
            wait_until(
                lambda: reader.committed(tp) == PER_PARTITION,
                30,
                message=lambda: f"committed {reader.committed(tp)} of {PER_PARTITION}",
            )
            # The scenario this test is for: the kept partition was not redelivered.
            assert a.totals.batches == 0, "redelivered: the position was reset"
    finally:
        done.set()
        joiner.join(10)
        other.close()
        reader.close()


def test_the_poll_interval_setting_reaches_the_group_coordinator(settings: Settings) -> None:
    s = settings.with_overrides({"kafka": {"max_poll_interval_ms": 4_000}})
    c = DocumentConsumer(s)
    try:
        # The JoinGroup rebalance timeout and the member's own poll deadline.
        assert c.consumer._coordinator.config["max_poll_interval_ms"] == 4_000
        assert c.consumer._coordinator.heartbeat.config["max_poll_interval_ms"] == 4_000
    finally:
        c.close()
