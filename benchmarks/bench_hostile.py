"""Hostile input: a storm of bad messages on both topics, through `rtindex consume` processes.

    python benchmarks/bench_hostile.py [--quick] [--bad N] [--seed S] [--max-bytes B]

Workload (SYNTHETIC, seeded; benchmarks/hostile.py): N bad messages per topic (full
10,000 + 10,000, quick 1,000 + 1,000) of 17 kinds each, round robin: not UTF-8, truncated
and invalid JSON, NaN and Infinity, not an object, wrong types, missing and unknown
fields, unknown ``op`` / ``action``, negative and huge versions and timestamps, ids that
are empty, over 512 bytes or hold control characters, lone surrogates, JSON nested past
the parser's limit and docs nested past ``MAX_DOC_DEPTH``, schema violations, messages
over ``index.max_message_bytes`` (lowered to 4 KiB, so that they are cheap; the consumer
still fetches them), null values; behaviors also dated hours to years ahead. About one
valid event per four bad ones is interleaved, chosen to be weird: ids like ``*``,
``rti:{s0}:p:x``, ``a:b:c``, emoji, RTL, 512-byte ids, extreme versions and timestamps,
documents of exactly the size limit, Kafka keys that are not UTF-8.

One `rtindex consume documents` and one `rtindex consume behaviors` process (3 partitions
each, fresh Tansu and Valkey servers) first apply a warm-up event each (group join
excluded). Then they are paused (SIGSTOP) while the storm is published, their session
timeout raised to 20 s so that the pause costs no rebalance (on Tansu the first group
join takes about that long), and the clock runs from their resumption (SIGCONT) until
both groups have committed the end of every partition: the time two consumers on 2 cores
take to dead-letter or apply it all, not the producer's. Then the checks, each reported:
the DLQ holds exactly the bad messages (by source topic, partition and offset),
untouched, each with the reason the generator predicted; every valid event is applied
(documents read back from Redis and compared field by field, behavior counters per item
and action); every key on the server is under the namespace; both processes survived,
still apply a new event, and exit cleanly on SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import hostile
import redis
from common import log, save, servers, settings_env, settings_for, table
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from rtindex.consumers.kafka_config import kafka_client_config
from rtindex.consumers.publish import make_producer
from rtindex.consumers.topics import ensure_topics
from rtindex.indexer.analysis import Analyzer
from rtindex.indexer.keys import BehaviorKeys
from rtindex.query.search import Searcher, SearchRequest
from rtindex.runtime.servers import ManagedProcess
from rtindex.settings import Settings

SEED = 20260505
NAMESPACE = "hostile"


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s: {what}")
        time.sleep(interval)


def publish(s: Settings, topic: str, messages: list[Any]) -> dict[tuple[int, int], Any]:
    """Send the messages as they are; return them by (partition, offset)."""
    producer = make_producer(s)
    try:
        futures = [producer.send(topic, key=m.key, value=m.value) for m in messages]
        producer.flush()
        coords = [(md.partition, md.offset) for md in (f.get(timeout=60) for f in futures)]
    finally:
        producer.close()
    return dict(zip(coords, messages, strict=True))


class Groups:
    """Committed offsets of the consumer groups against the topics' end offsets."""

    def __init__(self, s: Settings) -> None:
        self.admin = KafkaAdminClient(**kafka_client_config(s))
        self.reader = KafkaConsumer(**kafka_client_config(s, group_id=None))

    def done(self, group: str, topic: str) -> bool:
        parts = self.reader.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        ends = {tp.partition: off for tp, off in self.reader.end_offsets(tps).items()}
        got = self.admin.list_group_offsets(group).get(group, {})
        committed = {tp.partition: om.offset for tp, om in got.items() if tp.topic == topic}
        return bool(tps) and all(committed.get(p, 0) >= end for p, end in ends.items())

    def close(self) -> None:
        self.admin.close()
        self.reader.close()


def read_dlq(s: Settings) -> list[Any]:
    reader = KafkaConsumer(**kafka_client_config(s, group_id=None, enable_auto_commit=False))
    try:
        topic = s.kafka.dlq_topic
        wait_for(lambda: reader.partitions_for_topic(topic), 30, "the DLQ topic")
        tps = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic))]
        reader.assign(tps)
        reader.seek_to_beginning(*tps)
        ends = reader.end_offsets(tps)
        letters: list[Any] = []

        def done() -> bool:
            for records in reader.poll(timeout_ms=200, max_records=10_000).values():
                letters.extend(records)
            return all(reader.position(tp) >= ends[tp] for tp in tps)

        wait_for(done, 120, "reading the DLQ", interval=0)
    finally:
        reader.close()
    return letters


def check_dlq(letters: list[Any], expected_bad: dict[tuple[str, int, int], Any]) -> dict[str, Any]:
    found: dict[tuple[str, int, int], Any] = {}
    twice = 0
    for letter in letters:
        h = {name: v.decode() for name, v in letter.headers}
        coords = (h["source_topic"], int(h["source_partition"]), int(h["source_offset"]))
        twice += coords in found
        found[coords] = (h, letter)
    missing = expected_bad.keys() - found.keys()
    unexpected = found.keys() - expected_bad.keys()
    wrong_reason = altered = no_error = 0
    for coords, m in expected_bad.items():
        if coords not in found:
            continue
        h, letter = found[coords]
        wrong_reason += h["reason"] != m.expect
        altered += letter.value != m.value or letter.key != m.key
        no_error += not h.get("error")
    return {
        "letters": len(letters),
        "by_reason": dict(Counter(h["reason"] for h, _ in found.values()).most_common()),
        "missing": len(missing),
        "unexpected": len(unexpected),
        "dead_lettered_twice": twice,
        "reason_not_predicted": wrong_reason,
        "value_or_key_altered": altered,
        "without_error_text": no_error,
        "examples": [str(x) for x in sorted(missing)[:3] + sorted(unexpected)[:3]],
    }


def run(quick: bool, n_bad: int | None, seed: int, max_bytes: int) -> dict[str, Any]:
    n = n_bad or (1_000 if quick else 10_000)
    with servers() as (kafka, rs):
        assert kafka is not None
        s = settings_for(
            kafka,
            rs,
            NAMESPACE,
            documents_topic="hostile.documents",
            behaviors_topic="hostile.behaviors",
            dlq_topic="hostile.dlq",
            documents_group="hostile-documents",
            behaviors_group="hostile-behaviors",
        ).with_overrides({"index": {"max_message_bytes": max_bytes}})
        k = s.kafka
        ensure_topics(s, partitions=3)
        env = {
            **settings_env(s),
            "RTINDEX_KAFKA__BEHAVIORS_TOPIC": k.behaviors_topic,
            "RTINDEX_KAFKA__BEHAVIORS_GROUP": k.behaviors_group,
            "RTINDEX_INDEX__MAX_MESSAGE_BYTES": str(max_bytes),
            # Paused (SIGSTOP) while the storm is published: no heartbeats meanwhile.
            "RTINDEX_KAFKA__SESSION_TIMEOUT_MS": "20000",
        }
        procs = {}
        for stream in ("documents", "behaviors"):
            log_path = Path(f"/tmp/rtindex-bench-hostile-{stream}.log")
            log_path.unlink(missing_ok=True)
            argv = [sys.executable, "-m", "rtindex", "consume", stream, "--metrics-port", "0"]
            procs[stream] = ManagedProcess(argv, log_path, env=env)
        groups = Groups(s)
        client = redis.Redis.from_url(s.redis.url)
        try:
            return _storm(s, n, seed, max_bytes, procs, groups, client)
        finally:
            groups.close()
            for p in procs.values():
                p.stop()


def _storm(
    s: Settings,
    n: int,
    seed: int,
    max_bytes: int,
    procs: dict[str, ManagedProcess],
    groups: Groups,
    client: redis.Redis,
) -> dict[str, Any]:
    k = s.kafka
    topic = {"documents": k.documents_topic, "behaviors": k.behaviors_topic}
    group = {"documents": k.documents_group, "behaviors": k.behaviors_group}
    now = int(time.time() * 1000)

    def event(stream: str, name: str) -> Any:
        if stream == "documents":
            raw = hostile.dumps(
                {"op": "upsert", "id": name, "version": 1, "ts": now, "doc": {"title": name}}
            )
        else:
            e = {"event_id": name, "user_id": name, "item_id": name, "action": "view"}
            raw = hostile.dumps(e | {"ts": now})
        return hostile.Message(stream, name, "valid", name.encode(), raw, None)

    def all_committed() -> bool:
        alive = [name for name, p in procs.items() if p.poll() is not None]
        if alive:
            raise RuntimeError(f"consumer process died: {alive}")
        return all(groups.done(group[x], topic[x]) for x in topic)

    # Warm-up: both groups joined and applying.
    for stream in topic:
        publish(s, topic[stream], [event(stream, "warm-up")])
    t0 = time.perf_counter()
    wait_for(all_committed, 180, "the warm-up events")
    log(f"consumers joined and applied a warm-up event in {time.perf_counter() - t0:.1f} s")

    t0 = time.perf_counter()
    docs = hostile.documents(n, seed, max_bytes=max_bytes)
    want = hostile.expected_documents(docs)
    items = [i for i in (*hostile.WEIRD_IDS, *hostile.SLASH_IDS) if i in want.live]
    behaviors = hostile.behaviors(n, seed + 1, now_ms=now, items=items, max_bytes=max_bytes)
    want_b = hostile.expected_behaviors(behaviors)
    generate_s = time.perf_counter() - t0
    log(f"generated {len(docs) + len(behaviors):,} messages in {generate_s:.1f} s")

    # The consumers are paused while the storm is published, so that the clock measures
    # them, not the producer (kafka-python, about 2,500 messages/s here).
    for p in procs.values():
        os.kill(p.pid, signal.SIGSTOP)
    try:
        t0 = time.perf_counter()
        sent = {
            "documents": publish(s, k.documents_topic, docs),
            "behaviors": publish(s, k.behaviors_topic, behaviors),
        }
        publish_s = time.perf_counter() - t0
    finally:
        for p in procs.values():
            os.kill(p.pid, signal.SIGCONT)
    t0 = time.perf_counter()
    done_at: dict[str, float] = {}

    def both_done() -> bool:
        all_committed()  # raises if a process died
        for x in topic:
            if x not in done_at and groups.done(group[x], topic[x]):
                done_at[x] = time.perf_counter() - t0
        return len(done_at) == len(topic)

    wait_for(both_done, 600, "the storm to be consumed", interval=0.05)
    consume_s = max(done_at.values())
    log(f"published in {publish_s:.1f} s; all committed {consume_s:.1f} s after resuming")

    # -- checks -------------------------------------------------------------------------
    t_check = time.perf_counter()
    expected_bad = {
        (topic[x], p, o): m for x in topic for (p, o), m in sent[x].items() if not m.valid
    }
    dlq = check_dlq(read_dlq(s), expected_bad)
    searcher = Searcher(client, s, Analyzer(s.analysis))
    stats = searcher.index_stats()
    docs_differ = [
        doc_id
        for doc_id, doc in want.live.items()
        if (got := searcher.get_document(doc_id)) is None or got["doc"] != doc
    ]
    deleted_visible = [d for d in want.deleted if searcher.get_document(d) is not None]
    marker_total = searcher.search(SearchRequest(q=hostile.MARKER, k=1))["total"]
    bkeys = BehaviorKeys(s.redis.namespace, s.behavior.shards)
    b_applied = sum(int(client.hget(bkeys.stats(i), "applied") or 0) for i in range(bkeys.shards))
    counted: Counter[tuple[str, str]] = Counter()
    for item in items:
        for shard in range(bkeys.shards):
            for action, c in client.hgetall(bkeys.counters(shard, item)).items():
                counted[item, action.decode()] += int(c)
    n_keys = 0
    outside: list[str] = []
    for key in client.scan_iter(count=10_000):
        n_keys += 1
        if not key.startswith(f"{s.redis.namespace}:".encode()):
            outside.append(key.decode("utf-8", "replace"))
    alive_after = all(p.poll() is None for p in procs.values())
    for stream in topic:
        publish(s, topic[stream], [event(stream, "after-the-storm")])
    wait_for(all_committed, 60, "the event after the storm")
    final_applied = (
        searcher.get_document("after-the-storm") is not None
        and int(client.hget(bkeys.stats(bkeys.shard_of("after-the-storm")), "applied") or 0) >= 1
    )
    exits = {name: p.stop() for name, p in procs.items()}
    log(f"checked in {time.perf_counter() - t_check:.1f} s")

    n_valid = {
        x: sum(m.valid for m in ms) for x, ms in (("documents", docs), ("behaviors", behaviors))
    }
    n_badx = {
        x: sum(not m.valid for m in ms) for x, ms in (("documents", docs), ("behaviors", behaviors))
    }
    checks = {
        "dlq: exactly the bad messages": dlq["missing"] == dlq["unexpected"] == 0
        and dlq["dead_lettered_twice"] == 0,
        "dlq: each with the predicted reason": dlq["reason_not_predicted"] == 0,
        "dlq: value and key untouched, error text set": dlq["value_or_key_altered"]
        == dlq["without_error_text"]
        == 0,
        "documents: every valid one applied, as sent": not docs_differ
        and not deleted_visible
        and stats["documents"] == len(want.live) + 1  # + the warm-up document
        and stats["tombstones"] == len(want.deleted)
        and marker_total == sum(hostile.MARKER in d.get("body", "") for d in want.live.values()),
        "behaviors: every valid one applied once": b_applied == n_valid["behaviors"] + 1
        and counted == want_b.counters,
        "redis: no key outside the namespace": not outside,
        "consumers alive after the storm": alive_after,
        "consumers apply an event after the storm": final_applied,
        "consumers exit cleanly on SIGTERM": all(code == 0 for code in exits.values()),
    }
    total = len(docs) + len(behaviors)
    return {
        "seed": seed,
        "max_message_bytes": max_bytes,
        "messages": {
            x: {"bad": n_badx[x], "valid": n_valid[x], "consumed_s": round(done_at[x], 2)}
            for x in topic
        },
        "categories": hostile.categories(docs + behaviors),
        "generate_s": round(generate_s, 2),
        "publish_s": round(publish_s, 2),
        "consume_s": round(consume_s, 2),
        "messages_per_s": round(total / consume_s),
        "bad_per_s": round((n_badx["documents"] + n_badx["behaviors"]) / consume_s),
        "dlq": dlq,
        "applied": {
            "documents_live": stats["documents"] - 1,
            "documents_tombstones": stats["tombstones"],
            "documents_differing": len(docs_differ),
            "behavior_events": b_applied - 1,
        },
        "keys": {"total": n_keys, "outside_namespace": outside[:10]},
        "exit_codes": exits,
        "checks": checks,
    }


def render(r: dict[str, Any]) -> str:
    msgs, dlq, ap = r["messages"], r["dlq"], r["applied"]
    bad = sum(x["bad"] for x in msgs.values())
    valid = sum(x["valid"] for x in msgs.values())
    cats = [
        [name, ", ".join(f"{reason} {n:,}" for reason, n in outcome.items())]
        for name, outcome in r["categories"].items()
    ]
    summary = [
        [
            "bad messages (documents + behaviors)",
            f"{msgs['documents']['bad']:,} + {msgs['behaviors']['bad']:,}",
        ],
        [
            "valid events interleaved",
            f"{msgs['documents']['valid']:,} + {msgs['behaviors']['valid']:,}",
        ],
        ["dead letters read back", f"{dlq['letters']:,} (expected {bad:,})"],
        ["dead letters by reason", ", ".join(f"{k} {v:,}" for k, v in dlq["by_reason"].items())],
        [
            "documents applied (live / tombstones)",
            f"{ap['documents_live']:,} / {ap['documents_tombstones']:,}",
        ],
        ["behavior events applied", f"{ap['behavior_events']:,}"],
        ["publish time", f"{r['publish_s']:.1f} s"],
        [
            "consumers resumed -> all committed",
            f"{r['consume_s']:.1f} s ({r['messages_per_s']:,} messages/s, "
            f"{r['bad_per_s']:,} bad/s)",
        ],
        [
            "per topic",
            f"documents {msgs['documents']['consumed_s']:.1f} s, "
            f"behaviors {msgs['behaviors']['consumed_s']:.1f} s",
        ],
        [
            "keys on the server (outside the namespace)",
            f"{r['keys']['total']:,} ({len(r['keys']['outside_namespace'])})",
        ],
    ]
    checks = [[name, "passed" if ok else "FAILED"] for name, ok in r["checks"].items()]
    return "\n\n".join(
        [
            f"{bad + valid:,} messages, `index.max_message_bytes` = {r['max_message_bytes']:,}, "
            f"seed {r['seed']}.",
            table(["", "value"], summary),
            table(["check", "result"], checks),
            "Messages by kind (expected outcome and count):",
            table(["topic/kind", "expected"], cats),
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1,000 bad messages per topic")
    ap.add_argument("--bad", type=int, default=None, help="bad messages per topic")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--max-bytes", type=int, default=4096, help="index.max_message_bytes")
    args = ap.parse_args()
    result = run(args.quick, args.bad, args.seed, args.max_bytes)
    save("hostile", {"quick": args.quick, **result})
    print(render(result))
    failed = [name for name, ok in result["checks"].items() if not ok]
    if failed:
        sys.exit(f"FAILED: {', '.join(failed)}")


if __name__ == "__main__":
    main()
