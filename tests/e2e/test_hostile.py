"""Hostile input through real Kafka, Redis and HTTP (issue 5, "Hostile input").

A seeded storm of bad messages of every kind (benchmarks/hostile.py) interleaved with
valid, deliberately weird events, on both topics at once. Then: every bad message is in
the DLQ, untouched, with the reason predicted for it and its source coordinates, and no
other message is; every valid one is applied (documents fetched back over HTTP, behavior
counters read back from Redis, recall answering for weird ids); the consumers are alive
and still consume; and no key outside the test's namespace exists on the test's own
Redis server. Also: hostile requests to the query service, and regression tests of two
bugs it found (an id with a "/" over HTTP; a message over the DLQ producer's own size limit).

``HOSTILE_BAD`` (default 10,000) is the number of bad messages, split between the topics;
``benchmarks/bench_hostile.py`` runs the same storm as a benchmark, with consumer processes.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import redis
from helpers import load_benchmark, wait_until
from kafka import KafkaConsumer, TopicPartition

from rtindex.consumers.behaviors import BehaviorConsumer
from rtindex.consumers.documents import DocumentConsumer
from rtindex.consumers.kafka_config import kafka_client_config
from rtindex.consumers.pipeline import PipelinedConsumer
from rtindex.consumers.publish import make_producer
from rtindex.indexer.keys import BehaviorKeys
from rtindex.query.search import Searcher
from rtindex.runtime.servers import RedisServer
from rtindex.settings import Settings

pytestmark = pytest.mark.e2e

N_BAD = int(os.environ.get("HOSTILE_BAD", "10000"))
MAX_BYTES = 4096  # index.max_message_bytes: small, so that over-size messages are cheap
SEED = 5


hostile = load_benchmark("hostile")


@pytest.fixture(scope="module")
def own_redis() -> Iterator[RedisServer]:
    """A Redis server for this module alone: any key outside the namespace is ours."""
    with RedisServer.start() as server:
        yield server


@pytest.fixture
def settings(settings: Settings, own_redis: RedisServer) -> Settings:
    """Overrides conftest's: the module's own Redis, and a 4 KiB message size limit."""
    return settings.with_overrides(
        {"redis": {"url": own_redis.url}, "index": {"max_message_bytes": MAX_BYTES}}
    )


@contextmanager
def in_thread(consumer: PipelinedConsumer[Any]) -> Iterator[threading.Thread]:
    """Run a consumer in a thread (like helpers.running), handing out the thread."""
    stop = threading.Event()
    t = threading.Thread(target=consumer.run, args=(stop,), name=f"hostile-{consumer.kind}")
    t.daemon = True
    t.start()
    try:
        yield t
    finally:
        stop.set()
        t.join(timeout=30)
        consumer.close()
        assert not t.is_alive(), "the consumer did not stop"


def publish(settings: Settings, topic: str, messages: list[Any]) -> dict[tuple[int, int], Any]:
    """Send every message as it is; return them by their (partition, offset)."""
    producer = make_producer(settings)
    try:
        futures = [producer.send(topic, key=m.key, value=m.value) for m in messages]
        producer.flush()
        coords = [(md.partition, md.offset) for md in (f.get(timeout=30) for f in futures)]
    finally:
        producer.close()
    return dict(zip(coords, messages, strict=True))


def read_dlq(settings: Settings, expected: int) -> list[Any]:
    """Every dead letter, from offset 0 to the end of every partition of the DLQ topic."""
    reader = KafkaConsumer(**kafka_client_config(settings, group_id=None, enable_auto_commit=False))
    try:
        parts = wait_until(
            lambda: reader.partitions_for_topic(settings.kafka.dlq_topic), timeout=30
        )
        tps = [TopicPartition(settings.kafka.dlq_topic, p) for p in sorted(parts)]
        reader.assign(tps)
        reader.seek_to_beginning(*tps)
        ends = reader.end_offsets(tps)
        letters: list[Any] = []

        def done() -> bool:
            for records in reader.poll(timeout_ms=200, max_records=5000).values():
                letters.extend(records)
            return all(reader.position(tp) >= ends[tp] for tp in tps)

        wait_until(done, timeout=60, message=lambda: f"{len(letters)} of {expected} letters")
    finally:
        reader.close()
    return letters


def settled(consumer: PipelinedConsumer[Any], n: int) -> bool:
    return sum(consumer.totals.events.values()) >= n


def test_a_storm_of_bad_messages_on_both_topics(
    topics: Settings, api: httpx.Client, redis_client: redis.Redis
) -> None:
    s = topics  # 3 partitions each
    ns, k = s.redis.namespace, s.kafka
    t0 = time.perf_counter()
    docs = hostile.documents(N_BAD // 2, SEED, max_bytes=MAX_BYTES)
    want = hostile.expected_documents(docs)
    versions = {m.event["id"]: m.event["version"] for m in docs if m.valid}
    items = [i for i in (*hostile.WEIRD_IDS, *hostile.SLASH_IDS) if i in want.live]
    now = int(time.time() * 1000)
    behaviors = hostile.behaviors(
        N_BAD - N_BAD // 2, SEED, now_ms=now, items=items, max_bytes=MAX_BYTES
    )
    want_b = hostile.expected_behaviors(behaviors)
    bad_docs = [m for m in docs if not m.valid]
    bad_behaviors = [m for m in behaviors if not m.valid]
    assert len(bad_docs) + len(bad_behaviors) == N_BAD
    generated = time.perf_counter()

    doc_consumer, behavior_consumer = DocumentConsumer(s), BehaviorConsumer(s)
    with in_thread(doc_consumer) as doc_thread, in_thread(behavior_consumer) as behavior_thread:
        sent_docs = publish(s, k.documents_topic, docs)
        sent_behaviors = publish(s, k.behaviors_topic, behaviors)
        published = time.perf_counter()

        def all_consumed() -> bool:
            # A consumer that died (a bug, not bad input) fails the test at once.
            assert doc_thread.is_alive() and behavior_thread.is_alive(), "a consumer died"
            return settled(doc_consumer, len(docs)) and settled(behavior_consumer, len(behaviors))

        wait_until(
            all_consumed,
            timeout=240,
            interval=0.2,
            message=lambda: f"{doc_consumer.totals} {behavior_consumer.totals}",
        )
        consumed = time.perf_counter()

        # Every valid event applied, every bad one counted as invalid, nothing else.
        n_valid_docs = len(docs) - len(bad_docs)
        n_valid_behaviors = len(behaviors) - len(bad_behaviors)
        assert dict(doc_consumer.totals.events) == {
            "applied": n_valid_docs,
            "stale": 0,
            "duplicate": 0,
            "invalid": len(bad_docs),
        }
        assert dict(behavior_consumer.totals.events) == {
            "applied": n_valid_behaviors,
            "duplicate": 0,
            "redelivered": 0,
            "invalid": len(bad_behaviors),
        }
        assert doc_consumer.totals.dlq_reasons == Counter(m.expect for m in bad_docs)
        assert behavior_consumer.totals.dlq_reasons == Counter(m.expect for m in bad_behaviors)

        # The DLQ holds exactly the bad messages, untouched, each with its reason.
        letters = read_dlq(s, N_BAD)
        found: dict[tuple[str, int, int], Any] = {}
        for letter in letters:
            h = {name: v.decode() for name, v in letter.headers}
            coords = (h["source_topic"], int(h["source_partition"]), int(h["source_offset"]))
            assert coords not in found, f"dead-lettered twice: {coords}"
            found[coords] = letter
            assert h["reason"] in hostile.REASONS and h["error"], h
            assert h["consumer_group"] in (k.documents_group, k.behaviors_group)
        expected_bad = {
            (topic, p, o): m
            for topic, sent in ((k.documents_topic, sent_docs), (k.behaviors_topic, sent_behaviors))
            for (p, o), m in sent.items()
            if not m.valid
        }
        assert found.keys() == expected_bad.keys(), (
            f"missing {sorted(expected_bad.keys() - found.keys())[:5]}, "
            f"unexpected {sorted(found.keys() - expected_bad.keys())[:5]}"
        )
        wrong = []
        for coords, m in expected_bad.items():
            letter = found[coords]
            reason = dict(letter.headers)["reason"].decode()
            if reason != m.expect or letter.value != m.value or letter.key != m.key:
                wrong.append((m.category, m.expect, reason, (m.value or b"")[:80]))
        assert not wrong, f"{len(wrong)} letters differ, e.g. {wrong[:5]}"
        client = redis_client  # the module's own server
        tally = {f.decode(): int(v) for f, v in client.hgetall(f"{ns}:ops:dlq").items()}
        assert tally == dlq_tally(k.documents_topic, bad_docs) | dlq_tally(
            k.behaviors_topic, bad_behaviors
        )

        # Documents: each valid one is there, fetched back by its id over HTTP.
        stats = api.get("/stats").json()["index"]
        assert stats["documents"] == len(want.live) and stats["tombstones"] == len(want.deleted)
        hits = api.get("/search", params={"q": hostile.MARKER, "k": 1}).json()
        marked = [d for d in want.live.values() if hostile.MARKER in d.get("body", "")]
        assert hits["total"] == len(marked) and len(marked) > len(want.live) * 0.8
        searcher = Searcher(client, s, doc_consumer.analyzer)
        for i, (doc_id, doc) in enumerate(want.live.items()):
            if "/" in doc_id:
                # GET /docs/{id} cannot name these (test_an_id_with_a_slash_over_http):
                # read them as the query service does.
                got = searcher.get_document(doc_id)
                assert got is not None and got["doc"] == doc, doc_id
            elif doc_id in hostile.WEIRD_IDS or i % 5 == 0:
                r = api.get(doc_url(doc_id))
                assert r.status_code == 200, (doc_id, r.text)
                assert r.json() == {"id": doc_id, "version": versions[doc_id], "doc": doc}
        for doc_id in want.deleted:
            assert api.get(doc_url(doc_id)).status_code == 404

        # Behaviors: each valid event counted once, under its user's shard.
        bkeys = BehaviorKeys(ns, s.behavior.shards)
        applied = sum(int(client.hget(bkeys.stats(i), "applied") or 0) for i in range(bkeys.shards))
        assert applied == n_valid_behaviors
        counted: Counter[tuple[str, str]] = Counter()
        for item in items:
            for shard in range(bkeys.shards):
                for action, n in client.hgetall(bkeys.counters(shard, item)).items():
                    counted[item, action.decode()] += int(n)
        assert counted == want_b.counters
        live = set(want.live)
        similar = {}
        for item in items:
            r = api.get("/similar", params={"item_id": item, "k": 50})
            assert r.status_code == 200, (item, r.text)
            similar[item] = {i["id"] for i in r.json()["items"]}
            assert similar[item] <= live, item
        assert sum(bool(v) for v in similar.values()) > len(items) // 2  # weird ids co-occur
        for user in want_b.users:
            r = api.get("/recommend", params={"user_id": user, "k": 20})
            assert r.status_code == 200 and {i["id"] for i in r.json()["items"]} <= live
        r = api.get("/trending", params={"k": 100})
        assert r.status_code == 200 and {i["id"] for i in r.json()["items"]} <= live

        # The consumers survived the storm and still consume.
        assert doc_thread.is_alive() and behavior_thread.is_alive()
        final_doc = b'{"op":"upsert","id":"final","version":1,"ts":1,"doc":{"title":"after"}}'
        final_click = {"event_id": "final", "user_id": "u", "item_id": "final", "action": "like"}
        publish(s, k.documents_topic, [hostile.Message("documents", "", "valid", None, final_doc)])
        publish(
            s,
            k.behaviors_topic,
            [
                hostile.Message(
                    "behaviors", "", "valid", None, hostile.dumps(final_click | {"ts": now})
                )
            ],
        )
        wait_until(lambda: doc_consumer.totals.events["applied"] == n_valid_docs + 1, timeout=30)
        wait_until(
            lambda: behavior_consumer.totals.events["applied"] == n_valid_behaviors + 1, timeout=30
        )
        assert api.get("/docs/final").json()["doc"] == {"title": "after"}

    # No key outside the namespace, on a server nobody else writes to.
    keys = [key.decode("utf-8", "replace") for key in client.scan_iter(count=10_000)]
    outside = [key for key in keys if not key.startswith(f"{ns}:")]
    assert keys and not outside, outside[:10]
    assert set(client.info("keyspace")) <= {"db0"}
    print(
        f"\nhostile: {N_BAD} bad + {n_valid_docs + n_valid_behaviors} valid messages; "
        f"generated {generated - t0:.1f} s, published {published - generated:.1f} s, "
        f"consumed {consumed - published:.1f} s, checked {time.perf_counter() - consumed:.1f} s"
    )


def doc_url(doc_id: str) -> str:
    """GET /docs/{id}, every byte that is not a letter or digit percent-encoded: dots too,
    or a client removes "." and ".." as dot segments."""
    return "/docs/" + quote(doc_id, safe="").replace(".", "%2E")


def dlq_tally(topic: str, bad: list[Any]) -> dict[str, int]:
    return {f"{topic}|{reason}": n for reason, n in Counter(m.expect for m in bad).items()}


def test_an_id_with_a_slash_over_http(consumer: DocumentConsumer, api: httpx.Client) -> None:
    s = consumer.settings
    messages = [
        hostile.Message(
            "documents",
            "slash_id",
            "valid",
            None,
            hostile.dumps({"op": "upsert", "id": i, "version": 1, "ts": 1, "doc": {"title": i}}),
        )
        for i in hostile.SLASH_IDS
    ]
    publish(s, s.kafka.documents_topic, messages)
    wait_until(lambda: consumer.totals.events["applied"] == len(messages), timeout=30)
    statuses = {i: api.get(doc_url(i)).status_code for i in hostile.SLASH_IDS}
    assert statuses == dict.fromkeys(hostile.SLASH_IDS, 200)


# Raw query strings and paths: percent-encoded invalid UTF-8 and surrogates included.
HOSTILE_REQUESTS = [
    "/search?q=%ED%A0%80",
    "/search?q=%FF%FE",
    "/search?q=%00",
    "/search?q=a%00b",
    "/search?q=" + "%CC%81" * 1000,
    "/search?q=" + "%F0%9F%98%80" * 1000,
    "/search?q=" + "x" * 1000,
    "/search?q=" + "%E5%8C%97" * 1000,
    "/search?q=*",
    "/search?q=rti%3A%7Bs0%7D%3Ap%3Ax",
    "/search?q=%20",
    "/search?q=hostilevalid&tag=*&tag=a%3Ab&category=%FF",
    "/search?q=hostilevalid&city=%00&op=and",
    "/search?q=hostilevalid&price_min=nan",
    "/search?q=hostilevalid&price_max=1e309",
    "/search?q=hostilevalid&price_min=-1e308&price_max=1e308",
    "/search?q=hostilevalid&lat=90&lon=180&radius_km=20037.6",
    "/search?q=hostilevalid&lat=nan&lon=0&radius_km=1",
    "/search?q=hostilevalid&user_id=%FF",
    "/search?q=hostilevalid&user_id=%00",
    "/search?q=hostilevalid&k=0&offset=10000",
    "/search?q=hostilevalid&k=99999999999999999999999",
    "/search?q=hostilevalid&q=again",
    "/docs/%FF",
    "/docs/%ED%A0%80",
    "/docs/%00",
    "/docs/" + "%F0%9F%98%80" * 129,
    "/docs/*",
    "/similar?item_id=%FF",
    "/similar?item_id=%00",
    "/similar?item_id=*&k=1000",
    "/recommend?user_id=%ED%A0%80",
    "/recommend?user_id=%2A",
    "/trending?category=%ED%A0%80",
    "/trending?category=*&k=0",
]


def test_hostile_requests_never_fail_the_service(
    consumer: DocumentConsumer, api: httpx.Client
) -> None:
    """The query side of hostile input: invalid UTF-8, NUL, lone surrogates (as their
    UTF-8 bytes), 1,000 combining marks or emoji, pattern-like ids and terms, NaN and
    overflowing numbers. An answer or a 4xx with a reason, never a server error."""
    s = consumer.settings
    docs = [m for m in hostile.documents(50, SEED, max_bytes=MAX_BYTES) if m.valid]
    publish(s, s.kafka.documents_topic, docs)
    wait_until(lambda: consumer.totals.events["applied"] == len(docs), timeout=30)
    answers = {}
    for url in HOSTILE_REQUESTS:
        r = api.get(url)
        answers[url[:60]] = r.status_code
        assert r.status_code in (200, 404, 422), (url[:80], r.status_code, r.text[:200])
        assert isinstance(r.json(), dict)
        if r.status_code != 200:
            assert r.json()["detail"], url
    assert answers["/docs/*"] == 200 and answers["/search?q=hostilevalid&price_min=nan"] == 422
    assert api.get("/healthz").status_code == 200


def test_a_message_over_the_dlq_producers_own_limit(topics: Settings) -> None:
    """A broker may take messages larger than rtindex's DLQ producer will send (Tansu
    does; Kafka does when message.max.bytes allows). Such a message must still be
    dead-lettered (a truncated copy, as when the broker refuses the original), and the
    consumer must carry on."""
    s = topics
    huge = b"x" * (17 << 20)  # over max(4 x index.max_message_bytes, 16 MiB)
    after = b'{"op":"delete","id":"after","version":1,"ts":1}'
    consumer = DocumentConsumer(s)
    with in_thread(consumer) as thread:
        producer = make_producer(s, max_request_size=32 << 20)
        try:
            for value in (huge, after):
                producer.send(s.kafka.documents_topic, key=b"one", value=value).get(timeout=60)
        finally:
            producer.close()

        def carried_on() -> bool:
            assert thread.is_alive(), "the consumer died"
            return consumer.totals.events["applied"] == 1

        wait_until(carried_on, timeout=60, message=lambda: str(consumer.totals))
    letters = read_dlq(s, 1)
    assert len(letters) == 1 and dict(letters[0].headers)["reason"] == b"too_large"
