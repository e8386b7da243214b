"""Behavior counters are not idempotent: crashes and stale offsets must still count once.

1. A `rtindex consume behaviors` process is SIGKILLed between its Redis write and its
   offset commit, three times; after a restart drains the topic, every behavior key is
   byte for byte what one clean pass over the same topic builds.
2. Offsets recorded in Redis are checked against the broker when partitions are
   assigned: a recreated topic (offsets restart at 0) does not make new events look like
   redeliveries, while a genuine redelivery to a new consumer group is still skipped.
"""

from __future__ import annotations

import json
import random
import signal
import threading
from typing import Any

import pytest
import redis
from helpers import wait_until
from processes import committed, consumer_process, drain, publish

from rtindex.consumers.behaviors import BehaviorConsumer
from rtindex.consumers.topics import ensure_topics
from rtindex.indexer.analysis import Analyzer
from rtindex.indexer.batch import index_documents
from rtindex.indexer.dump import dump_namespace
from rtindex.indexer.events import UpsertEvent
from rtindex.indexer.store import DocumentStore
from rtindex.settings import ACTIONS, Settings

pytestmark = pytest.mark.e2e
SEED = 20261123
T0 = 1_795_389_111_326


def behavior_stream(n: int) -> list[bytes]:
    """Clicks and purchases of 30 users on 40 items, with re-sent events and bad ones."""
    rng = random.Random(SEED)
    out: list[bytes] = []
    ts = T0
    for i in range(n):
        roll = rng.random()
        if roll < 0.04:
            out.append(b'{"event_id": "x", "user_id": "u1", "action": "click"}')  # no item
            continue
        if roll < 0.14 and out:
            out.append(rng.choice(out[-20:]))  # re-sent (a duplicate event id)
            continue
        ts += rng.choice([0, 500, 20_000, 300_000])
        event = {
            "event_id": f"ev-{i}",
            "user_id": f"u{rng.randint(0, 29)}",
            "item_id": f"item-{int(rng.paretovariate(1.0)) % 40}",
            "action": rng.choice(ACTIONS),
            "ts": ts,
        }
        out.append(json.dumps(event).encode())
    return out


def index_catalog(settings: Settings, namespace: str, client: redis.Redis) -> None:
    s = settings.with_overrides({"redis": {"namespace": namespace}})
    store = DocumentStore(client, s)
    store.ensure_layout()
    docs = [
        UpsertEvent(
            op="upsert",
            id=f"item-{j}",
            version=1,
            ts=T0,
            doc={"title": f"item {j}", "category": f"c{j % 4}", "tags": [f"t{j % 3}"]},
        )
        for j in range(40)
    ]
    index_documents(store, docs, Analyzer(s.analysis).tokens)


def behavior_keys(client: redis.Redis, namespace: str) -> dict[bytes, Any]:
    prefix = f"{namespace}:{{b".encode()
    return {
        k[len(namespace) :]: v
        for k, v in dump_namespace(client, namespace).items()
        if k.startswith(prefix)
    }


def test_kill_between_apply_and_commit_counts_every_event_once(
    settings: Settings, redis_client: redis.Redis
) -> None:
    # One partition: item-level lists merge events of many users, and their exact bytes
    # depend on the order events reach them, which only one partition fixes.
    ensure_topics(settings, partitions=1)
    s = settings
    ends = publish(s, s.kafka.behaviors_topic, behavior_stream(600))
    crash_ns, clean_ns = s.redis.namespace + "c", s.redis.namespace + "k"
    crash_group, clean_group = s.kafka.behaviors_group + "-c", s.kafka.behaviors_group + "-k"
    for ns in (crash_ns, clean_ns):
        index_catalog(s, ns, redis_client)

    for nth in (3, 2, 4):
        proc = consumer_process(
            s,
            crash_ns,
            crash_group,
            f"after_apply_before_commit=kill@{nth}",
            stream="behaviors",
        )
        assert proc.wait(timeout=120) == -signal.SIGKILL
    assert sum(committed(s, crash_group).values()) < sum(ends.values())

    drain(s, crash_ns, crash_group, ends, stream="behaviors")
    drain(s, clean_ns, clean_group, ends, stream="behaviors")
    crashed = behavior_keys(redis_client, crash_ns)
    clean = behavior_keys(redis_client, clean_ns)
    assert any(k.startswith(b":{b0}:nb:") for k in clean), "co-occurrence must be exercised"
    assert crashed == clean


def run_until(consumer: BehaviorConsumer, total: int) -> None:
    stop = threading.Event()
    t = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    t.start()
    try:
        wait_until(lambda: sum(consumer.totals.events.values()) >= total, timeout=60)
    finally:
        stop.set()
        t.join(timeout=30)
        consumer.close()


def test_offsets_of_a_recreated_topic_are_dropped_and_genuine_ones_kept(
    topics: Settings, redis_client: redis.Redis
) -> None:
    s = topics.with_overrides({"kafka": {"max_batch": 1000}})
    ns, topic = s.redis.namespace, s.kafka.behaviors_topic
    stats = f"{ns}:{{b0}}:bs"
    # Left over from an earlier incarnation of the topic: far past its current end.
    for p in range(3):
        redis_client.hset(stats, mapping={f"o:{topic}:{p}": 1000, f"f:{topic}:{p}": "0" * 16})
    events = [
        {"event_id": f"e{i}", "user_id": f"u{i}", "item_id": "x", "action": "view", "ts": T0}
        for i in range(6)
    ]
    publish(s, s.kafka.behaviors_topic, [json.dumps(e).encode() for e in events], "user_id")

    first = BehaviorConsumer(s)
    run_until(first, 6)
    assert first.totals.events["applied"] == 6
    assert redis_client.hget(f"{ns}:{{b0}}:ic:x", "view") == b"6"
    assert all(int(redis_client.hget(stats, f"o:{topic}:{p}") or -1) < 1000 for p in range(3))

    # A new group reads the same records again: the offsets are genuine, so they are
    # recognised as redeliveries and nothing is counted twice.
    second = BehaviorConsumer(s, group=s.kafka.behaviors_group + "-again")
    run_until(second, 6)
    assert second.totals.events["redelivered"] == 6
    assert redis_client.hget(f"{ns}:{{b0}}:ic:x", "view") == b"6"
