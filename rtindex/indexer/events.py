"""Event models (the contract's formats, strictly) and the decoder that turns raw bytes into them.

One source of truth: the consumers decode with these, ``rtindex schema`` prints their
JSON Schema for producers in other languages, and the tests build events with them.
Anything that does not decode raises :class:`InvalidEvent` with a short machine
reason (the DLQ header) and a human detail.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)

from rtindex.settings import Action, IndexSchema

MAX_VERSION = (1 << 63) - 1  # Kafka-style int64; larger values are rejected, not wrapped.
MAX_TS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
# Objects and arrays nested in ``doc`` (the doc itself is level 1). The stored JSON is
# written with orjson, which refuses more than 254 levels: a deeper doc would fail at
# apply time, after decoding, and stop the consumer on every redelivery.
MAX_DOC_DEPTH = 64


# Details quote the input (keys, values): bounded, so that a hostile message cannot make
# its DLQ error header or a log line huge. 1,000 characters are at most 4,000 bytes,
# under the DLQ's 4,096-byte cut of the header.
MAX_DETAIL_CHARS = 1000


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class InvalidEvent(ValueError):
    """A message that is not a valid event. ``reason`` is a stable, short code."""

    def __init__(self, reason: str, detail: str) -> None:
        detail = _clip(detail, MAX_DETAIL_CHARS)
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # C0 and C1 control characters


def _check_id(v: str) -> str:
    n = len(v.encode("utf-8", errors="strict"))
    if not 1 <= n <= 512:
        raise ValueError("id must be 1 to 512 bytes of UTF-8")
    if _CONTROL.search(v):
        raise ValueError("id must not contain control characters")
    return v


def _check_utf8(v: str) -> str:
    # Lone surrogates (from JSON \ud800 escapes) cannot be encoded: reject, don't mangle.
    v.encode("utf-8", errors="strict")
    return v


def _check_finite(v: float) -> float:
    if not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


DocId = Annotated[StrictStr, AfterValidator(_check_utf8), AfterValidator(_check_id)]
Version = Annotated[StrictInt, Field(ge=0, le=MAX_VERSION)]
Timestamp = Annotated[StrictInt, Field(ge=0, le=MAX_TS)]

_STRICT = ConfigDict(extra="forbid", frozen=True)


class _Event(BaseModel):
    """What every document event carries; ``op`` (the discriminator) is each subclass's."""

    model_config = _STRICT
    id: DocId
    version: Version
    ts: Timestamp


class UpsertEvent(_Event):
    """The whole document."""

    op: Literal["upsert"]
    doc: dict[str, Any]


class PatchEvent(_Event):
    """Only the fields given change; a ``null`` value removes that field."""

    op: Literal["patch"]
    doc: dict[str, Any]


class DeleteEvent(_Event):
    op: Literal["delete"]


DocumentEvent = Annotated[UpsertEvent | PatchEvent | DeleteEvent, Field(discriminator="op")]


class _DocumentEnvelope(BaseModel):
    model_config = _STRICT
    event: DocumentEvent


class GeoPoint(BaseModel):
    model_config = _STRICT
    lat: Annotated[StrictFloat | StrictInt, Field(ge=-90, le=90)]
    lon: Annotated[StrictFloat | StrictInt, Field(ge=-180, le=180)]


class BehaviorEvent(BaseModel):
    """One user action on one item (the contract's section 3)."""

    model_config = _STRICT
    event_id: DocId
    user_id: DocId
    item_id: DocId
    action: Action
    ts: Timestamp
    query: Annotated[StrictStr, AfterValidator(_check_utf8), Field(max_length=1000)] | None = None
    value: Annotated[StrictFloat | StrictInt, AfterValidator(_check_finite)] | None = None
    location: GeoPoint | None = None


def _parse_json(raw: bytes | None, max_bytes: int) -> Any:
    if raw is None:
        raise InvalidEvent("empty", "the message has no value")
    if len(raw) > max_bytes:
        raise InvalidEvent("too_large", f"{len(raw)} bytes, over the {max_bytes}-byte limit")
    try:
        raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise InvalidEvent("not_utf8", str(e)) from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidEvent("not_json", str(e)) from None


def _first_error(e: ValidationError) -> str:
    errs = e.errors(include_url=False, include_input=False)
    parts = []
    for err in errs[:3]:
        loc = ".".join(_clip(str(x), 64) for x in err["loc"] if x not in ("event",))
        parts.append(f"{loc or '(event)'}: {_clip(err['msg'], 200)}")
    more = f" (+{len(errs) - 3} more)" if len(errs) > 3 else ""
    return "; ".join(parts) + more


def decode_document_event(
    raw: bytes | None, schema: IndexSchema, max_bytes: int
) -> UpsertEvent | PatchEvent | DeleteEvent:
    """Bytes -> a validated document event, or :class:`InvalidEvent`."""
    data = _parse_json(raw, max_bytes)
    if not isinstance(data, dict):
        raise InvalidEvent("invalid_event", "the event must be a JSON object")
    try:
        event = _DocumentEnvelope.model_validate({"event": data}).event
    except ValidationError as e:
        raise InvalidEvent("invalid_event", _first_error(e)) from None
    if not isinstance(event, DeleteEvent):
        if _nests_deeper(event.doc, MAX_DOC_DEPTH):
            raise InvalidEvent(
                "schema_violation", f"doc nests objects and arrays over {MAX_DOC_DEPTH} levels"
            )
        problem = check_doc_fields(event.doc, schema)
        if problem:
            raise InvalidEvent("schema_violation", problem)
    return event


def decode_behavior_event(
    raw: bytes | None, max_bytes: int, latest_ts: int | None = None
) -> BehaviorEvent:
    """Bytes -> a validated behavior event, or :class:`InvalidEvent`. With ``latest_ts``,
    an event dated after it is refused: decay is forward from each event's time, so one
    event from the far future would outweigh everything else for good."""
    data = _parse_json(raw, max_bytes)
    if not isinstance(data, dict):
        raise InvalidEvent("invalid_event", "the event must be a JSON object")
    try:
        event = BehaviorEvent.model_validate(data)
    except ValidationError as e:
        raise InvalidEvent("invalid_event", _first_error(e)) from None
    if latest_ts is not None and event.ts > latest_ts:
        raise InvalidEvent(
            "ts_in_future", f"ts {event.ts} is {event.ts - latest_ts} ms past the allowed skew"
        )
    return event


def _nests_deeper(value: dict[str, Any] | list[Any], limit: int) -> bool:
    """Whether objects and arrays nest more than ``limit`` levels (``value`` is level 1)."""
    level: list[Any] = [value]
    for _ in range(limit):
        level = [
            child
            for v in level
            for child in (v.values() if isinstance(v, dict) else v)
            if isinstance(child, (dict, list))
        ]
        if not level:
            return False
    return True


def check_doc_fields(doc: dict[str, Any], schema: IndexSchema) -> str | None:
    """Why ``doc`` violates the index schema, or None."""
    for name, value in doc.items():
        if not name or len(name) > 256:
            return f"field names must be 1-256 characters: {name[:40]!r}"
        if value is None:
            continue  # patch: remove the field; upsert: the same as absent
        if name in schema.text:
            if not isinstance(value, str):
                return f"{name}: a text field takes a string"
        elif name in schema.keyword:
            values = value if isinstance(value, list) else [value]
            if not all(isinstance(v, str) and v for v in values):
                return f"{name}: a keyword field takes a non-empty string or a list of them"
            if any(len(v.encode("utf-8", errors="replace")) > 256 for v in values):
                return f"{name}: keyword values are at most 256 bytes"
            if len(values) > 256:
                return f"{name}: at most 256 keyword values"
        elif name in schema.number:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return f"{name}: a number field takes a number"
            if not math.isfinite(float(value)):
                return f"{name}: numbers must be finite"
        elif name in schema.geo:
            try:
                GeoPoint.model_validate(value)
            except ValidationError as e:
                return f"{name}: a geo field takes {{lat, lon}} in range ({_first_error(e)})"
    return None


def behavior_json_schema() -> dict[str, Any]:
    """JSON Schema of one behavior event."""
    schema = BehaviorEvent.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "rtindex behavior event",
    }


def document_json_schema() -> dict[str, Any]:
    """JSON Schema of one document event, for producers in other languages."""
    schema = _DocumentEnvelope.model_json_schema()
    event = schema["properties"]["event"]
    out: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **event,
        "title": "rtindex document event",
        "$defs": schema.get("$defs", {}),
    }
    return out
