"""The behavior event model and decoder: the contract's section 3, strictly."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rtindex.indexer.events import (
    BehaviorEvent,
    InvalidEvent,
    behavior_json_schema,
    decode_behavior_event,
)

GOOD: dict[str, Any] = {
    "event_id": "7f1c",
    "user_id": "u-42",
    "item_id": "poi-1001",
    "action": "click",
    "ts": 1_795_389_111_500,
}


def decode(value: Any, latest: int | None = None) -> BehaviorEvent:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return decode_behavior_event(raw, 1 << 20, latest)


def reason(value: Any, latest: int | None = None) -> str:
    with pytest.raises(InvalidEvent) as e:
        decode(value, latest)
    return e.value.reason


def test_the_contract_example_with_its_optional_fields() -> None:
    e = decode({**GOOD, "query": "杭帮菜", "value": 1.0, "location": {"lat": 30.2, "lon": 120.1}})
    assert (e.user_id, e.item_id, e.action, e.ts, e.query) == (
        "u-42",
        "poi-1001",
        "click",
        1_795_389_111_500,
        "杭帮菜",
    )
    assert e.location is not None and e.location.lat == 30.2


@pytest.mark.parametrize("action", ["view", "click", "like", "cart", "purchase"])
def test_every_action_of_the_contract(action: str) -> None:
    assert decode({**GOOD, "action": action}).action == action


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"action": "teleport"}, "invalid_event"),
        ({"action": None}, "invalid_event"),
        ({"ts": -1}, "invalid_event"),
        ({"ts": "1795389111500"}, "invalid_event"),  # strict: no string numbers
        ({"user_id": ""}, "invalid_event"),
        ({"item_id": "a\x00b"}, "invalid_event"),  # control characters
        ({"event_id": "x" * 513}, "invalid_event"),
        ({"value": float("inf")}, "not_json"),  # Infinity is not JSON
        ({"location": {"lat": 91, "lon": 0}}, "invalid_event"),
        ({"extra": 1}, "invalid_event"),  # unknown fields are refused
    ],
)
def test_bad_fields_are_refused_with_a_reason(change: dict[str, Any], why: str) -> None:
    assert reason({**GOOD, **change}) == why


def test_missing_fields_and_non_objects() -> None:
    for name in ("event_id", "user_id", "item_id", "action", "ts"):
        assert reason({k: v for k, v in GOOD.items() if k != name}) == "invalid_event"
    assert reason([GOOD]) == "invalid_event"
    assert reason(b"\xff") == "not_utf8"
    assert reason(b"{") == "not_json"
    lone_surrogate = b'{"event_id": "\\ud800", "user_id": "u", "item_id": "i", "action": "view"}'
    assert reason(lone_surrogate) == "not_json"  # orjson refuses it as JSON


def test_a_far_future_ts_is_refused_only_with_a_clock() -> None:
    assert reason({**GOOD, "ts": 2_000}, latest=1_000) == "ts_in_future"
    assert decode({**GOOD, "ts": 1_000}, latest=1_000).ts == 1_000
    assert decode({**GOOD, "ts": 2_000}).ts == 2_000


def test_the_json_schema_names_the_actions() -> None:
    schema = behavior_json_schema()
    assert schema["title"] == "rtindex behavior event"
    assert set(schema["required"]) == {"event_id", "user_id", "item_id", "action", "ts"}
    assert set(schema["properties"]["action"]["enum"]) == {
        "view",
        "click",
        "like",
        "cart",
        "purchase",
    }
