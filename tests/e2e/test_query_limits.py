"""The contract's limits on every endpoint, and queries at those limits.

Limits (contract section 5): ``q`` at most 1,000 characters, ``k`` at most 1,000,
``offset`` at most 10,000, ids at most 512 bytes of UTF-8; beyond them a 422 with a
reason, never a 5xx. Then the heaviest queries the limits allow — 1,000 characters of
mixed scripts, 1,000 distinct analyzed terms in 1,000 characters (counted with the
analyzer) — on a few thousand real documents (People's Daily paragraphs through Kafka
and the real consumers): they answer 200 or 422, and while four threads loop them,
other callers' light requests keep being answered.
No wall-clock threshold: latencies are printed (and measured by
``benchmarks/bench_load.py``), not asserted.
"""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from helpers import running, serving, wait_until
from processes import publish

from rtindex.consumers.behaviors import BehaviorConsumer
from rtindex.consumers.documents import DocumentConsumer
from rtindex.consumers.topics import ensure_topics
from rtindex.corpus import peoples_daily_paragraphs
from rtindex.demo import demo_events
from rtindex.indexer.analysis import Analyzer
from rtindex.query.server import create_app
from rtindex.runtime.servers import KafkaServer, RedisServer
from rtindex.settings import Settings

pytestmark = pytest.mark.e2e

N_DOCS = 3000
N_USERS = 40
TIMEOUT_S = 30.0  # a long client timeout: "answers", not "answers fast"


# -- one corpus for the module -----------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(kafka_server: KafkaServer, redis_server: RedisServer) -> Settings:
    """3,000 People's Daily paragraphs and 1,200 behavior events, written by the real
    consumers from the test's own topics into its own namespace."""
    uid = uuid.uuid4().hex[:12]
    s = Settings().with_overrides(
        {
            "kafka": {
                "bootstrap": kafka_server.bootstrap,
                "documents_topic": f"rtindex.documents.{uid}",
                "behaviors_topic": f"rtindex.behaviors.{uid}",
                "dlq_topic": f"rtindex.dlq.{uid}",
                "documents_group": f"rtindex-documents-{uid}",
                "behaviors_group": f"rtindex-behaviors-{uid}",
                "client_id": f"rtindex-test-{uid}",
            },
            "redis": {"url": redis_server.url, "namespace": f"t{uid}"},
        }
    )
    ensure_topics(s, partitions=3)
    docs = [orjson.dumps(e) for e in demo_events(N_DOCS)]
    rng = random.Random(11)
    now = int(time.time() * 1000) - 600_000
    events = [
        orjson.dumps(
            {
                "event_id": f"e{i}",
                "user_id": f"u-{i % N_USERS}",
                "item_id": f"pd-{1 + rng.randrange(300):06d}",
                "action": rng.choice(("view", "click", "like", "cart", "purchase")),
                "ts": now + 100 * i,
            }
        )
        for i in range(1200)
    ]
    with (
        running(DocumentConsumer(s)) as dc,
        running(BehaviorConsumer(s)) as bc,
    ):
        publish(s, s.kafka.documents_topic, docs, key_field="id")
        publish(s, s.kafka.behaviors_topic, events, key_field="user_id")
        wait_until(
            lambda: (
                sum(dc.totals.events.values()) >= len(docs)
                and sum(bc.totals.events.values()) >= len(events)
            ),
            timeout=120,
            message=lambda: f"documents {dc.totals}, behaviors {bc.totals}",
        )
    return s


@pytest.fixture(scope="module")
def service(corpus: Settings) -> Iterator[str]:
    with serving(create_app(corpus)) as base_url:
        yield base_url


@pytest.fixture
def http(service: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service, timeout=TIMEOUT_S) as c:
        yield c


def status(http: httpx.Client, path: str, **params: Any) -> int:
    r = http.get(path, params=params)
    if r.status_code == 422:
        detail = r.json()["detail"]
        assert isinstance(detail, str) and detail, r.text  # "422 with a reason"
    return r.status_code


# -- the limits, at and beyond each boundary -----------------------------------------------
HAN = "经"  # 3 bytes of UTF-8
EMOJI = "😀"  # 4 bytes, one code point
COMBINING = "e\u0301"  # two code points, one glyph


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("a" * 1000, 200),
        ("a" * 1001, 422),
        (HAN * 1000, 200),
        (HAN * 1001, 422),
        (EMOJI * 1000, 200),  # characters are code points, not bytes
        (EMOJI * 1001, 422),
        (COMBINING * 500, 200),
        (COMBINING * 500 + "e", 422),
        ("", 422),
        (" " * 1000, 200),  # no terms: nothing found
    ],
    ids=[
        "latin-1000",
        "latin-1001",
        "han-1000",
        "han-1001",
        "emoji-1000",
        "emoji-1001",
        "combining-1000",
        "combining-1001",
        "empty",
        "spaces-1000",
    ],
)
def test_q_length(http: httpx.Client, q: str, expected: int) -> None:
    for op in ("or", "and"):
        assert status(http, "/search", q=q, op=op) == expected


RECALL = [("/recommend", {"user_id": "u-1"}), ("/similar", {"item_id": "pd-000001"})]
K_ENDPOINTS = [("/search", {"q": "经济"}), *RECALL, ("/trending", {})]


@pytest.mark.parametrize(("path", "params"), K_ENDPOINTS, ids=[p for p, _ in K_ENDPOINTS])
def test_k(http: httpx.Client, path: str, params: dict[str, str]) -> None:
    for k, expected in [(0, 200), (1, 200), (1000, 200), (1001, 422), (-1, 422), ("x", 422)]:
        assert status(http, path, **params, k=k) == expected, k
    r = http.get(path, params={**params, "k": 1000})
    body = r.json()
    assert len(body["hits"] if path == "/search" else body["items"]) <= 1000


def test_offset(http: httpx.Client) -> None:
    for offset, expected in [(0, 200), (10_000, 200), (10_001, 422), (-1, 422)]:
        assert status(http, "/search", q="经济", offset=offset) == expected, offset
    deep = http.get("/search", params={"q": "的", "offset": 10_000, "k": 1000}).json()
    assert deep["hits"] == []  # fewer than 10,000 matches: an empty page, not an error


def ids_around_512() -> list[tuple[str, bool]]:
    """(id, within the limit): 512 bytes exactly and one byte over, in 1-, 3- and 4-byte
    characters (a limit in characters would accept 513 bytes of 3-byte characters)."""
    return [
        ("a" * 512, True),
        ("a" * 513, False),
        (HAN * 170 + "ab", True),  # 512 bytes, 172 characters
        (HAN * 171, False),  # 513 bytes, 171 characters
        (EMOJI * 128, True),
        (EMOJI * 128 + "a", False),
        ("a", True),
    ]


ID_CALLS = {
    "/docs/{id}": lambda h, v: h.get(f"/docs/{httpx.URL(path=v).raw_path.decode()}"),
    "/recommend": lambda h, v: h.get("/recommend", params={"user_id": v}),
    "/similar": lambda h, v: h.get("/similar", params={"item_id": v}),
    "/search?user_id": lambda h, v: h.get("/search", params={"q": "经济", "user_id": v}),
}


@pytest.mark.parametrize("call", list(ID_CALLS))
def test_ids_at_most_512_bytes(http: httpx.Client, call: str) -> None:
    for value, ok in ids_around_512():
        r = ID_CALLS[call](http, value)
        if ok:
            assert r.status_code in (200, 404), (call, len(value.encode()), r.text)
        else:
            assert r.status_code == 422, (call, len(value.encode()), r.text)
            assert "512" in r.json()["detail"] or "at most" in r.json()["detail"]


def test_empty_id_and_category_limits(http: httpx.Client) -> None:
    assert status(http, "/recommend", user_id="") == 422
    assert status(http, "/similar", item_id="") == 422
    assert http.get("/docs/").status_code == 422  # an empty id
    assert status(http, "/trending", category="c" * 256) == 200
    assert status(http, "/trending", category="c" * 257) == 422


def test_undecodable_query_string(http: httpx.Client) -> None:
    """Percent-escapes that are not UTF-8: the service decodes them with replacement
    characters (a 200) or refuses them (a 422), never a 5xx."""
    for raw in ("q=%FF%FE%FD", "q=%C3", "q=%ED%A0%80", "q=a%00b", "user_id=%FF&q=x"):
        r = http.get(f"/search?{raw}")
        assert r.status_code in (200, 422), (raw, r.text)
    assert http.get("/recommend?user_id=%FF%FE").status_code in (200, 422)


# -- the heaviest queries the limits allow -------------------------------------------------
def mixed_script_query(n: int = 1000) -> str:
    """``n`` characters cycling through Han, Latin, Cyrillic, Arabic, Devanagari, emoji
    (with skin tones and ZWJ sequences), combining marks, full-width forms, digits."""
    parts = [
        "北京烤鸭经济改革开放",
        "Hello iPhone15 naïve",
        "Привет мир экономика",
        "مرحبا بالعالم اقتصاد",
        "नमस्ते दुनिया",
        "😀👍🏽👩‍👩‍👧‍👦🇨🇳",
        "e\u0301\u0323a\u0300\u0316",
        "ＡＢＣ１２３",
        "１９９８年",
        "\u200f\u200d\ufeff",
    ]
    out, i = "", 0
    while len(out) < n:
        out += parts[i % len(parts)] + " "
        i += 1
    return out[:n]


def corpus_terms(analyzer: Analyzer) -> list[str]:
    """Distinct indexed Han words of 2+ characters, in a fixed shuffled order."""
    text = "".join(p for p, _ in zip(peoples_daily_paragraphs(), range(N_DOCS), strict=False))
    seen = dict.fromkeys(
        t for t in analyzer.tokens(text) if len(t) >= 2 and re.fullmatch(r"[\u4e00-\u9fff]+", t)
    )
    terms = list(seen)
    random.Random(3).shuffle(terms)
    return terms


def thousand_distinct_terms(analyzer: Analyzer) -> str:
    """1,000 characters that the analyzer reads as 1,000 distinct terms: the corpus' 500
    commonest single-character Han tokens (each with postings), each followed by a Hangul
    syllable of its own. A Hangul letter ends the Han run (only Han text reaches the
    segmenter, so no two Han characters can merge into a word) and is a one-letter word
    itself. Spaces would double the length: ``1000-terms-spaced`` is over the limit."""
    text = "".join(p for p, _ in zip(peoples_daily_paragraphs(), range(N_DOCS), strict=False))
    counts = Counter(t for t in analyzer.tokens(text) if re.fullmatch(r"[\u4e00-\u9fd5]", t))
    han = [t for t, _n in counts.most_common(500)]
    hangul = [chr(0xAC00 + 7 * i) for i in range(len(han))]  # 가, 갇, ...: all distinct
    return "".join(h + k for h, k in zip(han, hangul, strict=True))


def heavy_queries(settings: Settings) -> dict[str, str]:
    analyzer = Analyzer(settings.analysis)
    terms = corpus_terms(analyzer)
    spaced = " ".join(terms[:1000])  # 1,000 distinct terms: over the length limit
    packed = ""
    for t in terms:  # as many distinct indexed terms as 1,000 characters hold
        if len(packed) + len(t) > 1000:
            break
        packed += t
    chars = "".join(dict.fromkeys(c for t in terms for c in t))[:1000]
    return {
        "mixed-scripts": mixed_script_query(),
        "1000-terms-spaced": spaced,
        "terms-packed-1000-chars": packed,
        "1000-distinct-han-chars": chars,
        "terms-spaced-1000-chars": spaced[:1000],
        "1000-distinct-terms": thousand_distinct_terms(analyzer),
    }


@pytest.fixture(scope="module")
def heavy(corpus: Settings) -> dict[str, str]:
    queries = heavy_queries(corpus)
    analyzer = Analyzer(corpus.analysis)
    assert len(set(queries["1000-terms-spaced"].split())) == 1000
    assert len(set(analyzer.tokens(queries["terms-packed-1000-chars"]))) > 400
    thousand = queries["1000-distinct-terms"]
    assert len(thousand) == 1000
    tokens = analyzer.tokens(thousand)
    assert len(tokens) == len(set(tokens)) == 1000, (len(tokens), len(set(tokens)))
    return queries


def test_heavy_queries_answer_200_or_422(http: httpx.Client, heavy: dict[str, str]) -> None:
    for name, q in heavy.items():
        for op in ("or", "and"):
            t0 = time.perf_counter()
            r = http.get("/search", params={"q": q, "op": op, "k": 1000})
            ms = (time.perf_counter() - t0) * 1e3
            print(f"{name} op={op}: {r.status_code} in {ms:.0f} ms")
            assert r.status_code == (200 if len(q) <= 1000 else 422), (name, op, r.text[:300])
            if r.status_code == 200:
                body = r.json()
                assert body["total"] >= len(body["hits"]) and len(body["hits"]) <= 1000
                if op == "or" and name != "mixed-scripts":
                    assert body["total"] > 0  # real terms: it finds documents
    # A heavy query with every filter and personalization at once.
    r = http.get(
        "/search",
        params={
            "q": heavy["terms-packed-1000-chars"],
            "k": 1000,
            "offset": 5,
            "category": ["经济", "政治"],
            "price_min": 1,
            "price_max": 400,
            "lat": 39.9,
            "lon": 116.4,
            "radius_km": 2000,
            "user_id": "u-3",
        },
    )
    assert r.status_code == 200, r.text


def light_requests_beside(
    service: str, queries: list[str], statuses: set[int], threads: int = 4
) -> None:
    """``threads`` threads loop ``queries`` (k=1,000, op or and in turn) while this thread
    sends 150 light requests (/healthz and a one-word /search), one after another: every
    light request is answered, while heavy ones are in flight, not after them; every
    heavy answer's status is in ``statuses``."""
    stop = threading.Event()
    lock = threading.Lock()
    heavy_spans: list[tuple[float, float, int]] = []
    in_flight = [0]
    errors: list[BaseException] = []

    def loop_heavy(worker: int) -> None:
        try:
            with httpx.Client(base_url=service, timeout=TIMEOUT_S) as c:
                i = worker
                while not stop.is_set():
                    q, op = queries[i % len(queries)], ("or", "and")[i % 2]
                    i += 1
                    with lock:
                        in_flight[0] += 1
                    t0 = time.monotonic()
                    r = c.get("/search", params={"q": q, "op": op, "k": 1000})
                    with lock:
                        in_flight[0] -= 1
                        heavy_spans.append((t0, time.monotonic(), r.status_code))
        except BaseException as e:  # reported by the assertions below
            errors.append(e)

    workers = [threading.Thread(target=loop_heavy, args=(w,), daemon=True) for w in range(threads)]
    for t in workers:
        t.start()
    light: list[tuple[str, float, float, int, int]] = []  # path, start, end, status, in flight
    try:
        wait_until(lambda: in_flight[0] >= threads - 1, timeout=TIMEOUT_S, interval=0.001)
        with httpx.Client(base_url=service, timeout=TIMEOUT_S) as c:
            for i in range(150):
                path, params = ("/healthz", {}) if i % 2 else ("/search", {"q": "经济", "k": 10})
                t0 = time.monotonic()
                r = c.get(path, params=params)
                t1 = time.monotonic()
                with lock:
                    busy = in_flight[0]
                light.append((path, t0, t1, r.status_code, busy))
        wait_until(lambda: len(heavy_spans) >= 8, timeout=120, message="heavy queries stalled")
    finally:
        stop.set()
        for t in workers:
            t.join(timeout=2 * TIMEOUT_S)
    assert not errors, errors
    assert all(t.is_alive() is False for t in workers)
    assert all(s == 200 for *_, s, _b in light), [x for x in light if x[3] != 200][:5]
    assert {s for *_, s in heavy_spans} <= statuses, {s for *_, s in heavy_spans}
    # Interleaving: light requests finished while heavy ones were still running.
    during = [x for x in light if any(h0 < x[2] < h1 for h0, h1, _s in heavy_spans)]
    assert len(during) >= 0.9 * len(light), (len(during), len(light))
    overlapped = [h for h in heavy_spans if sum(h[0] < x[2] < h[1] for x in light) >= 2]
    assert overlapped, "no heavy query saw two light requests complete while it ran"
    for path in ("/healthz", "/search"):
        ms = sorted((x[2] - x[1]) * 1e3 for x in light if x[0] == path)
        print(f"light {path}: n {len(ms)} p50 {ms[len(ms) // 2]:.1f} ms max {ms[-1]:.1f} ms")
    hv = sorted((h1 - h0) * 1e3 for h0, h1, _s in heavy_spans)
    print(f"heavy /search: n {len(hv)} p50 {hv[len(hv) // 2]:.0f} ms max {hv[-1]:.0f} ms")


def test_light_requests_interleave_with_heavy_queries(service: str, heavy: dict[str, str]) -> None:
    """Four threads loop every heavy query within the length limit: 200 or 422 each,
    and other callers' light requests keep being answered meanwhile."""
    queries = [q for q in heavy.values() if len(q) <= 1000]
    light_requests_beside(service, queries, {200, 422})


def test_a_thousand_distinct_terms_never_block_other_callers(
    service: str, heavy: dict[str, str]
) -> None:
    """The query of 1,000 distinct analyzed terms in 1,000 characters (within every
    limit: it answers 200, or, were a term limit ever added, a 422), looped by four
    threads in both modes, while another caller's light requests are all answered
    during it."""
    light_requests_beside(service, [heavy["1000-distinct-terms"]], {200, 422})


def test_fifty_concurrent_callers_get_no_errors(service: str) -> None:
    """More callers at once than the service has handler threads (40) or Redis
    connections (32): the surplus waits its turn; nobody gets a 503 ("Too many
    connections") or any other error."""
    n_clients, per_client = 50, 8
    start = threading.Barrier(n_clients)
    codes: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    words = ["经济", "改革 开放", "北京 发展 合作", "国际", "人民 生活"]

    def client(c: int) -> None:
        try:
            with httpx.Client(base_url=service, timeout=TIMEOUT_S) as h:
                start.wait(timeout=TIMEOUT_S)
                for i in range(per_client):
                    j = c * per_client + i
                    path, params = [
                        ("/search", {"q": words[j % len(words)], "k": 50}),
                        ("/recommend", {"user_id": f"u-{j % N_USERS}", "k": 50}),
                        ("/similar", {"item_id": f"pd-{1 + j % 300:06d}"}),
                        ("/trending", {"k": 50}),
                    ][j % 4]
                    r = h.get(path, params=params)
                    with lock:
                        codes.append(r.status_code)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=4 * TIMEOUT_S)
    assert not errors, errors[:3]
    assert len(codes) == n_clients * per_client
    assert set(codes) == {200}, {c: codes.count(c) for c in set(codes)}
