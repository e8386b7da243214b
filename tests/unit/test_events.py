"""The event models and decoder: the contract's formats, strictly."""

from __future__ import annotations

import json

import pytest

from rtindex.indexer.events import (
    DeleteEvent,
    InvalidEvent,
    PatchEvent,
    UpsertEvent,
    decode_document_event,
    document_json_schema,
)
from rtindex.settings import IndexSchema

SCHEMA = IndexSchema()
LIMIT = 1 << 20

CONTRACT_EXAMPLES = [
    {
        "op": "upsert",
        "id": "poi-1001",
        "version": 7,
        "ts": 1795389111326,
        "doc": {
            "title": "外婆家（西湖店）",
            "body": "杭帮菜，招牌茶香鸡，适合家庭聚餐",
            "category": "餐饮",
            "tags": ["杭帮菜", "家庭聚餐"],
            "city": "杭州",
            "location": {"lat": 30.2592, "lon": 120.1630},
            "price": 68.0,
            "url": "https://example.com/poi/1001",
        },
    },
    {
        "op": "patch",
        "id": "poi-1001",
        "version": 8,
        "ts": 1795389112000,
        "doc": {"price": 72.0, "tags": None},
    },
    {"op": "delete", "id": "poi-1001", "version": 9, "ts": 1795389113000},
]


def decode(obj: object) -> UpsertEvent | PatchEvent | DeleteEvent:
    return decode_document_event(json.dumps(obj, ensure_ascii=False).encode(), SCHEMA, LIMIT)


def reason(raw: bytes) -> str:
    with pytest.raises(InvalidEvent) as e:
        decode_document_event(raw, SCHEMA, LIMIT)
    return e.value.reason


def test_contract_examples_decode_to_their_types() -> None:
    kinds = [type(decode(x)) for x in CONTRACT_EXAMPLES]
    assert kinds == [UpsertEvent, PatchEvent, DeleteEvent]
    patch = decode(CONTRACT_EXAMPLES[1])
    assert patch.doc == {"price": 72.0, "tags": None}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, "empty"),
        (b"\xff\xfe", "not_utf8"),
        (b'{"op": "upsert", ', "not_json"),
        (b"[1, 2]", "invalid_event"),
        (b'{"op": "upsert", "id": "a", "version": 1, "ts": 1}', "invalid_event"),  # no doc
        (b'{"op": "merge", "id": "a", "version": 1, "ts": 1, "doc": {}}', "invalid_event"),
        (b'{"op": "upsert", "id": "a", "version": "1", "ts": 1, "doc": {}}', "invalid_event"),
        (b'{"op": "upsert", "id": "a", "version": 1.0, "ts": 1, "doc": {}}', "invalid_event"),
        (b'{"op": "upsert", "id": "a", "version": true, "ts": 1, "doc": {}}', "invalid_event"),
        (b'{"op": "upsert", "id": "a", "version": -1, "ts": 1, "doc": {}}', "invalid_event"),
        (
            b'{"op": "upsert", "id": "a", "version": 9223372036854775808, "ts": 1, "doc": {}}',
            "invalid_event",
        ),
        (b'{"op": "upsert", "id": "", "version": 1, "ts": 1, "doc": {}}', "invalid_event"),
        (b'{"op": "upsert", "id": "a\\u0001b", "version": 1, "ts": 1, "doc": {}}', "invalid_event"),
        (
            b'{"op": "upsert", "id": "a", "version": 1, "ts": 1, "doc": {}, "extra": 1}',
            "invalid_event",
        ),
        (b'{"op": "delete", "id": "a", "version": 1, "ts": 1, "doc": {}}', "invalid_event"),
        (
            b'{"op": "upsert", "id": "a", "version": 1, "ts": 1, "doc": {"price": "cheap"}}',
            "schema_violation",
        ),
        (
            b'{"op": "upsert", "id": "a", "version": 1, "ts": 1, "doc": {"price": true}}',
            "schema_violation",
        ),
        (
            b'{"op": "upsert", "id": "a", "version": 1, "ts": 1, "doc": {"title": 5}}',
            "schema_violation",
        ),
        (
            b'{"op": "upsert", "id": "a", "version": 1, "ts": 1, "doc": {"tags": [1]}}',
            "schema_violation",
        ),
        (
            b'{"op": "upsert", "id": "a", "version": 1, "ts": 1, "doc": {"tags": [""]}}',
            "schema_violation",
        ),
        (
            b'{"op": "upsert", "id": "a", "version": 1, "ts": 1, '
            b'"doc": {"location": {"lat": 91, "lon": 0}}}',
            "schema_violation",
        ),
        (
            b'{"op": "upsert", "id": "a", "version": 1, "ts": 1, "doc": {"location": [1, 2]}}',
            "schema_violation",
        ),
        (b'{"op": "upsert", "id": "a", "version": 1, "ts": 1, "doc": {"price": NaN}}', "not_json"),
        (b'{"op": "upsert", "id": "\\ud800", "version": 1, "ts": 1, "doc": {}}', "not_json"),
        (b"[" * 5000 + b"]" * 5000, "not_json"),
    ],
)
def test_bad_input_has_a_reason(raw: bytes | None, expected: str) -> None:
    assert reason(raw) == expected  # type: ignore[arg-type]


def test_size_limit() -> None:
    big = json.dumps(
        {"op": "upsert", "id": "a", "version": 1, "ts": 1, "doc": {"body": "x" * 2000}}
    )
    with pytest.raises(InvalidEvent) as e:
        decode_document_event(big.encode(), SCHEMA, 1024)
    assert e.value.reason == "too_large"


def test_id_limit_is_in_bytes() -> None:
    ok = {"op": "delete", "id": "字" * 170, "version": 1, "ts": 1}  # 510 bytes
    assert decode(ok).id == "字" * 170
    with pytest.raises(InvalidEvent):
        decode({"op": "delete", "id": "字" * 171, "version": 1, "ts": 1})  # 513 bytes


def test_stored_only_fields_take_any_json() -> None:
    ev = decode(
        {"op": "upsert", "id": "a", "version": 0, "ts": 0, "doc": {"extra": {"x": [1, None]}}}
    )
    assert isinstance(ev, UpsertEvent)
    assert ev.doc["extra"] == {"x": [1, None]}


def test_json_schema_describes_all_three_ops() -> None:
    schema = document_json_schema()
    assert schema["title"] == "rtindex document event"
    assert set(schema["discriminator"]["mapping"]) == {"upsert", "patch", "delete"}
    assert schema["$defs"]["UpsertEvent"]["additionalProperties"] is False
