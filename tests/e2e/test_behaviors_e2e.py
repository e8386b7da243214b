"""Behavior events -> behavior consumer -> Redis -> /similar, /recommend, /trending over HTTP."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
import redis
from helpers import wait_until
from kafka import KafkaConsumer

from rtindex.consumers.behaviors import BehaviorConsumer
from rtindex.consumers.documents import DocumentConsumer
from rtindex.consumers.kafka_config import kafka_client_config
from rtindex.consumers.publish import make_producer
from rtindex.settings import Settings

pytestmark = pytest.mark.e2e
NOW = int(time.time() * 1000)


def publish(settings: Settings, topic: str, *messages: dict[str, Any] | bytes) -> None:
    producer = make_producer(settings)
    try:
        for m in messages:
            if isinstance(m, bytes):
                key, value = None, m
            else:
                key = str(m.get("user_id") or m.get("id")).encode()
                value = json.dumps(m, ensure_ascii=False).encode()
            producer.send(topic, key=key, value=value).get(timeout=10)
    finally:
        producer.close()


def doc(doc_id: str, category: str, title: str) -> dict[str, Any]:
    return {
        "op": "upsert",
        "id": doc_id,
        "version": 1,
        "ts": NOW,
        "doc": {"title": title, "body": title, "category": category, "tags": [category]},
    }


def click(
    event_id: str, user: str, item: str, offset_ms: int, action: str = "click"
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "user_id": user,
        "item_id": item,
        "action": action,
        "ts": NOW + offset_ms,
    }


def items(api: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    r = api.get(path, params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    return list(body["hits"] if path == "/search" else body["items"])


def ids(api: httpx.Client, path: str, **params: Any) -> list[str]:
    return [i["id"] for i in items(api, path, **params)]


CATALOG = [
    doc("tea", "餐饮", "西湖龙井茶馆"),
    doc("duck", "餐饮", "北京烤鸭店"),
    doc("noodle", "餐饮", "杭州片儿川面馆"),
    doc("hotel", "酒店", "西湖边的酒店"),
    doc("museum", "景点", "浙江省博物馆"),
]


def index_catalog(s: Settings, consumer: DocumentConsumer) -> None:
    publish(s, s.kafka.documents_topic, *CATALOG)
    wait_until(lambda: consumer.totals.events["applied"] >= len(CATALOG), timeout=30)


def test_clicks_show_up_in_similar_and_recommend_and_deletes_vanish(
    topics: Settings,
    consumer: DocumentConsumer,
    behavior_consumer: BehaviorConsumer,
    api: httpx.Client,
) -> None:
    s = topics
    index_catalog(s, consumer)

    # Three users who had tea then noodles; one who had tea then went to the hotel.
    stream = []
    for u in ("a", "b", "c"):
        stream += [click(f"{u}1", u, "tea", 0), click(f"{u}2", u, "noodle", 60_000)]
    stream += [click("d1", "d", "tea", 0, "view"), click("d2", "d", "hotel", 30_000, "purchase")]
    publish(s, s.kafka.behaviors_topic, *stream)
    wait_until(
        lambda: ids(api, "/similar", item_id="tea")[:2] == ["noodle", "hotel"],
        timeout=30,
        message=lambda: f"similar(tea) = {ids(api, '/similar', item_id='tea')}",
    )
    assert ids(api, "/similar", item_id="noodle") == ["tea"]

    # A new user clicks tea: noodles first (3 users linked them), from the i2i channel.
    publish(s, s.kafka.behaviors_topic, click("e1", "e", "tea", 90_000))
    recs = wait_until(
        lambda: (
            (r := items(api, "/recommend", user_id="e", k=5)) and "i2i" in r[0]["sources"] and r
        ),
        timeout=30,
    )
    assert recs[0]["id"] == "noodle"
    assert recs[0]["doc"]["title"] == "杭州片儿川面馆"
    # The user who bought the hotel is not offered it again (exclude_actions: purchase).
    assert "hotel" not in ids(api, "/recommend", user_id="d", k=10)
    assert "hotel" in ids(api, "/recommend", user_id="e", k=10)

    # Trending, global and per category; a user nobody knows gets trending (cold start).
    assert ids(api, "/trending", k=2) == ["tea", "noodle"]
    assert ids(api, "/trending", category="酒店") == ["hotel"]
    cold = items(api, "/recommend", user_id="stranger", k=3)
    assert [i["id"] for i in cold] == ["tea", "noodle", "hotel"]
    assert all(i["sources"] == ["trending"] for i in cold)

    # Deleting a document removes it from every behavior answer at once.
    publish(s, s.kafka.documents_topic, {"op": "delete", "id": "noodle", "version": 2, "ts": NOW})
    wait_until(lambda: "noodle" not in ids(api, "/similar", item_id="tea"), timeout=30)
    assert "noodle" not in ids(api, "/recommend", user_id="e", k=10)
    assert "noodle" not in ids(api, "/trending", k=10)

    stats = api.get("/stats").json()["behavior"]
    assert stats["users"] == 5 and stats["behavior_events"] == 9


def test_bad_behavior_events_go_to_the_dlq_and_duplicates_count_once(
    topics: Settings, behavior_consumer: BehaviorConsumer, redis_client: redis.Redis
) -> None:
    s = topics
    good = click("g1", "u1", "tea", 0)
    publish(
        s,
        s.kafka.behaviors_topic,
        b"\xff\xfe not utf-8",
        good,
        {**click("g2", "u1", "tea", 1), "action": "teleport"},
        good,  # re-sent: the same event id
        {**click("g3", "u1", "tea", 2), "ts": -5},
        {**click("g5", "u1", "tea", 2), "ts": 253_402_300_799_999},  # the year 9999
        click("g4", "u1", "tea", 3),
    )
    wait_until(lambda: sum(behavior_consumer.totals.events.values()) >= 7, timeout=30)
    assert behavior_consumer.totals.events["applied"] == 2
    assert behavior_consumer.totals.events["duplicate"] == 1
    assert behavior_consumer.totals.events["invalid"] == 4
    ns = s.redis.namespace
    assert redis_client.hget(f"{ns}:{{b0}}:ic:tea", "click") == b"2"

    reader = KafkaConsumer(
        s.kafka.dlq_topic,
        **kafka_client_config(s, group_id=None, auto_offset_reset="earliest"),
    )
    try:
        dead: list[Any] = []
        wait_until(
            lambda: dead.extend(r for p in reader.poll(500).values() for r in p) or len(dead) >= 4,
            timeout=30,
        )
    finally:
        reader.close()
    reasons = sorted(dict(r.headers)["reason"].decode() for r in dead)
    assert reasons == ["invalid_event", "invalid_event", "not_utf8", "ts_in_future"]


def test_personalized_search_boosts_the_users_categories(
    topics: Settings,
    consumer: DocumentConsumer,
    behavior_consumer: BehaviorConsumer,
    api: httpx.Client,
) -> None:
    s = topics
    index_catalog(s, consumer)
    plain = ids(api, "/search", q="西湖")
    assert set(plain) == {"tea", "hotel"}
    publish(
        s,
        s.kafka.behaviors_topic,
        click("h1", "traveller", "museum", 0, "like"),
        click("h2", "traveller", "hotel", 1, "purchase"),
    )
    wait_until(lambda: behavior_consumer.totals.events["applied"] >= 2, timeout=30)
    personal = api.get("/search", params={"q": "西湖", "user_id": "traveller"}).json()["hits"]
    assert [h["id"] for h in personal] == ["hotel", "tea"]
    boosted = {h["id"]: h["score"] for h in personal}
    base = {h["id"]: h["score"] for h in api.get("/search", params={"q": "西湖"}).json()["hits"]}
    assert boosted["tea"] == pytest.approx(base["tea"])  # no preference matched: unchanged
    assert boosted["hotel"] > base["hotel"]
    # Without user_id, or for a user without a profile, results are unchanged.
    assert ids(api, "/search", q="西湖") == plain
    assert ids(api, "/search", q="西湖", user_id="nobody") == plain


def test_parameters_are_validated(api: httpx.Client) -> None:
    assert api.get("/recommend").status_code == 422
    assert api.get("/similar", params={"item_id": "x", "k": 1001}).status_code == 422
    assert api.get("/trending", params={"k": -1}).status_code == 422
    assert api.get("/recommend", params={"user_id": ""}).status_code == 422
    assert api.get("/similar", params={"item_id": "nothing"}).json()["items"] == []
    assert api.get("/similar", params={"item_id": "汉" * 200}).status_code == 422  # 600 bytes
    assert api.get("/trending", params={"category": "c" * 257}).status_code == 422
