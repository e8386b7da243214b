"""Crash between the Redis write and the offset commit: the restarted consumer converges.

The consumer process SIGKILLs itself (a fail point) after applying its 3rd batch to
Redis and before committing it. After a restart, the index must be identical, in
meaning, to the index a clean run builds from the same topic.
"""

from __future__ import annotations

import json
import random
import signal
from typing import Any

import pytest
import redis
from processes import committed, consumer_process, drain, publish

from rtindex.corpus import peoples_daily_paragraphs
from rtindex.indexer.dump import logical_dump
from rtindex.settings import Settings

pytestmark = pytest.mark.e2e
SEED = 20261122


def mixed_stream(n_docs: int, n_events: int) -> list[bytes]:
    """Upserts, patches and deletes with duplicates, stale versions and bad messages."""
    rng = random.Random(SEED)
    texts = peoples_daily_paragraphs()[:500]
    version = {f"pd-{i}": 0 for i in range(n_docs)}
    out: list[bytes] = []
    for _ in range(n_events):
        doc_id = rng.choice(list(version))
        roll = rng.random()
        if roll < 0.05:
            out.append(b'{"op": "upsert", "id": "' + doc_id.encode() + b'", "version": -1}')
            continue
        if roll < 0.12 and out:
            out.append(rng.choice(out))  # a duplicate (or a stale event, if overtaken)
            continue
        version[doc_id] += rng.randint(1, 2)
        ev: dict[str, Any] = {"id": doc_id, "version": version[doc_id], "ts": 1_795_389_000_000}
        if roll < 0.22:
            ev |= {"op": "delete"}
        elif roll < 0.40:
            ev |= {"op": "patch", "doc": {"price": rng.randint(1, 500), "body": rng.choice(texts)}}
        else:
            ev |= {
                "op": "upsert",
                "doc": {
                    "title": rng.choice(texts)[:20],
                    "body": rng.choice(texts),
                    "city": rng.choice(["北京", "上海", "杭州"]),
                    "price": rng.randint(1, 500),
                },
            }
        out.append(json.dumps(ev, ensure_ascii=False).encode())
    return out


def test_kill_between_apply_and_commit(topics: Settings, redis_client: redis.Redis) -> None:
    s = topics
    ends = publish(s, s.kafka.documents_topic, mixed_stream(n_docs=60, n_events=400), "id")
    crash_ns, clean_ns = s.redis.namespace + "c", s.redis.namespace + "k"
    crash_group, clean_group = s.kafka.documents_group + "-c", s.kafka.documents_group + "-k"

    proc = consumer_process(s, crash_ns, crash_group, "after_apply_before_commit=kill@3")
    assert proc.wait(timeout=120) == -signal.SIGKILL
    after_crash = committed(s, crash_group)
    assert sum(after_crash.values()) < sum(ends.values()), "the crashed batch must not be committed"
    assert redis_client.exists(f"{crash_ns}:{{s0}}:st"), "the crashed batch was written to Redis"

    drain(s, crash_ns, crash_group, ends)  # restart: the crashed batch is delivered again
    drain(s, clean_ns, clean_group, ends)  # a clean pass over the same topic
    n_text = len(s.index.schema_.text_fields)
    crashed = logical_dump(redis_client, crash_ns, 1, n_text)
    clean = logical_dump(redis_client, clean_ns, 1, n_text)
    assert crashed["docs"], "the stream must have produced documents"
    assert crashed == clean
