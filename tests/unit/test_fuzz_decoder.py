"""Fuzzing the event decoders: whatever the bytes, a valid event or InvalidEvent with a
known reason, never another exception; what is accepted keeps the contract and
round-trips; what the contract allows is accepted."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from rtindex.indexer.events import (
    MAX_DETAIL_CHARS,
    MAX_DOC_DEPTH,
    MAX_TS,
    MAX_VERSION,
    BehaviorEvent,
    DeleteEvent,
    InvalidEvent,
    PatchEvent,
    UpsertEvent,
    decode_behavior_event,
    decode_document_event,
)
from rtindex.settings import IndexSchema

SCHEMA = IndexSchema()
LIMIT = 1 << 20
SMALL_LIMIT = 2048
REASONS = {
    "empty",
    "too_large",
    "not_utf8",
    "not_json",
    "invalid_event",
    "schema_violation",
    "ts_in_future",
}
ACTIONS = ["view", "click", "like", "cart", "purchase"]
# FUZZ_EXAMPLES=20000 pytest tests/unit/test_fuzz_decoder.py for a longer hunt.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

DocEvent = UpsertEvent | PatchEvent | DeleteEvent


# -- what the contract allows -----------------------------------------------------------
# Any text that is UTF-8 (no lone surrogates); ids also without control characters.
any_text = st.text(st.characters(codec="utf-8"), max_size=40)
ids = st.text(st.characters(codec="utf-8", exclude_categories=["Cc"]), min_size=1, max_size=40)
long_ids = st.sampled_from(["x" * 512, "字" * 170 + "ab", "😀" * 128, "*", "a:b:c", "{s0}"])
valid_ids = ids.filter(lambda s: len(s.encode()) <= 512) | long_ids
versions = st.integers(0, MAX_VERSION)
timestamps = st.integers(0, MAX_TS)
finite = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**63), 2**64 - 1)
keyword_value = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20)
json_leaf = st.none() | st.booleans() | finite | any_text
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
stored_names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=30).filter(
    lambda n: n not in {"title", "body", "category", "tags", "city", "price", "location"}
)
geo = st.fixed_dictionaries(
    {
        "lat": st.floats(-90, 90) | st.integers(-90, 90),
        "lon": st.floats(-180, 180) | st.integers(-180, 180),
    }
)
docs = st.fixed_dictionaries(
    {},
    optional={
        "title": any_text | st.none(),
        "body": any_text | st.none(),
        "category": keyword_value | st.none(),
        "tags": st.lists(keyword_value, max_size=5) | keyword_value | st.none(),
        "city": keyword_value,
        "price": finite | st.none(),
        "location": geo | st.none(),
    },
).flatmap(
    lambda d: st.dictionaries(stored_names, json_value, max_size=3).map(lambda extra: extra | d)
)


@st.composite
def document_events(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(["upsert", "patch", "delete"]))
    ev: dict[str, Any] = {
        "op": op,
        "id": draw(valid_ids),
        "version": draw(versions),
        "ts": draw(timestamps),
    }
    if op != "delete":
        ev["doc"] = draw(docs)
    # Key order must not matter.
    return dict(draw(st.permutations(list(ev.items()))))


@st.composite
def behavior_events(draw: st.DrawFn) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "event_id": draw(valid_ids),
        "user_id": draw(valid_ids),
        "item_id": draw(valid_ids),
        "action": draw(st.sampled_from(ACTIONS)),
        "ts": draw(timestamps),
    }
    optional = {
        "query": st.text(st.characters(codec="utf-8"), max_size=1000) | st.none(),
        "value": finite | st.none(),
        "location": geo | st.none(),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            ev[name] = draw(strategy)
    return ev


def encode(value: Any, ascii: bool = False) -> bytes:
    """JSON as any producer might write it: escaped or not; NaN written as NaN."""
    return json.dumps(value, ensure_ascii=ascii).encode("utf-8", errors="surrogatepass")


# -- the properties ---------------------------------------------------------------------
def outcome_of_document(raw: bytes | None, limit: int = LIMIT) -> DocEvent | str:
    try:
        event = decode_document_event(raw, SCHEMA, limit)
    except InvalidEvent as e:
        assert e.reason in REASONS and e.reason != "ts_in_future", e
        assert e.detail and len(e.detail) <= MAX_DETAIL_CHARS
        return e.reason
    check_document(event)
    return event


def outcome_of_behavior(raw: bytes | None, limit: int = LIMIT) -> BehaviorEvent | str:
    try:
        event = decode_behavior_event(raw, limit, latest_ts=MAX_TS // 2)
    except InvalidEvent as e:
        assert e.reason in REASONS and e.reason != "schema_violation", e
        assert e.detail and len(e.detail) <= MAX_DETAIL_CHARS
        return e.reason
    check_behavior(event)
    return event


def check_id(value: str) -> None:
    assert 1 <= len(value.encode("utf-8")) <= 512
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value)


def check_document(event: DocEvent) -> None:
    """What an accepted event promises, and that it round-trips through JSON."""
    check_id(event.id)
    assert 0 <= event.version <= MAX_VERSION and 0 <= event.ts <= MAX_TS
    assert isinstance(event, UpsertEvent | PatchEvent | DeleteEvent)
    again = decode_document_event(orjson.dumps(event.model_dump()), SCHEMA, LIMIT)
    assert again == event
    if not isinstance(event, DeleteEvent):
        orjson.dumps(event.doc)  # the store writes it with orjson: it must serialize
        for name in SCHEMA.text_fields:
            assert event.doc.get(name) is None or isinstance(event.doc[name], str)
        price = event.doc.get("price")
        assert price is None or (not isinstance(price, bool) and math.isfinite(price))


def check_behavior(event: BehaviorEvent) -> None:
    for value in (event.event_id, event.user_id, event.item_id):
        check_id(value)
    assert event.action in ACTIONS and 0 <= event.ts <= MAX_TS // 2
    assert event.value is None or math.isfinite(event.value)
    assert event.query is None or len(event.query) <= 1000
    again = decode_behavior_event(orjson.dumps(event.model_dump()), LIMIT)
    assert again == event


@FUZZ
@given(st.binary(max_size=3000) | st.none())
def test_arbitrary_bytes(raw: bytes | None) -> None:
    outcome_of_document(raw)
    outcome_of_document(raw, SMALL_LIMIT)
    outcome_of_behavior(raw)


@FUZZ
@given(json_value | st.dictionaries(any_text, json_value), st.booleans())
@example({"op": "upsert", "id": "\ud800", "version": 1, "ts": 1, "doc": {}}, True)
@example({"op": "upsert", "id": "\ud800", "version": 1, "ts": 1, "doc": {}}, False)
@example({"op": "upsert", "id": "a", "version": 1, "ts": 1, "doc": {"x": math.nan}}, False)
@example({"event_id": "e", "user_id": "u", "item_id": "i", "action": "view", "ts": 1e3}, False)
def test_arbitrary_json(value: Any, ascii: bool) -> None:
    raw = encode(value, ascii)
    outcome_of_document(raw)
    outcome_of_behavior(raw)


@FUZZ
@given(document_events(), st.booleans())
def test_valid_document_events_are_accepted_as_sent(event: dict[str, Any], ascii: bool) -> None:
    decoded = outcome_of_document(encode(event, ascii))
    assert not isinstance(decoded, str), decoded
    assert decoded.model_dump() == event


@FUZZ
@given(behavior_events(), st.booleans())
def test_valid_behavior_events_are_accepted_as_sent(event: dict[str, Any], ascii: bool) -> None:
    assume(event["ts"] <= MAX_TS // 2)
    decoded = outcome_of_behavior(encode(event, ascii))
    assert not isinstance(decoded, str), decoded
    dumped = decoded.model_dump()
    assert {k: v for k, v in dumped.items() if k in event} == event


# -- mutations of valid events ----------------------------------------------------------
weird_values: st.SearchStrategy[Any] = json_value | st.sampled_from(
    [
        "",
        " ",
        "x" * 513,
        "a\x00",
        -1,
        2**63,
        2**64,
        10**30,
        1.0,
        True,
        None,
        [],
        {},
        "upsert",
        "delete",
        "patch",
        "click",
        MAX_TS + 1,
    ]
)


@st.composite
def mutated(draw: st.DrawFn, events: st.SearchStrategy[dict[str, Any]]) -> bytes:
    event = draw(events)
    kind = draw(st.sampled_from(["drop", "set", "add", "set_doc_field", "bytes", "truncate"]))
    names = list(event)
    if kind == "drop":
        del event[draw(st.sampled_from(names))]
    elif kind == "set":
        event[draw(st.sampled_from(names))] = draw(weird_values)
    elif kind == "add":
        event[draw(any_text)] = draw(weird_values)
    elif kind == "set_doc_field" and isinstance(event.get("doc"), dict):
        name = draw(st.sampled_from(["title", "tags", "price", "location", "category"]) | any_text)
        event["doc"][name] = draw(weird_values)
    raw = encode(event, draw(st.booleans()))
    if kind == "bytes" and raw:
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(raw) - 1))
            b = draw(st.integers(0, 255))
            op = draw(st.sampled_from(["replace", "insert", "delete"]))
            if op == "replace":
                raw = raw[:i] + bytes([b]) + raw[i + 1 :]
            elif op == "insert":
                raw = raw[:i] + bytes([b]) + raw[i:]
            else:
                raw = raw[:i] + raw[i + 1 :]
    elif kind == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    return raw


@FUZZ
@given(mutated(document_events()))
def test_mutated_document_events(raw: bytes) -> None:
    outcome_of_document(raw)
    outcome_of_document(raw, SMALL_LIMIT)


@FUZZ
@given(mutated(behavior_events()))
def test_mutated_behavior_events(raw: bytes) -> None:
    outcome_of_behavior(raw)
    outcome_of_behavior(raw, SMALL_LIMIT)


# -- explicit edges ---------------------------------------------------------------------
def nested_doc(depth: int) -> bytes:
    """An upsert whose doc nests ``depth`` levels (the doc itself is level 1)."""
    inner = b"[" * (depth - 1) + b"]" * (depth - 1)
    return b'{"op":"upsert","id":"a","version":1,"ts":1,"doc":{"x":' + inner + b"}}"


@pytest.mark.parametrize("depth", [2, 10, MAX_DOC_DEPTH])
def test_a_doc_may_nest_up_to_the_limit(depth: int) -> None:
    event = outcome_of_document(nested_doc(depth))
    assert isinstance(event, UpsertEvent)


@pytest.mark.parametrize("depth", [MAX_DOC_DEPTH + 1, 254, 255, 300, 1000])
def test_a_doc_nested_deeper_is_a_schema_violation(depth: int) -> None:
    # Past 254 levels orjson cannot write the doc back: it used to be accepted here and
    # then crash the consumer at apply time, on every redelivery.
    assert outcome_of_document(nested_doc(depth)) == "schema_violation"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not_json"),
        (b"\xef\xbb\xbf{}", "not_json"),  # a byte order mark
        (b"\xed\xa0\x80", "not_utf8"),  # a surrogate encoded as UTF-8
        (b'"\\ud83d\\ude00"', "invalid_event"),  # an escaped pair is fine JSON
        (b'{"op":"upsert","id":"a","version":1e400,"ts":1,"doc":{}}', "not_json"),
        (
            b'{"op":"upsert","id":"a","version":18446744073709551616,"ts":1,"doc":{}}',
            "invalid_event",
        ),
        (b'{"op":"upsert","id":"a","version":9223372036854775807,"ts":1,"doc":{}}', "valid"),
        (b'{"op":"delete","id":"\\ud83d\\ude00","version":0,"ts":0}', "valid"),
        (b'{"op":"delete","id":"\\u0085","version":0,"ts":0}', "invalid_event"),  # C1
        (b'{"op":"delete","id":"\\u2028","version":0,"ts":0}', "valid"),
    ],
)
def test_document_edges(raw: bytes, reason: str) -> None:
    got = outcome_of_document(raw)
    assert (got if isinstance(got, str) else "valid") == reason


@pytest.mark.parametrize(
    "event",
    [
        {"op": "字" * 3000, "id": "a", "version": 1, "ts": 1, "doc": {}},
        {"op": "upsert", "id": "a", "version": 1, "ts": 1, "doc": {}, "x" * 3000 + "字": 1},
        {"op": "upsert", "id": "a", "version": 1, "ts": 1, "doc": {"location": {"字" * 3000: 1}}},
        {"event_id": "e", "user_id": "u", "item_id": "i", "action": "字" * 9000, "ts": 1},
        {"event_id": "e", "user_id": "u", "item_id": "i", "action": "view", "ts": 1, "字" * 9: 1},
    ],
)
def test_details_quoting_the_input_are_bounded(event: dict[str, Any]) -> None:
    """A detail is the DLQ's error header: a huge key or value must not make it huge (nor
    land a multi-byte character on the header's 4,096-byte cut)."""
    raw = encode(event)
    reason = outcome_of_document(raw) if "op" in event else outcome_of_behavior(raw)
    assert reason == "invalid_event" or reason == "schema_violation"
    with pytest.raises(InvalidEvent) as e:
        if "op" in event:
            decode_document_event(raw, SCHEMA, LIMIT)
        else:
            decode_behavior_event(raw, LIMIT)
    assert len(e.value.detail.encode()) <= 4096 - 3


# -- the hostile generator (benchmarks/hostile.py) and the decoder agree ----------------
def _load_hostile() -> Any:
    """benchmarks/ is not a package: load the generator from its file."""
    if "hostile" in sys.modules:
        return sys.modules["hostile"]
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "hostile.py"
    spec = importlib.util.spec_from_file_location("hostile", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["hostile"] = module  # dataclasses look their module up while decorating
    spec.loader.exec_module(module)
    return module


def test_the_hostile_generator_predicts_every_outcome() -> None:
    """Each message's label (valid, or its DLQ reason) is what the decoder decides, so
    the end-to-end storm can check every reason; and the stream is a function of its seed."""
    hostile = _load_hostile()
    limit, now = 4096, 1_795_389_111_326
    docs = hostile.documents(2000, 11, max_bytes=limit)
    items = [i for i in hostile.WEIRD_IDS if i in hostile.expected_documents(docs).live]
    behaviors = hostile.behaviors(2000, 12, now_ms=now, items=items, max_bytes=limit)
    assert docs == hostile.documents(2000, 11, max_bytes=limit)
    assert behaviors == hostile.behaviors(2000, 12, now_ms=now, items=items, max_bytes=limit)
    wrong = []
    for m in docs + behaviors:
        try:
            if m.stream == "documents":
                decode_document_event(m.value, SCHEMA, limit)
            else:
                decode_behavior_event(m.value, limit, latest_ts=now + 3_600_000)
            got = "valid"
        except InvalidEvent as e:
            got = e.reason
        if got != m.expect:
            wrong.append((m.stream, m.category, m.expect, got, (m.value or b"")[:100]))
    assert not wrong, f"{len(wrong)} mislabelled, e.g. {wrong[:5]}"
    kinds = {m.category for m in docs + behaviors if not m.valid}
    assert len(kinds) >= 17 and {m.expect for m in docs + behaviors} == REASONS | {"valid"}
