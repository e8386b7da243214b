"""Hostile input: bad messages of every kind, interleaved with valid (often weird) events.

    from hostile import documents, behaviors
    stream = documents(n_bad=5000, seed=7, max_bytes=4096)
    for m in stream: producer.send(topic, key=m.key, value=m.value)

Each :class:`Message` says what the consumer must do with it: ``expect`` is ``"valid"``
(it is applied) or the reason it lands in the DLQ with (``not_utf8``, ``not_json``,
``invalid_event``, ``schema_violation``, ``too_large``, ``empty``, ``ts_in_future``), decided
here from the contract, not by calling the decoder. ``category`` says how it was made.
The sequence is a pure function of the arguments (``now_ms`` included, for behaviors).

Bad documents and behaviors (round robin over the categories, variants drawn at random):
not UTF-8 (stray bytes, Latin-1, UTF-16, UTF-8-encoded surrogates, a cut multi-byte
character), truncated JSON, invalid JSON, NaN and Infinity, a value that is not an
object, wrong types, missing fields, unknown fields, unknown ``op`` or ``action``,
negative or huge versions and timestamps, ids that are empty, too long or hold control
characters, lone surrogates (JSON ``\\ud800`` escapes), deeply nested JSON, schema
violations, messages over ``max_bytes``, null values; behaviors also dated in the future.

Valid events are weird on purpose: ids that look like Redis patterns or key layouts
(``*``, ``rti:{s0}:p:x``, ``a:b:c``), emoji, right-to-left and combining text, ids of
exactly 512 bytes, extreme versions and timestamps, escaped surrogate pairs, documents of
exactly ``max_bytes``, keyword values like ``*`` and ``a:b``, stored fields nested 40
deep, Kafka keys that are not UTF-8. Every valid document has its own id, so each one is
applied; every valid behavior event has its own ``event_id``.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_VERSION = (1 << 63) - 1
MAX_TS = 253_402_300_799_999
MAX_DOC_DEPTH = 64  # rtindex.indexer.events.MAX_DOC_DEPTH
MARKER = "hostilevalid"  # a token in the body of every valid document
REASONS = frozenset(
    {
        "empty",
        "too_large",
        "not_utf8",
        "not_json",
        "invalid_event",
        "schema_violation",
        "ts_in_future",
    }
)

# Valid ids (1-512 bytes of UTF-8, no control characters) that look like anything else.
WEIRD_IDS: tuple[str, ...] = (
    "*",
    "?",
    "[a-z]*",
    "\\*",
    "a:b:c",
    ":",
    "::",
    "rti:{s0}:p:x",
    "rti:{s0}:d:x",
    "{s0}",
    "{b0}:u:x",
    "}{",
    "rti:meta",
    "rti:ops:dlq",
    "t:meta",
    "%",
    "%41",
    "100%",
    ".",
    "..",
    "...",
    ".hidden",
    "a%2Fb",
    "?q=1&k=2",
    "#frag",
    " ",
    "  leading and trailing  ",
    "a b",
    "~",
    "a\\b",
    '"quoted"',
    "'single'",
    "<script>",
    "null",
    "0",
    "-1",
    "😀",
    "👨‍👩‍👧‍👦",
    "🏳️‍🌈",
    "北京烤鸭",
    "مرحبا",
    "שלום\u200f",
    "\u202eevil",
    "e\u0301\u0301\u0301",
    "\u200b",
    "\ufeff",
    "\u2028\u2029",
    "\ue000",
    "\U0010fffd",
    "𠮷",
    "ＡＢＣ",
    "Straße",
    "x" * 512,
    "字" * 170 + "xy",  # 512 bytes
    "😀" * 128,  # 512 bytes
)
# Valid ids with a "/": GET /docs/{id} cannot name them (see tests/e2e/test_hostile.py).
SLASH_IDS: tuple[str, ...] = ("a/b", "/", "//x//", "../../etc/passwd", "http://x/y?z")
WEIRD_TEXT: tuple[str, ...] = (
    "😀👍🏽👨‍👩‍👧❤️1️⃣",
    "مرحبا بالعالم",
    "עברית\u200f ltr\u200e",
    "\u202eRTL override\u202c",
    "e\u0301\u0301 a\u0308\u0308\u0308 z\u0336\u0336",
    "zero\u200bwidth\u200djoin\ufeff",
    "tab\there\nnewline\r\n\x00nul\x01\x7f\x85\x9f",
    "ＡＢＣ１２３ ｱｲｳ Ⅻ ﬁ ①",
    "İstanbul ΣΑΣ ß",
    "𠮷野家 㐀 〇 \U0010fffd \ue000",
    "北京烤鸭 语言english iPhone15Pro c++ 3.5",
    "* ? [a-z] {s0} rti:{s0}:p:x a:b:c %s %n ${x}",
    "<script>alert(1)</script> '; DROP TABLE x; --",
    "a" * 300,
)
WEIRD_KEYWORDS: tuple[str, ...] = (
    "*",
    "?",
    "a:b",
    ":",
    "{s0}",
    "rti:{s0}:k:x",
    "😀",
    " ",
    "\u200b",
    "a=b",
    "x" * 256,
    "tab\tnl\n",
    "nul\x00byte",
    "\u2028",
)
ACTIONS = ("view", "click", "like", "cart", "purchase")


@dataclass(frozen=True, slots=True)
class Message:
    stream: str  # "documents" or "behaviors"
    category: str
    expect: str  # "valid" or the DLQ reason
    key: bytes | None
    value: bytes | None
    # Valid ones: the event as sent (its JSON value); None for bad ones.
    event: dict[str, Any] | None = None

    @property
    def valid(self) -> bool:
        return self.expect == "valid"


@dataclass
class Expected:
    """What applying the valid messages of a stream must leave behind."""

    live: dict[str, dict[str, Any]] = field(default_factory=dict)  # doc id -> doc
    deleted: set[str] = field(default_factory=set)
    # behaviors: (item, action) -> events
    counters: Counter[tuple[str, str]] = field(default_factory=Counter)
    users: set[str] = field(default_factory=set)


def dumps(obj: Any, *, ascii: bool = False) -> bytes:
    """Compact JSON, as a producer would send it (big ints kept, NaN written as NaN)."""
    text = json.dumps(obj, ensure_ascii=ascii, separators=(",", ":"), allow_nan=True)
    return text.encode("utf-8", errors="surrogatepass")


def nest(depth: int, inner: Any = 0) -> Any:
    """``inner`` inside ``depth`` alternating arrays and objects."""
    for i in range(depth):
        inner = [inner] if i % 2 else {"n": inner}
    return inner


RAW = "\ue000raw\ue000"  # a placeholder value that with_raw replaces


def with_raw(obj: Any, raw: bytes) -> bytes:
    """``obj`` as JSON with its ``RAW`` value replaced by the bytes ``raw`` (for nesting
    deeper than Python's json module recurses)."""
    out = dumps(obj).replace(dumps(RAW), raw)
    assert raw in out
    return out


def arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _utf8_class(raw: bytes) -> str | None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "not_utf8"
    return None


# -- documents -----------------------------------------------------------------------------
class _Docs:
    """Builders for one seeded stream of document events."""

    def __init__(self, rng: random.Random, max_bytes: int, ts: int) -> None:
        self.rng, self.max_bytes, self.ts = rng, max_bytes, ts
        self.n = 0

    def fresh_id(self, prefix: str = "") -> str:
        self.n += 1
        base = self.rng.choice(WEIRD_IDS[:-3])  # not the 512-byte ones
        return f"{prefix}{base}#{self.n}"

    def doc(self) -> dict[str, Any]:
        r = self.rng
        doc: dict[str, Any] = {
            "title": r.choice(WEIRD_TEXT)[:80],
            "body": f"{MARKER} {r.choice(WEIRD_TEXT)[:200]} {MARKER}",
            "category": r.choice(WEIRD_KEYWORDS),
            "tags": r.sample(WEIRD_KEYWORDS, r.randint(0, 3)),
            "city": r.choice(["杭州", "北京", "*", "a:b"]),
            "price": r.choice([0, -1, 68.5, 1e308, -1e308, 5e-324, 2**63 - 1]),
            "location": {"lat": r.choice([-90, 0, 30.26, 90]), "lon": r.choice([-180, 180, 1])},
        }
        extra = r.randrange(6)
        if extra == 0:
            doc["stored"] = {"*": [None, True, {"a:b": "c"}], "": 1, "😀": "\x00"}
        elif extra == 1:
            doc["big"] = r.choice([2**64 - 1, -(2**63), 10**30, -0.0, 1e-300])
        elif extra == 2:
            doc["deep"] = nest(40)
        elif extra == 3:
            doc["tags"] = None  # null: the same as absent
        return doc

    def event(self, op: str = "upsert", doc_id: str | None = None, **over: Any) -> dict[str, Any]:
        ev: dict[str, Any] = {
            "op": op,
            "id": doc_id if doc_id is not None else self.fresh_id(),
            "version": self.rng.choice([1, 1, 2, 7, 1 << 40]),
            "ts": self.ts,
        }
        if op != "delete":
            ev["doc"] = self.doc()
        ev.update(over)
        return ev

    def padded(self, size: int) -> bytes:
        """A valid upsert of exactly ``size`` bytes (the body padded with ASCII)."""
        ev = self.event(doc_id=self.fresh_id("pad"))
        ev["doc"]["body"] = MARKER + " "
        raw = dumps(ev)
        ev["doc"]["body"] += "p" * (size - len(raw))
        raw = dumps(ev)
        assert len(raw) == size, (len(raw), size)
        return raw


def _doc_bad(b: _Docs) -> list[tuple[str, Callable[[], tuple[bytes | None, str]]]]:
    """(category, builder) pairs; a builder returns (value, expected reason)."""
    r = b.rng

    def good() -> dict[str, Any]:
        return b.event(r.choice(["upsert", "patch", "delete"]))

    def not_utf8() -> tuple[bytes | None, str]:
        ev = b.event()
        kind = r.randrange(6)
        if kind == 0:  # a stray byte inside a string
            raw = dumps(ev)
            i = raw.index(b'"body":"') + 8
            return raw[:i] + r.choice([b"\xff", b"\xfe", b"\x80", b"\xc0\xaf", b"\xf8"]) + raw[
                i:
            ], "not_utf8"
        if kind == 1:  # Latin-1
            ev["doc"]["title"] = "café crème"
            return json.dumps(ev, ensure_ascii=False).encode("utf-8", "replace").replace(
                "é".encode(), b"\xe9"
            ), "not_utf8"
        if kind == 2:  # UTF-16 with its byte order mark
            return json.dumps(ev).encode("utf-16"), "not_utf8"
        if kind == 3:  # a surrogate encoded as UTF-8 (CESU-8 style)
            ev["id"] = "x\ud83d\ude00" if r.random() < 0.5 else "\ud800"
            return dumps(ev), "not_utf8"
        if kind == 4:  # a multi-byte character cut short at the end of a string
            raw = dumps({**ev, "id": "€"})
            i = raw.index("€".encode())
            return raw[: i + 2] + raw[i + 3 :], "not_utf8"
        return bytes(r.randrange(256) for _ in range(r.randint(1, 64))) + b"\xff", "not_utf8"

    def truncated() -> tuple[bytes | None, str]:
        raw = dumps(good())
        cut = raw[: r.randint(1, len(raw) - 1)]
        return cut, _utf8_class(cut) or "not_json"

    def invalid_json() -> tuple[bytes | None, str]:
        ev = dumps(good())
        return r.choice(
            [
                b"",
                b" ",
                b"{",
                b"}",
                b"nul",
                b"undefined",
                b"{'op': 'upsert'}",
                b'{"op":"upsert",}',
                b'{"op": upsert}',
                b'{"a":1}{"b":2}',
                ev + b"x",
                ev + b"}",
                b"// comment\n" + ev,
                b"\xef\xbb\xbf" + ev,  # a byte order mark
                ev.replace(b'"ts":', b'"ts":0x'),
                ev.replace(b'"ts":', b'"ts":+'),
                ev.replace(b'"version":', b'"version":0'),
                ev.replace(b'"id":"', b'"id":"\x01'),  # a raw control character
                ev.replace(b'"id":"', b'"id":"\\x41'),
                ev.replace(b'"id":"', b'"id":"\\u12G'),
                ev.replace(b'"id":"', b'"id":"\n'),
                b'{"op":"upsert","id":"a","version":1,"ts":1,"doc":{"title":"x"}',
            ]
        ), "not_json"

    def nan_inf() -> tuple[bytes | None, str]:
        ev = b.event()
        token = r.choice([b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999", b"nan"])
        where = r.choice(["version", "ts", "price", "stored"])
        if where in ("version", "ts"):
            ev[where] = 123456789
            raw = dumps(ev).replace(b"123456789", token, 1)
        else:
            ev["doc"][where] = 123456789
            raw = dumps(ev).replace(b"123456789", token, 1)
        return raw, "not_json"

    def not_object() -> tuple[bytes | None, str]:
        value: Any = r.choice([[], [good()], "upsert", 1, -1.5, None, True, False, [[[]]], ""])
        return dumps(value), "invalid_event"

    def wrong_type() -> tuple[bytes | None, str]:
        ev = good()
        name = r.choice(["op", "id", "version", "ts"] + (["doc"] if "doc" in ev else []))
        wrong: dict[str, list[Any]] = {
            "op": [1, None, True, ["upsert"], {"upsert": 1}],
            "id": [5, None, True, ["a"], {"a": 1}, 1.5],
            "version": ["1", 1.0, 1.5, True, None, [1], {"v": 1}],
            "ts": ["1", 1.0, False, None, [], {}],
            "doc": [[], "x", 1, True, None, [{"title": "x"}]],
        }
        ev[name] = r.choice(wrong[name])
        return dumps(ev), "invalid_event"

    def missing_field() -> tuple[bytes | None, str]:
        ev = good()
        del ev[r.choice(list(ev))]
        return dumps(ev), "invalid_event"

    def unknown_field() -> tuple[bytes | None, str]:
        ev = good()
        if ev["op"] == "delete" and r.random() < 0.5:
            ev["doc"] = {"title": "a delete takes no doc"}
        else:
            ev[r.choice(["extra", "Op", "ID", "", "doc_id", "*"])] = 1
        return dumps(ev), "invalid_event"

    def unknown_op() -> tuple[bytes | None, str]:
        op = r.choice(["merge", "UPSERT", "Upsert", "", "upsert ", " delete", "insert", "del"])
        return dumps(b.event() | {"op": op}), "invalid_event"

    def bad_version() -> tuple[bytes | None, str]:
        v = r.choice([-1, -(2**63), 2**63, 2**64 - 1, 2**64, 10**30, -0.0, 1e19])
        return dumps(good() | {"version": v}), "invalid_event"

    def bad_ts() -> tuple[bytes | None, str]:
        ts = r.choice([-1, MAX_TS + 1, 2**63, 2**64, -(2**63), 1.5e12])
        return dumps(good() | {"ts": ts}), "invalid_event"

    def bad_id() -> tuple[bytes | None, str]:
        bad = r.choice(
            [
                "",
                "x" * 513,
                "字" * 171,
                "😀" * 129,
                "a\x00b",
                "\n",
                "a\tb",
                "\x1f",
                "\x7f",
                "\x85",
                "x\x9f",
                "\x1b[31mred",
            ]
        )
        return dumps(good() | {"id": bad}, ascii=r.random() < 0.5), "invalid_event"

    def lone_surrogate() -> tuple[bytes | None, str]:
        s = r.choice(["\ud800", "\udfff", "a\udc00b", "\ude00\ud83d", "\ud83d"])
        ev = b.event()
        where = r.choice(["id", "title", "tags", "field", "stored"])
        if where == "id":
            ev["id"] = s
        elif where == "title":
            ev["doc"]["title"] = s
        elif where == "tags":
            ev["doc"]["tags"] = ["ok", s]
        elif where == "field":
            ev["doc"][s] = 1
        else:
            ev["doc"]["stored"] = {"x": [s]}
        return dumps(ev, ascii=True), "not_json"  # escaped: \ud800

    def deep() -> tuple[bytes | None, str]:
        if r.random() < 0.5:  # past the JSON parser's depth limit (1024)
            d = r.choice([1100, 1500, 2000])
            if r.random() < 0.5:
                return arrays(d), "not_json"
            return with_raw(b.event(doc={"x": RAW}), arrays(d)), "not_json"
        # Parsed, but deeper than a doc may nest (the doc itself is one more level).
        d = r.choice([MAX_DOC_DEPTH, 100, 253, 254, 300, 1000])
        return with_raw(b.event(r.choice(["upsert", "patch"]), doc={"x": RAW}), arrays(d)), (
            "schema_violation"
        )

    def schema_violation() -> tuple[bytes | None, str]:
        field_, value = r.choice(
            [
                ("price", "cheap"),
                ("price", True),
                ("price", [1]),
                ("price", {"v": 1}),
                ("title", 5),
                ("title", ["a"]),
                ("body", {"x": "y"}),
                ("body", False),
                ("tags", [1]),
                ("tags", [""]),
                ("tags", ""),
                ("tags", [["a"]]),
                ("tags", [None]),
                ("tags", ["t"] * 257),
                ("tags", ["x" * 257]),
                ("category", "字" * 86),  # 258 bytes
                ("category", {}),
                ("location", {"lat": 91, "lon": 0}),
                ("location", {"lat": 0, "lon": -180.5}),
                ("location", {"lat": "30", "lon": 120}),
                ("location", {"lat": True, "lon": 1}),
                ("location", {"lat": 1, "lon": 2, "alt": 3}),
                ("location", {"lat": 1}),
                ("location", [30, 120]),
                ("", 1),
                ("f" * 257, 1),
            ]
        )
        ev = b.event(r.choice(["upsert", "patch"]))
        ev["doc"][field_] = value
        return dumps(ev), "schema_violation"

    def too_large() -> tuple[bytes | None, str]:
        size = r.choice([b.max_bytes + 1, b.max_bytes + 2, b.max_bytes * 2, b.max_bytes * 3])
        if r.random() < 0.7:
            return b.padded(size), "too_large"
        return (b"\xff" + b"x" * size)[:size], "too_large"  # size is checked first

    def empty() -> tuple[bytes | None, str]:
        return None, "empty"

    return [
        ("not_utf8", not_utf8),
        ("truncated_json", truncated),
        ("invalid_json", invalid_json),
        ("nan_infinity", nan_inf),
        ("not_an_object", not_object),
        ("wrong_type", wrong_type),
        ("missing_field", missing_field),
        ("unknown_field", unknown_field),
        ("unknown_op", unknown_op),
        ("bad_version", bad_version),
        ("bad_ts", bad_ts),
        ("bad_id", bad_id),
        ("lone_surrogate", lone_surrogate),
        ("deeply_nested", deep),
        ("schema_violation", schema_violation),
        ("too_large", too_large),
        ("null_value", empty),
    ]


def _doc_valid(
    b: _Docs, weird: list[str]
) -> tuple[str, dict[str, Any] | None, bytes, bytes | None]:
    """(category, event, value, key) of the next valid document event."""
    r = b.rng
    if weird:
        doc_id = weird.pop()
        ev = b.event(r.choice(["upsert", "patch"]), doc_id=doc_id)
        return "weird_id", ev, dumps(ev), doc_id.encode()
    kind = r.randrange(11)
    if kind == 10:  # nothing to index: an empty doc, or only nulls
        ev = b.event(r.choice(["upsert", "patch"]), doc=r.choice([{}, {"title": None}]))
        return "empty_doc", ev, dumps(ev), None
    if kind == 0:
        ev = b.event(version=r.choice([0, MAX_VERSION, MAX_VERSION - 1]))
        return "extreme_version", ev, dumps(ev), None
    if kind == 1:
        ev = b.event(ts=r.choice([0, MAX_TS, 1]))
        return "extreme_ts", ev, dumps(ev), None
    if kind == 2:
        ev = b.event()
        return "escaped_unicode", ev, dumps(ev, ascii=True), ev["id"].encode()
    if kind == 3:
        ev = b.event()
        return "whitespace", ev, b" \n\t" + json.dumps(ev, indent=2).encode() + b"\r\n ", None
    if kind == 4:
        raw = b.padded(b.max_bytes)
        return "exactly_max_bytes", json.loads(raw), raw, None
    if kind == 5:
        ev = b.event()
        ev["doc"]["deep"] = nest(MAX_DOC_DEPTH - 1)
        return "deep_within_limit", ev, dumps(ev), None
    if kind == 6:
        ev = b.event("delete")
        return "delete_unknown_id", ev, dumps(ev), None
    if kind == 7:  # a key that is not UTF-8: the key is only the partitioner's
        ev = b.event()
        return "binary_key", ev, dumps(ev), bytes(r.randrange(256) for _ in range(8)) + b"\xff"
    ev = b.event(r.choice(["upsert", "patch"]))
    return "weird_text", ev, dumps(ev), ev["id"].encode()


def _interleave(
    n_bad: int,
    max_bytes: int,
    rng: random.Random,
    valid_every: float,
    bad: list[tuple[str, Callable[[], tuple[bytes | None, str]]]],
    make_valid: Callable[[], Message],
    make_bad: Callable[[str, bytes | None, str], Message],
    n_valid_first: int,
) -> list[Message]:
    out = [make_valid() for _ in range(n_valid_first)]
    for i in range(n_bad):
        category, build = bad[i % len(bad)]
        value, reason = build()
        if value is not None and len(value) > max_bytes:
            reason = "too_large"  # the size is checked first
        out.append(make_bad(category, value, reason))
        while rng.random() < valid_every / (1 + valid_every):
            out.append(make_valid())
    out.append(make_valid())
    return out


def documents(
    n_bad: int,
    seed: int = 1,
    *,
    max_bytes: int = 1 << 20,
    valid_every: float = 0.25,
    ts: int = 1_795_389_111_326,
    slash_ids: bool = True,
) -> list[Message]:
    """``n_bad`` bad document messages with about ``valid_every`` valid events per bad one
    (at least every weird id once). ``slash_ids``: include the ids with a "/"."""
    rng = random.Random(seed)
    b = _Docs(rng, max_bytes, ts)
    weird = list(WEIRD_IDS + (SLASH_IDS if slash_ids else ()))[::-1]
    bad = _doc_bad(b)

    def make_valid() -> Message:
        while True:
            category, ev, raw, key = _doc_valid(b, weird)
            if len(raw) <= max_bytes:
                break
            if category == "weird_id":
                assert ev is not None
                weird.append(ev["id"])  # the same id again, with another doc
        return Message("documents", category, "valid", key, raw, ev)

    def make_bad(category: str, value: bytes | None, reason: str) -> Message:
        key = None if rng.random() < 0.3 else bytes(rng.randrange(256) for _ in range(4))
        if value is None and key is None:
            key = b"null"  # Kafka needs a key or a value
        return Message("documents", category, reason, key, value)

    return _interleave(n_bad, max_bytes, rng, valid_every, bad, make_valid, make_bad, len(weird))


def as_stored(value: Any) -> Any:
    """``value`` as a JSON parser with 64-bit integers reads it back: larger integers
    become doubles (rtindex's orjson, like most parsers, does so)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        return float(value)
    if isinstance(value, list):
        return [as_stored(v) for v in value]
    if isinstance(value, dict):
        return {k: as_stored(v) for k, v in value.items()}
    return value


def expected_documents(messages: list[Message]) -> Expected:
    """The documents the valid messages leave (every valid one has its own id)."""
    out = Expected()
    for m in messages:
        if m.valid and m.stream == "documents":
            assert m.event is not None
            doc_id = m.event["id"]
            assert doc_id not in out.live and doc_id not in out.deleted, doc_id
            if m.event["op"] == "delete":
                out.deleted.add(doc_id)
            else:
                doc = m.event["doc"]
                out.live[doc_id] = {k: as_stored(v) for k, v in doc.items() if v is not None}
    return out


# -- behaviors -----------------------------------------------------------------------------
def behaviors(
    n_bad: int,
    seed: int = 1,
    *,
    now_ms: int,
    items: list[str],
    max_bytes: int = 1 << 20,
    max_future_ms: int = 3_600_000,
    valid_every: float = 0.25,
) -> list[Message]:
    """``n_bad`` bad behavior messages interleaved with valid events on ``items`` (ids of
    documents, so recall can return them) by users with weird ids, dated in the last hour
    (a few at the edge of ``max_future_ms`` and a few in 1970)."""
    rng = random.Random(seed)
    users = [*WEIRD_IDS[:30], "😀" * 128, "u-plain"]
    n = 0

    def event(**over: Any) -> dict[str, Any]:
        nonlocal n
        n += 1
        ev: dict[str, Any] = {
            "event_id": f"{rng.choice(WEIRD_IDS[:-3])}#{n}",
            "user_id": rng.choice(users),
            "item_id": rng.choice(items),
            "action": rng.choice(ACTIONS),
            "ts": now_ms - rng.randrange(3_600_000),
        }
        optional = rng.randrange(4)
        if optional == 0:
            ev["query"] = rng.choice((*WEIRD_TEXT, "x" * 1000, "字" * 1000, ""))
        elif optional == 1:
            ev["value"] = rng.choice([0, -1, 1.5, 1e308, -1e308, 5e-324, 2**64 - 1, None])
        elif optional == 2:
            ev["location"] = {"lat": rng.choice([-90, 90, 0.5]), "lon": rng.choice([-180, 180])}
        ev.update(over)
        return ev

    def not_utf8() -> tuple[bytes | None, str]:
        raw = dumps(event())
        i = raw.index(b'"user_id":"') + 11
        return raw[:i] + rng.choice([b"\xff", b"\xed\xa0\x80", b"\xc3", b"\x80"]) + raw[
            i:
        ], "not_utf8"

    def truncated() -> tuple[bytes | None, str]:
        raw = dumps(event())
        cut = raw[: rng.randint(1, len(raw) - 1)]
        return cut, _utf8_class(cut) or "not_json"

    def invalid_json() -> tuple[bytes | None, str]:
        raw = dumps(event())
        return rng.choice(
            [b"", b"{", b"]", b"{'a':1}", raw + b",", raw[:-1] + b",}", b"\xef\xbb\xbf" + raw]
        ), "not_json"

    def nan_inf() -> tuple[bytes | None, str]:
        ev = event(value=123456789)
        token = rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e400"])
        return dumps(ev).replace(b"123456789", token, 1), "not_json"

    def not_object() -> tuple[bytes | None, str]:
        return dumps(rng.choice([[event()], "click", 0, None, True, []])), "invalid_event"

    def wrong_type() -> tuple[bytes | None, str]:
        name, value = rng.choice(
            [
                ("event_id", 1),
                ("user_id", None),
                ("item_id", ["a"]),
                ("action", 1),
                ("ts", "1"),
                ("ts", 1.0),
                ("ts", True),
                ("value", "1"),
                ("value", True),
                ("value", [1]),
                ("query", 5),
                ("location", [0, 0]),
                ("location", "here"),
            ]
        )
        return dumps(event(**{name: value})), "invalid_event"

    def missing_field() -> tuple[bytes | None, str]:
        ev = event()
        del ev[rng.choice(["event_id", "user_id", "item_id", "action", "ts"])]
        return dumps(ev), "invalid_event"

    def unknown_field() -> tuple[bytes | None, str]:
        ev = event()
        ev[rng.choice(["extra", "doc", "id", "", "Action"])] = 1
        return dumps(ev), "invalid_event"

    def unknown_action() -> tuple[bytes | None, str]:
        action = rng.choice(["teleport", "CLICK", "Click", "", " view", "buy", "like\u200b"])
        return dumps(event(action=action)), "invalid_event"

    def bad_ts() -> tuple[bytes | None, str]:
        ts = rng.choice([-1, -(2**63), MAX_TS + 1, 2**63, 2**64])
        return dumps(event(ts=ts)), "invalid_event"

    def future_ts() -> tuple[bytes | None, str]:
        ts = rng.choice([now_ms + max_future_ms + 3_600_000, now_ms + 86_400_000 * 365, MAX_TS])
        return dumps(event(ts=ts)), "ts_in_future"

    def bad_id() -> tuple[bytes | None, str]:
        bad = rng.choice(["", "x" * 513, "字" * 171, "a\x00", "\n", "\x7f", "\x9f", "\x1f"])
        return dumps(event(**{rng.choice(["event_id", "user_id", "item_id"]): bad})), (
            "invalid_event"
        )

    def out_of_range() -> tuple[bytes | None, str]:
        name, value = rng.choice(
            [
                ("query", "q" * 1001),
                ("location", {"lat": 90.0001, "lon": 0}),
                ("location", {"lat": 0, "lon": -181}),
                ("location", {"lat": 0}),
                ("location", {"lat": 0, "lon": 0, "alt": 0}),
            ]
        )
        return dumps(event(**{name: value})), "invalid_event"

    def lone_surrogate() -> tuple[bytes | None, str]:
        s = rng.choice(["\ud800", "\udfff", "x\udc00"])
        name = rng.choice(["event_id", "user_id", "item_id", "query", "action"])
        return dumps(event(**{name: s}), ascii=True), "not_json"

    def deep() -> tuple[bytes | None, str]:
        if rng.random() < 0.5:
            return with_raw(event(query=RAW), arrays(rng.choice([1100, 1500]))), "not_json"
        return with_raw(event(query=RAW), arrays(rng.choice([10, 300, 1000]))), "invalid_event"

    def too_large() -> tuple[bytes | None, str]:
        ev = event(query="")
        raw = dumps(ev)
        size = rng.choice([max_bytes + 1, max_bytes * 2])
        return raw.replace(b'"query":""', b'"query":"' + b"q" * (size - len(raw)) + b'"'), (
            "too_large"
        )

    def empty() -> tuple[bytes | None, str]:
        return None, "empty"

    bad: list[tuple[str, Callable[[], tuple[bytes | None, str]]]] = [
        ("not_utf8", not_utf8),
        ("truncated_json", truncated),
        ("invalid_json", invalid_json),
        ("nan_infinity", nan_inf),
        ("not_an_object", not_object),
        ("wrong_type", wrong_type),
        ("missing_field", missing_field),
        ("unknown_field", unknown_field),
        ("unknown_action", unknown_action),
        ("bad_ts", bad_ts),
        ("ts_in_future", future_ts),
        ("bad_id", bad_id),
        ("out_of_range", out_of_range),
        ("lone_surrogate", lone_surrogate),
        ("deeply_nested", deep),
        ("too_large", too_large),
        ("null_value", empty),
    ]

    def make_valid() -> Message:
        kind = rng.randrange(8)
        category = "weird_ids"
        raw = b""
        while not raw or len(raw) > max_bytes:
            if kind == 0:
                ev, category = event(ts=rng.choice([0, 1, now_ms - 86_400_000])), "old_ts"
            elif kind == 1:  # within the allowed skew (a consumer reads the clock later)
                ev, category = event(ts=now_ms + max_future_ms // 2), "near_future_ts"
            else:
                ev = event()
            raw = dumps(ev, ascii=kind == 2)
        key = ev["user_id"].encode() if kind != 3 else b"\xff\xfe"
        return Message("behaviors", category, "valid", key, raw, ev)

    def make_bad(category: str, value: bytes | None, reason: str) -> Message:
        key = rng.choice([None, b"u", b"\xff"])
        if value is None and key is None:
            key = b"null"  # Kafka needs a key or a value
        return Message("behaviors", category, reason, key, value)

    return _interleave(n_bad, max_bytes, rng, valid_every, bad, make_valid, make_bad, 0)


def expected_behaviors(messages: list[Message]) -> Expected:
    """Per (item, action) counts and users of the valid behavior events."""
    out = Expected()
    seen: set[str] = set()
    for m in messages:
        if m.valid and m.stream == "behaviors":
            assert m.event is not None
            assert m.event["event_id"] not in seen
            seen.add(m.event["event_id"])
            out.counters[m.event["item_id"], m.event["action"]] += 1
            out.users.add(m.event["user_id"])
    return out


def categories(messages: list[Message]) -> dict[str, dict[str, int]]:
    """category -> {expected outcome: messages}, for reports."""
    out: dict[str, Counter[str]] = {}
    for m in messages:
        out.setdefault(f"{m.stream}/{m.category}", Counter())[m.expect] += 1
    return {k: dict(v) for k, v in sorted(out.items())}
