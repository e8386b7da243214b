"""The demo events: valid contract events, deterministic, sensibly derived from real text."""

from __future__ import annotations

import orjson
import pytest

from rtindex.demo import (
    CITIES,
    MAX_TITLE_CHARS,
    categorize,
    demo_events,
    find_city,
    make_title,
)
from rtindex.indexer.events import UpsertEvent, decode_document_event
from rtindex.settings import Settings


@pytest.fixture(scope="module")
def events() -> list[dict[str, object]]:
    return list(demo_events())


def test_every_demo_event_decodes(events: list[dict[str, object]]) -> None:
    settings = Settings()
    assert len(events) > 10_000  # the whole corpus, not a sample
    for event in events:
        decoded = decode_document_event(
            orjson.dumps(event), settings.index.schema_, settings.index.max_message_bytes
        )
        assert isinstance(decoded, UpsertEvent)
        assert decoded.version == 1


def test_fields_follow_the_default_schema(events: list[dict[str, object]]) -> None:
    ids = [e["id"] for e in events]
    assert ids[:2] == ["pd-000001", "pd-000002"]
    assert len(set(ids)) == len(ids)
    with_city = 0
    for event in events:
        doc = event["doc"]
        assert isinstance(doc, dict)
        assert doc["body"] and doc["title"] and len(doc["title"]) <= MAX_TITLE_CHARS
        assert doc["title"].rstrip("…") in doc["body"]
        assert 0 <= doc["price"] < 500
        if "city" in doc:
            with_city += 1
            assert doc["city"] in doc["body"]
            lat, lon = CITIES[doc["city"]]
            assert doc["location"] == {"lat": lat, "lon": lon}
        else:
            assert "location" not in doc
        for tag in doc.get("tags", []):
            assert tag in doc["body"]
    assert with_city > 1000  # real cities are common in the news


def test_deterministic_apart_from_ts() -> None:
    def strip_ts(batch: list[dict[str, object]]) -> list[dict[str, object]]:
        return [{k: v for k, v in e.items() if k != "ts"} for e in batch]

    assert strip_ts(list(demo_events(300))) == strip_ts(list(demo_events(300)))


def test_limit() -> None:
    assert len(list(demo_events(5))) == 5
    assert list(demo_events(0)) == []
    with pytest.raises(ValueError):
        list(demo_events(-1))


def test_categories_cover_the_news(events: list[dict[str, object]]) -> None:
    seen = {e["doc"]["category"] for e in events}  # type: ignore[index]
    assert {"经济", "政治", "国际", "体育", "科技", "文化", "综合"} <= seen


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("中国女排在世界锦标赛上夺冠，运动员们发挥出色。", "体育"),
        ("今年国民经济保持增长，企业效益提高，市场繁荣。", "经济"),
        ("联合国秘书长会见了美国总统，双方讨论外交问题。", "国际"),
        ("他走在回家的路上，天色渐渐暗了下来。", "综合"),
    ],
)
def test_categorize(text: str, category: str) -> None:
    assert categorize(text) == category


def test_find_city_and_title() -> None:
    assert find_city("本报呼和浩特１月５日电 内蒙古……") == "呼和浩特"
    assert find_city("没有城市的句子") is None
    assert make_title("短句。第二句。") == "短句"
    long = "在１９９８年来临之际，我十分高兴地通过中央人民广播电台、中国国际广播电台和中央电视台。"
    assert make_title(long) == "在１９９８年来临之际，我十分高兴地通过中央人民广播电台"
