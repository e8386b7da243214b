"""Produce -> consume -> search through real Kafka, Redis and HTTP."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from helpers import wait_until
from kafka import KafkaConsumer

from rtindex.consumers.documents import DocumentConsumer
from rtindex.consumers.kafka_config import kafka_client_config
from rtindex.consumers.publish import make_producer
from rtindex.settings import Settings

pytestmark = pytest.mark.e2e


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The Han bigram postings on: this module covers them end to end (off by default)."""
    return settings.with_overrides({"index": {"han_bigrams": True}})


def send(settings: Settings, *messages: dict[str, Any] | bytes, key: bytes | None = None) -> None:
    producer = make_producer(settings)
    try:
        for m in messages:
            value = m if isinstance(m, bytes) else json.dumps(m, ensure_ascii=False).encode()
            k = key if key is not None or isinstance(m, bytes) else str(m["id"]).encode()
            producer.send(settings.kafka.documents_topic, key=k, value=value).get(timeout=10)
    finally:
        producer.close()


def upsert(doc_id: str, version: int, **doc: Any) -> dict[str, Any]:
    return {"op": "upsert", "id": doc_id, "version": version, "ts": 1_795_389_111_326, "doc": doc}


def ids(api: httpx.Client, **params: Any) -> list[str]:
    r = api.get("/search", params=params)
    assert r.status_code == 200, r.text
    return [h["id"] for h in r.json()["hits"]]


def settled(consumer: DocumentConsumer, n: int) -> bool:
    return sum(consumer.totals.events.values()) >= n


def test_lifecycle_through_kafka_and_http(
    topics: Settings, consumer: DocumentConsumer, api: httpx.Client
) -> None:
    s = topics
    send(
        s,
        upsert(
            "poi-1",
            1,
            title="外婆家（西湖店）",
            body="杭帮菜，招牌茶香鸡，适合家庭聚餐",
            category="餐饮",
            tags=["杭帮菜", "家庭聚餐"],
            city="杭州",
            location={"lat": 30.2592, "lon": 120.1630},
            price=68.0,
        ),
        upsert(
            "poi-2",
            1,
            title="全聚德",
            body="北京烤鸭老字号",
            category="餐饮",
            city="北京",
            price=200,
        ),
        upsert("poi-3", 1, title="English bookshop", body="语言english学习", city="杭州", price=30),
    )
    wait_until(lambda: settled(consumer, 3), message=lambda: str(consumer.totals))
    assert ids(api, q="杭帮菜") == ["poi-1"]
    assert ids(api, q="北京") == ["poi-2"]  # the document says 北京烤鸭
    assert ids(api, q="english") == ["poi-3"] and ids(api, q="语言") == ["poi-3"]
    assert set(ids(api, q="杭帮菜 烤鸭")) == {"poi-1", "poi-2"}
    assert ids(api, q="杭帮菜 烤鸭", op="and") == []
    assert ids(api, q="餐饮 杭帮菜 烤鸭 english", city="杭州", price_max=50) == ["poi-3"]
    assert ids(api, q="杭帮菜 烤鸭", lat=30.26, lon=120.16, radius_km=5) == ["poi-1"]
    assert ids(api, q="杭帮菜 烤鸭", tag="家庭聚餐") == ["poi-1"]
    # and-mode across segmentations: the query 北京烤鸭 is satisfied by 北京 + 烤鸭 when
    # the document segments as 北京烤鸭店 (no 北京烤鸭 token).
    send(
        s,
        upsert("poi-5", 1, title="小馆", body="我在北京烤鸭店吃饭"),
        upsert("poi-6", 1, title="北京小馆", body="烤鸭和炸酱面"),
    )
    wait_until(lambda: settled(consumer, 5), message=lambda: str(consumer.totals))
    assert set(ids(api, q="北京烤鸭", op="and")) == {"poi-2", "poi-5"}
    # A run typed together is a string: poi-6 has 北京 and 烤鸭 apart. Typed apart,
    # they are two requirements, met anywhere.
    assert set(ids(api, q="北京 烤鸭", op="and")) == {"poi-2", "poi-5", "poi-6"}
    # and-mode finds a Han string inside or across words, whatever the segmentation
    # (bigram postings): 京烤 and 烤鸭店 are in poi-5's text; 京烤鸭老 only in poi-2's.
    assert set(ids(api, q="京烤", op="and")) == {"poi-2", "poi-5"}
    assert ids(api, q="烤鸭店", op="and") == ["poi-5"]
    assert ids(api, q="京烤鸭老", op="and") == ["poi-2"]
    assert ids(api, q="京烤", op="or") == []  # or-mode stays word-based: no token 京烤
    send(s, {"op": "delete", "id": "poi-5", "version": 2, "ts": 1})
    send(s, {"op": "delete", "id": "poi-6", "version": 2, "ts": 1})
    wait_until(lambda: settled(consumer, 7), message=lambda: str(consumer.totals))
    assert ids(api, q="京烤", op="and") == ["poi-2"]  # the delete took its bigrams

    # An update, a patch, a stale version, a duplicate and a malformed message, in one go.
    send(
        s,
        upsert(
            "poi-2",
            2,
            title="全聚德",
            body="北京烤鸭 位于前门大街",
            category="餐饮",
            city="北京",
            price=220,
        ),
        {"op": "patch", "id": "poi-1", "version": 2, "ts": 1, "doc": {"price": 72.0, "tags": None}},
        upsert("poi-1", 1, title="stale", body="must not win"),
        upsert("poi-2", 2, title="duplicate", body="same version"),
        b'{"op": "upsert", "id": "bad", "version": "seven"}',
        upsert("poi-4", 1, title="前门大街", body="neighbour of the bad message"),
    )
    wait_until(lambda: settled(consumer, 13), message=lambda: str(consumer.totals))
    assert consumer.totals.events["stale"] == 1 and consumer.totals.events["duplicate"] == 1
    assert consumer.totals.events["invalid"] == 1
    assert set(ids(api, q="前门")) == {"poi-2", "poi-4"}
    doc1 = api.get("/docs/poi-1").json()
    assert doc1["version"] == 2 and doc1["doc"]["price"] == 72.0 and "tags" not in doc1["doc"]
    assert ids(api, q="stale") == [] and ids(api, q="duplicate") == []
    assert ids(api, q="杭帮菜", tag="家庭聚餐") == []  # the patch removed the tags

    # Delete, then an older upsert tries to bring it back.
    send(s, {"op": "delete", "id": "poi-2", "version": 3, "ts": 1})
    send(s, upsert("poi-2", 2, title="全聚德", body="北京烤鸭 resurrected"))
    wait_until(lambda: settled(consumer, 15), message=lambda: str(consumer.totals))
    assert ids(api, q="烤鸭") == [] and ids(api, q="resurrected") == []
    assert api.get("/docs/poi-2").status_code == 404

    # The malformed message is in the DLQ, untouched, with its reason and coordinates.
    dlq = KafkaConsumer(
        s.kafka.dlq_topic,
        **kafka_client_config(s, auto_offset_reset="earliest", consumer_timeout_ms=10_000),
    )
    try:
        letters = [m for m in dlq]
    finally:
        dlq.close()
    assert len(letters) == 1
    letter = letters[0]
    headers = {k: v.decode() for k, v in letter.headers}
    assert letter.value == b'{"op": "upsert", "id": "bad", "version": "seven"}'
    assert headers["reason"] == "invalid_event" and "version" in headers["error"]
    assert headers["source_topic"] == s.kafka.documents_topic
    assert int(headers["source_offset"]) >= 0 and int(headers["source_partition"]) >= 0

    stats = api.get("/stats").json()["index"]
    assert stats["documents"] == 3 and stats["tombstones"] == 3


def test_http_limits_and_errors(settings: Settings, api: httpx.Client) -> None:
    for params, fragment in [
        ({"q": "x" * 1001}, "q"),
        ({"q": "x", "k": 1001}, "k"),
        ({"q": "x", "offset": 10_001}, "offset"),
        ({"q": "x", "op": "xor"}, "op"),
        ({"q": "x", "lat": 30}, "lat"),
        ({"q": "x", "price_min": 5, "price_max": 1}, "price"),
        ({"q": "x", "price_min": "cheap"}, "price"),
        ({"q": "x", "colour": "red"}, "colour"),
        ({"q": "x", "radius_km": -1, "lat": 0, "lon": 0}, "radius"),
        ({"q": "x", "lat": "", "lon": 1, "radius_km": 1}, "lat: not a number"),
        ({"q": "x", "price_max": "inf"}, "finite"),
        ({"q": "x", "k": "ten"}, "k"),
        ({}, "q"),
    ]:
        r = api.get("/search", params=params)
        assert r.status_code == 422, (params, r.text)
        assert fragment in r.text, (params, r.text)
    assert api.get("/search", params={"q": "的"}).json()["total"] == 0  # only a stop word
    assert api.get("/docs/" + "x" * 600).status_code == 422
    assert api.get("/docs/nope").status_code == 404
    assert api.get("/healthz").status_code == 200
    assert api.get("/readyz").status_code == 200
    metrics = api.get("/metrics").text
    assert 'rtindex_query_seconds_count{endpoint="/search"}' in metrics
    assert 'rtindex_query_errors_total{endpoint="/search",status="422"} 13.0' in metrics
