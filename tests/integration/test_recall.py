"""Recall on a real Valkey: user-sharded state answers like one shard does."""

from __future__ import annotations

import random

import pytest
import redis

from rtindex.indexer.analysis import Analyzer
from rtindex.indexer.batch import index_documents
from rtindex.indexer.behavior import Located
from rtindex.indexer.behavior_batch import index_behaviors
from rtindex.indexer.behavior_store import BehaviorStore
from rtindex.indexer.events import BehaviorEvent, DeleteEvent, UpsertEvent
from rtindex.indexer.store import DocumentStore
from rtindex.query.recall import Recaller
from rtindex.settings import ACTIONS, Settings

pytestmark = pytest.mark.integration
T0 = 1_795_389_111_326


def build(settings: Settings, client: redis.Redis, namespace: str, shards: int) -> Recaller:
    s = settings.with_overrides({"redis": {"namespace": namespace}, "behavior": {"shards": shards}})
    docs = DocumentStore(client, s)
    docs.ensure_layout()
    index_documents(
        docs,
        [
            UpsertEvent(
                op="upsert",
                id=f"i{j}",
                version=1,
                ts=T0,
                doc={"title": f"item {j}", "category": f"c{j % 3}", "tags": [f"t{j % 4}"]},
            )
            for j in range(30)
        ],
        Analyzer(s.analysis).tokens,
    )
    store = BehaviorStore(client, s)
    store.ensure_layout()
    rng = random.Random(7)
    events = []
    ts = T0
    for n in range(400):
        ts += rng.choice([1_000, 30_000, 200_000])
        events.append(
            BehaviorEvent(
                event_id=f"e{n}",
                user_id=f"u{rng.randint(0, 24)}",
                item_id=f"i{int(rng.paretovariate(1.2)) % 30}",
                action=rng.choice(ACTIONS),
                ts=ts,
            )
        )
    for i in range(0, len(events), 50):
        index_behaviors(
            store, [Located(e, "b", 0, i + j) for j, e in enumerate(events[i : i + 50])]
        )
    return Recaller(client, s)


def ranked(result: dict[str, object]) -> list[tuple[str, float]]:
    items = result["items"]
    assert isinstance(items, list)
    return [(x["id"], round(x["score"], 9)) for x in items]


def test_three_user_shards_answer_like_one(settings: Settings, redis_client: redis.Redis) -> None:
    one = build(settings, redis_client, settings.redis.namespace + "a", 1)
    three = build(settings, redis_client, settings.redis.namespace + "b", 3)
    assert len({three.keys.shard_of(f"u{u}") for u in range(25)}) == 3
    for item in ("i1", "i2", "i5"):
        assert ranked(one.similar(item, 10)) == ranked(three.similar(item, 10))
        assert ranked(one.similar(item, 10)), "co-occurrence must be exercised"
    for user in ("u1", "u7", "u20", "nobody"):
        assert ranked(one.recommend(user, 15)) == ranked(three.recommend(user, 15))
    for category in (None, "c0", "c2"):
        assert ranked(one.trending(10, category)) == ranked(three.trending(10, category))
    assert one.behavior_stats()["users"] == three.behavior_stats()["users"] == 25


def test_deleted_items_are_never_returned(settings: Settings, redis_client: redis.Redis) -> None:
    recall = build(settings, redis_client, settings.redis.namespace, 1)
    top = [x["id"] for x in recall.trending(5)["items"]]
    s = settings
    index_documents(
        DocumentStore(redis_client, s),
        [DeleteEvent(op="delete", id=top[0], version=2, ts=T0)],
        Analyzer(s.analysis).tokens,
    )
    assert top[0] not in [x["id"] for x in recall.trending(30)["items"]]
    for user in ("u1", "u2", "u3"):
        assert top[0] not in [x["id"] for x in recall.recommend(user, 30)["items"]]
    for item in top[1:]:
        assert top[0] not in [x["id"] for x in recall.similar(item, 30)["items"]]
