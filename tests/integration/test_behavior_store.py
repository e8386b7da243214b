"""Behavior state on a real Valkey: exactly once in effect, whatever the redeliveries.

The model: a stream of behavior events (with re-sent duplicates) on one partition is
applied in random batches; at random points the consumer "crashes" after writing a batch
to Redis and before committing it, so the next process gets the batch again, cut
differently, from a fresh store. The final state of every behavior key must be byte for
byte the state of one clean pass.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from rtindex.indexer.analysis import Analyzer
from rtindex.indexer.batch import index_documents
from rtindex.indexer.behavior import Located
from rtindex.indexer.behavior_batch import index_behaviors
from rtindex.indexer.behavior_store import BehaviorStore
from rtindex.indexer.dump import dump_namespace
from rtindex.indexer.events import BehaviorEvent, UpsertEvent
from rtindex.indexer.store import DocumentStore
from rtindex.settings import ACTIONS, Settings

pytestmark = pytest.mark.integration
T0 = 1_795_389_111_326
ITEMS = [f"i{j}" for j in range(8)]
CATEGORIES = ["餐饮", "酒店", "景点"]


def small_caps(settings: Settings, namespace: str, **behavior: Any) -> Settings:
    """Tiny caps and windows, so trimming, windows and dedup memory are all exercised."""
    return settings.with_overrides(
        {
            "redis": {"namespace": namespace},
            "behavior": {
                "recent_cap": 6,
                "window_items": 3,
                "window_s": 600,
                "neighbours_cap": 3,
                "trending_cap": 4,
                "profile_cap": 2,
                "exclude_cap": 2,
                "exclude_actions": ["purchase", "cart"],
                **behavior,
            },
        }
    )


def index_items(s: Settings, client: redis.Redis) -> None:
    """Documents for most items (i7 has none), so profiles and category trending fill."""
    store = DocumentStore(client, s)
    store.ensure_layout()
    docs = [
        UpsertEvent(
            op="upsert",
            id=item,
            version=1,
            ts=T0,
            doc={"title": f"item {item}", "category": CATEGORIES[j % 3], "tags": [f"t{j % 2}"]},
        )
        for j, item in enumerate(ITEMS[:-1])
    ]
    index_documents(store, docs, Analyzer(s.analysis).tokens)


@st.composite
def streams(draw: st.DrawFn) -> list[Located]:
    n = draw(st.integers(1, 60))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    events: list[BehaviorEvent] = []
    ts = T0
    for i in range(n):
        if events and rng.random() < 0.15:
            events.append(rng.choice(events))  # re-sent: same event id, same content
            continue
        ts += rng.choice([0, 1_000, 30_000, 400_000, 2_000_000])
        events.append(
            BehaviorEvent(
                event_id=f"e{i}",
                user_id=f"u{rng.randint(0, 4)}",
                item_id=rng.choice(ITEMS),
                action=rng.choice(ACTIONS),
                ts=ts,
            )
        )
    return [Located(e, "behaviors", 0, offset, f"fp{offset}") for offset, e in enumerate(events)]


def behavior_state(client: redis.Redis, namespace: str) -> dict[bytes, Any]:
    """Every behavior key (hash tag {b…}) with the namespace stripped from its name."""
    prefix = f"{namespace}:".encode()
    return {
        k[len(prefix) :]: v
        for k, v in dump_namespace(client, namespace).items()
        if k.startswith(prefix + b"{b")
    }


def clean_pass(s: Settings, client: redis.Redis, events: list[Located]) -> dict[bytes, Any]:
    index_items(s, client)
    store = BehaviorStore(client, s)
    store.ensure_layout()
    index_behaviors(store, events)
    return behavior_state(client, s.redis.namespace)


def crashing_pass(
    s: Settings, client: redis.Redis, events: list[Located], cuts: st.DataObject
) -> tuple[dict[bytes, Any], int]:
    index_items(s, client)
    store = BehaviorStore(client, s)
    store.ensure_layout()
    committed, crashes = 0, 0
    while committed < len(events):
        size = cuts.draw(st.integers(1, 12), label="batch size")
        index_behaviors(store, events[committed : committed + size])
        if cuts.draw(st.booleans(), label="crash before the commit"):
            crashes += 1
            store = BehaviorStore(client, s)  # a new process: nothing cached
        else:
            committed += size
    return behavior_state(client, s.redis.namespace), crashes


@hsettings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(events=streams(), cuts=st.data(), shards=st.sampled_from([1, 3]), chunk=st.integers(1, 5))
def test_crash_and_redeliver_equals_one_clean_pass(
    settings: Settings,
    redis_client: redis.Redis,
    events: list[Located],
    cuts: st.DataObject,
    shards: int,
    chunk: int,
) -> None:
    run = uuid.uuid4().hex[:10]
    behavior = {"shards": shards, "apply_chunk": chunk}
    clean = clean_pass(small_caps(settings, f"c{run}", **behavior), redis_client, events)
    crashed, _ = crashing_pass(
        small_caps(settings, f"r{run}", **behavior), redis_client, events, cuts
    )
    assert crashed == clean
    check_model(clean, events, small_caps(settings, "x", **behavior))


def check_model(state: dict[bytes, Any], events: list[Located], s: Settings) -> None:
    """What a plain model of the stream says: each event counted once (re-sent ids are
    recognised while among the user's last ``recent_cap`` events), every cap held."""
    cfg = s.behavior
    memory: dict[str, list[str]] = {}
    counts: dict[str, dict[str, int]] = {}
    for loc in events:
        e = loc.event
        seen = memory.setdefault(e.user_id, [])
        if e.event_id in seen:
            continue
        seen.insert(0, e.event_id)
        del seen[cfg.recent_cap :]
        per_item = counts.setdefault(e.item_id, {})
        per_item[e.action] = per_item.get(e.action, 0) + 1
    found: dict[str, dict[str, int]] = {}
    for key, value in state.items():
        name = key.split(b":", 1)[1]  # drop the shard tag
        if name.startswith(b"ic:"):
            item = found.setdefault(name[3:].decode(), {})
            for action, n in value:
                item[action.decode()] = item.get(action.decode(), 0) + int(n)
        caps = {b"nb:": cfg.neighbours_cap, b"tr": cfg.trending_cap, b"up:": cfg.profile_cap}
        caps |= {b"ux:": cfg.exclude_cap, b"ur:": cfg.recent_cap}
        for prefix, cap in caps.items():
            if name.startswith(prefix):
                assert len(value) <= cap, (key, len(value), cap)
    assert found == counts


def test_redelivered_batch_changes_nothing_and_counts_once(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """The plainest case, spelled out: the same batch twice, and a re-sent event id."""
    s = small_caps(settings, settings.redis.namespace)
    store = BehaviorStore(redis_client, s)
    store.ensure_layout()
    ev = BehaviorEvent(event_id="e1", user_id="u1", item_id="i1", action="click", ts=T0)
    batch = [Located(ev, "behaviors", 0, 0, "a"), Located(ev, "behaviors", 0, 1, "b")]
    first = index_behaviors(store, batch)
    assert first.outcomes == ["applied", "duplicate"]
    before = behavior_state(redis_client, s.redis.namespace)
    again = index_behaviors(BehaviorStore(redis_client, s), batch)
    assert again.outcomes == ["redelivered", "redelivered"]
    assert behavior_state(redis_client, s.redis.namespace) == before
    counters = redis_client.hgetall(f"{s.redis.namespace}:{{b0}}:ic:i1")
    assert counters == {b"click": b"1"}


def test_a_user_back_after_the_ttl_starts_afresh(
    settings: Settings, redis_client: redis.Redis
) -> None:
    s = small_caps(settings, settings.redis.namespace, user_ttl_s=3600)
    store = BehaviorStore(redis_client, s)
    store.ensure_layout()
    hour = 3_600_000
    evs = [
        BehaviorEvent(event_id="a", user_id="u1", item_id="i1", action="click", ts=T0),
        BehaviorEvent(event_id="b", user_id="u2", item_id="i2", action="click", ts=T0),
        BehaviorEvent(event_id="c", user_id="u1", item_id="i3", action="click", ts=T0 + 2 * hour),
    ]
    index_behaviors(store, [Located(e, "behaviors", 0, i) for i, e in enumerate(evs)])
    ns = s.redis.namespace
    recent = redis_client.lrange(f"{ns}:{{b0}}:ur:u1", 0, -1)
    assert [r.split(b"\x1f")[2] for r in recent] == [b"c"]  # "a" was forgotten
    assert redis_client.hget(f"{ns}:{{b0}}:u:u1", "n") == b"1"
    # u2, inactive for 2 h > TTL, is expired lazily by a later batch.
    assert redis_client.exists(f"{ns}:{{b0}}:u:u2")
    later = BehaviorEvent(event_id="d", user_id="u3", item_id="i1", action="view", ts=T0 + 3 * hour)
    index_behaviors(store, [Located(later, "behaviors", 0, 3)])
    assert not redis_client.exists(f"{ns}:{{b0}}:u:u2", f"{ns}:{{b0}}:ur:u2")
    assert redis_client.zrange(f"{ns}:{{b0}}:ua", 0, -1) == [b"u1", b"u3"]
    # Item-level structures are not per user: they keep what u2 did.
    assert redis_client.hget(f"{ns}:{{b0}}:ic:i2", "click") == b"1"
