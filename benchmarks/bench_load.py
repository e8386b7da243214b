"""Load: the query service under 50 concurrent clients while the consumers index.

    python benchmarks/bench_load.py [--quick] [--docs N] [--requests N] [--clients 50]
                                    [--doc-rate 100] [--behavior-rate 300] [--backlog 500]

Everything is a real process on loopback: Tansu and Valkey (common.servers), the query
service (`rtindex serve`, uvicorn), `rtindex consume documents` and `rtindex consume
behaviors`, each in its own process; the load generator runs in processes of its own, so
its work never shares a GIL with the producer and the freshness poller here.

1. Preload, through Kafka and the consumers: N documents (common.texts: real People's
   Daily documents) and 4 N behavior events (500 users, skewed activity; items drawn
   with a skewed popularity), and wait until Redis holds them all.
2. Background writes for the rest of the run (seeded): a producer thread sends document
   upserts at ``--doc-rate``/s (half new documents, half new versions of preloaded ones,
   each body with a unique token) and behavior events at ``--behavior-rate``/s. Fixed
   rates, because freshness means something only at a rate the consumers sustain; but
   never more than ``--backlog`` documents (2x for behaviors) sent and not yet applied:
   if the consumers fall behind, the producer slows to their pace (reported as seconds
   held back) rather than queueing without end. Then a warm-up: one ``ops.window_s``
   (60 s; 3 s with --quick), so the consumers' rolling figures cover the steady state.
3. Phase A, the load: ``--clients`` concurrent keep-alive connections (a small asyncio
   HTTP/1.1 client on uvloop, in its own process; httpx.AsyncClient was itself the
   bottleneck at 50 connections) share a fixed list of ``--requests`` requests (seeded):
   55% /search of 1-3 terms of a random indexed document (80% op=or, 20% op=and, k=10),
   20% /recommend (k=20), 15% /similar (k=20), 10% /trending (k=20, half with a
   category). Each connection sends its next request when its previous one is answered.
   Recorded: every request's latency and status; a failure is a status other than 200, a
   connection error or no answer within 30 s. The run exits 1 if any request failed.
4. Phase B, heavy next to light: four threads (another process) loop the heaviest
   queries the limits allow (1,000 characters: packed corpus terms, 1,000 distinct Han
   characters, mixed scripts, 1,000 distinct analyzed terms; k=1,000, op or and) while
   one connection sends light
   requests one after another (/healthz and a one-word /search): their latency next to
   heavy work (the test suite asserts they are answered; this measures how fast).
5. Freshness, the whole time, for every document event: a poller thread here reads the
   forward key's version (Keys.doc ``v``; the oldest 64 pending, one pipelined HGET round
   every 5 ms: "exact"); another thread looks every 10th event up through the loaded
   service once its version shows, GET /search?q=<tokens of all such events waiting>
   (each token finds only its own document), until found ("search": resolution one
   answer under load). Latency = found (wall clock) - event ``ts`` (its send time). The
   consumers' own figures (status reports via /stats: every event, behaviors included)
   are recorded at the end of each phase.
6. Catch-up: the writes stop, and the run waits (up to ``CATCH_UP_S``, 120 s) until
   every document event sent shows its version in Redis and every behavior event sent is
   applied, and reports how long that took. The run exits 1 if anything sent was not
   applied by then.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import itertools
import multiprocessing as mp
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import orjson
import redis
import uvloop
from common import (
    SEED,
    log,
    now_ms,
    pct,
    save,
    servers,
    settings_env,
    settings_for,
    start_api,
    summary_ms,
    table,
    texts,
    upsert,
)

from rtindex.consumers.publish import make_producer
from rtindex.consumers.topics import ensure_topics
from rtindex.demo import CATEGORY_KEYWORDS
from rtindex.indexer.analysis import Analyzer
from rtindex.indexer.keys import Keys
from rtindex.query.recall import Recaller
from rtindex.query.search import Searcher
from rtindex.runtime.servers import ManagedProcess, free_port
from rtindex.settings import Settings

N_USERS = 500
PROBE_EVERY = 10
POLL_S = 0.005
MAX_CHECK = 64  # oldest pending documents checked per poller round
TIMEOUT_S = 30.0
CATCH_UP_S = 120.0  # after the writes stop, how long everything sent may take to apply
MIX = [("/search", 0.55), ("/recommend", 0.20), ("/similar", 0.15), ("/trending", 0.10)]


def token(i: int) -> str:
    """A unique all-letter token (one analyzer token), as in bench_freshness."""
    s = ""
    while True:
        i, r = divmod(i, 26)
        s += chr(ord("a") + r)
        if i == 0:
            return "zl" + s


# -- processes -----------------------------------------------------------------------
def start_consumer(s: Settings, stream: str) -> ManagedProcess:
    argv = [sys.executable, "-m", "rtindex", "consume", stream, "--metrics-port", "0"]
    argv += ["--metrics-port", str(free_port())]
    return ManagedProcess(argv, Path(f"/tmp/rtindex-bench-load-{stream}.log"), env=settings_env(s))


# -- events ---------------------------------------------------------------------------
class Catalog:
    """Prebuilt document bodies (build_doc is ~1 ms each: not inside the clock) and the
    behavior event generator."""

    def __init__(self, n_docs: int, rng: random.Random) -> None:
        docs, self.n_real = texts(n_docs)
        self.events = [upsert(i, t, ts=1) for i, t in enumerate(docs)]
        self.ids = [e["id"] for e in self.events]
        self.rng = rng
        self.weights = [1 / (1 + r) ** 0.8 for r in range(len(self.ids))]  # skewed
        rng.shuffle(self.weights)
        self.cum_weights = list(itertools.accumulate(self.weights))
        self.n_behaviors = 0

    def document(self, i: int) -> dict[str, Any]:
        """Event ``i`` of the background writes: even ones are new documents (ids beyond
        the preload), odd ones new versions of preloaded ones; each body is a preloaded
        body plus a token of its own, so a search for the token finds exactly it."""
        n = len(self.events)
        j = i // 2
        base = self.events[(j * 7919) % n]
        doc = dict(base["doc"], body=f"{base['doc']['body']} {token(i)}")
        if i % 2 == 0:
            doc_id, version = f"n-{j:07d}", 1
        else:
            doc_id, version = self.ids[j % n], 2 + j // n
            doc = dict(self.events[j % n]["doc"], body=doc["body"])
        return {"op": "upsert", "id": doc_id, "version": version, "ts": now_ms(), "doc": doc}

    def behavior(self) -> dict[str, Any]:
        j = self.n_behaviors
        self.n_behaviors += 1
        rng = self.rng
        return {
            "event_id": f"ev-{j}",
            "user_id": f"u-{int(N_USERS * rng.random() ** 2)}",  # skewed: u-0 most active
            "item_id": rng.choices(self.ids, cum_weights=self.cum_weights)[0],
            "action": rng.choices(("view", "click", "like", "cart", "purchase"), (8, 5, 2, 1, 1))[
                0
            ],
            "ts": now_ms(),
        }


def preload(s: Settings, cat: Catalog, n_behaviors: int, rc: redis.Redis) -> dict[str, Any]:
    producer = make_producer(s)
    t0 = time.perf_counter()
    try:
        for e in cat.events:
            e["ts"] = now_ms()
            producer.send(s.kafka.documents_topic, orjson.dumps(e), key=e["id"].encode())
        for _ in range(n_behaviors):
            b = cat.behavior()
            producer.send(s.kafka.behaviors_topic, orjson.dumps(b), key=b["user_id"].encode())
        producer.flush()
    finally:
        producer.close()
    searcher = Searcher(rc, s, Analyzer(s.analysis))
    recaller = Recaller(rc, s)
    deadline = time.monotonic() + 600
    while True:
        docs = searcher.index_stats()["documents"]
        b = recaller.behavior_stats()
        done = b["behavior_events"] + b["behavior_duplicates"]
        if docs >= len(cat.events) and done >= n_behaviors:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"preload stalled: {docs} documents, {done} behavior events")
        time.sleep(0.2)
    return {"seconds": time.perf_counter() - t0, "documents": docs, "behaviors": done}


class Writer:
    """The paced producer and the freshness poller, as threads of this process.

    The producer sends at fixed rates, but never lets more than ``backlog`` documents
    (and 2 x ``backlog`` behavior events) wait unapplied: if the consumers cannot keep
    up, it slows down to their pace instead of building a queue without end (and says
    so: ``throttled``).
    """

    def __init__(
        self,
        s: Settings,
        cat: Catalog,
        url: str,
        doc_rate: float,
        behavior_rate: float,
        backlog: int,
        behaviors_before: int,
    ) -> None:
        self.s, self.cat, self.url = s, cat, url
        self.doc_rate, self.behavior_rate, self.backlog = doc_rate, behavior_rate, backlog
        self.behaviors_before = behaviors_before
        self.stop = threading.Event()
        self.sent: list[tuple[str, int, int]] = []  # (id, version, ts) of each document event
        self.found: dict[int, float] = {}  # index in sent -> wall ms its version showed
        self.found_search: dict[int, float] = {}
        self.searches = 0
        self.superseded = 0  # probes replaced by a newer version before found
        self.behaviors_sent = 0
        self.behaviors_applied = 0
        self.throttled = {"documents": 0.0, "behaviors": 0.0}  # seconds held back
        self.loop_ms: list[float] = []
        self.keys = Keys(s.redis.namespace, s.index.shards)
        self.to_search: collections.deque[int] = collections.deque()
        self.exact_done = threading.Event()
        self.exact_done_at: float | None = None  # monotonic: every document event found
        self.threads = [
            threading.Thread(target=self._produce, daemon=True),
            threading.Thread(target=self._poll, daemon=True),
            threading.Thread(target=self._search, daemon=True),
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def finish(self, timeout_s: float = CATCH_UP_S) -> dict[str, Any]:
        """Stop producing, then wait (up to ``timeout_s``) until every document event sent
        shows its version in Redis and every behavior event sent is applied. Returns the
        seconds each stream took to catch up after the writes stopped (None: not within
        ``timeout_s``) and what was still unapplied at the end."""
        self.stop.set()
        self.threads[0].join()  # it flushed its producer: everything sent is in Kafka
        stopped = time.monotonic()
        deadline = stopped + timeout_s
        rc = redis.Redis.from_url(self.s.redis.url)
        recaller = Recaller(rc, self.s)
        behaviors_at: float | None = None
        try:
            while True:
                b = recaller.behavior_stats()
                applied = b["behavior_events"] + b["behavior_duplicates"]
                self.behaviors_applied = applied - self.behaviors_before
                now = time.monotonic()
                if behaviors_at is None and self.behaviors_applied >= self.behaviors_sent:
                    behaviors_at = now
                if (behaviors_at is not None and self.exact_done.is_set()) or now > deadline:
                    break
                time.sleep(0.05)
        finally:
            rc.close()
        for t in self.threads[1:]:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        docs_at = self.exact_done_at

        def since_stop(t: float | None) -> float | None:
            return None if t is None else round(max(0.0, t - stopped), 2)

        return {
            "timeout_s": timeout_s,
            "documents_s": since_stop(docs_at),
            "behaviors_s": since_stop(behaviors_at),
            "documents_unapplied": len(self.sent) - len(self.found),
            "behaviors_unapplied": max(0, self.behaviors_sent - self.behaviors_applied),
        }

    def _produce(self) -> None:
        producer = make_producer(self.s)
        rc = redis.Redis.from_url(self.s.redis.url)
        recaller = Recaller(rc, self.s)
        topic_d, topic_b = self.s.kafka.documents_topic, self.s.kafka.behaviors_topic
        n_d = n_b = 0
        credit_d = credit_b = 0.0  # token buckets: events due at the fixed rates
        last = checked = time.perf_counter()
        try:
            while not self.stop.is_set():
                now = time.perf_counter()
                dt, last = now - last, now
                if now - checked > 0.05:
                    b = recaller.behavior_stats()
                    applied = b["behavior_events"] + b["behavior_duplicates"]
                    self.behaviors_applied = applied - self.behaviors_before
                    checked = now
                room_d = self.backlog - (n_d - len(self.found))
                room_b = 2 * self.backlog - (n_b - self.behaviors_applied)
                credit_d += dt * self.doc_rate
                credit_b += dt * self.behavior_rate
                if credit_d > max(room_d, 0) + 1:  # the consumers are behind: wait for them
                    credit_d = max(room_d, 0)
                    self.throttled["documents"] += dt
                if credit_b > max(room_b, 0) + 1:
                    credit_b = max(room_b, 0)
                    self.throttled["behaviors"] += dt
                while credit_d >= 1:
                    e = self.cat.document(n_d)
                    producer.send(topic_d, orjson.dumps(e), key=e["id"].encode())
                    self.sent.append((e["id"], e["version"], e["ts"]))
                    n_d += 1
                    credit_d -= 1
                while credit_b >= 1:
                    ev = self.cat.behavior()
                    producer.send(topic_b, orjson.dumps(ev), key=ev["user_id"].encode())
                    n_b += 1
                    credit_b -= 1
                self.behaviors_sent = n_b
                time.sleep(0.002)
            producer.flush()
        finally:
            producer.close()
            rc.close()

    def _poll(self) -> None:
        """Exact: each document event's version in its forward key, oldest first."""
        rc = redis.Redis.from_url(self.s.redis.url)
        keys = self.keys
        pending: set[int] = set()
        seen = 0
        while True:
            t_loop = time.perf_counter()
            stopping = self.stop.is_set()
            upto = len(self.sent)
            pending.update(range(seen, upto))
            seen = upto
            if pending:
                # The oldest only: a backlog is applied roughly in order, and checking all
                # of it every round would load Redis more than the queries do.
                order = sorted(pending)[:MAX_CHECK]
                pipe = rc.pipeline(transaction=False)
                for i in order:
                    doc_id = self.sent[i][0]
                    pipe.hget(keys.doc(keys.shard_of(doc_id), doc_id), "v")
                now = time.time() * 1000
                for i, v in zip(order, pipe.execute(), strict=True):
                    if v is not None and int(v) >= self.sent[i][1]:
                        self.found[i] = now
                        pending.discard(i)
                        if i % PROBE_EVERY == 0:
                            self.to_search.append(i)
            self.loop_ms.append((time.perf_counter() - t_loop) * 1e3)
            if stopping and not pending and seen == len(self.sent):
                break
            time.sleep(POLL_S)
        self.exact_done_at = time.monotonic()
        self.exact_done.set()
        rc.close()

    def _search(self) -> None:
        """Visible in /search: every PROBE_EVERY-th event, once its version shows, is
        looked for through the service by its unique token. One GET per round asks for
        all the waiting ones at once (their tokens, op=or: each token finds only its own
        document), so the probe keeps up however slow an answer is under load; the
        resolution is one answer's latency. Its own thread: a slow answer must not delay
        the exact poller."""
        pending: dict[str, int] = {}  # token -> index in sent
        with httpx.Client(base_url=self.url, timeout=TIMEOUT_S) as http:
            while True:
                done = self.exact_done.is_set()
                while self.to_search:
                    i = self.to_search.popleft()
                    pending[token(i)] = i
                if pending:
                    ask = sorted(pending, key=pending.__getitem__)[:100]
                    self.searches += 1
                    r = http.get("/search", params={"q": " ".join(ask), "k": len(ask)})
                    now = time.time() * 1000
                    for hit in r.json()["hits"] if r.status_code == 200 else []:
                        i = pending.pop(hit["doc"]["body"].rsplit(" ", 1)[-1], -1)
                        if i >= 0:
                            self.found_search[i] = now
                    for t, i in list(pending.items()):
                        if now - self.found[i] > 60_000:  # a newer version replaced it
                            del pending[t]
                            self.superseded += 1
                if done and not pending and not self.to_search:
                    break
                time.sleep(POLL_S)

    def freshness(self, t0_ms: float, t1_ms: float) -> dict[str, Any]:
        """Over the document events sent between t0 and t1 (wall ms)."""
        window = [i for i, (_id, _v, ts) in enumerate(self.sent) if t0_ms <= ts <= t1_ms]
        exact = [self.found[i] - self.sent[i][2] for i in window if i in self.found]
        search = [self.found_search[i] - self.sent[i][2] for i in window if i in self.found_search]
        return {
            "sent": len(window),
            "exact": summary_ms(exact),
            "not_found": len(window) - len(exact),
            "search": summary_ms(search),
        }


# -- the load generator (child processes) -----------------------------------------------
def make_requests(
    n: int, rng: random.Random, vocab: list[list[str]], cat: Catalog
) -> list[tuple[str, dict[str, Any]]]:
    paths = [p for p, _ in MIX]
    weights = [w for _, w in MIX]
    categories = list(CATEGORY_KEYWORDS)
    out: list[tuple[str, dict[str, Any]]] = []
    for _ in range(n):
        path = rng.choices(paths, weights)[0]
        params: dict[str, Any]
        if path == "/search":
            terms = vocab[rng.randrange(len(vocab))]
            k = min(len(terms), rng.choice((1, 2, 3)))
            op = "and" if rng.random() < 0.2 else "or"
            params = {"q": " ".join(rng.sample(terms, k)), "k": 10, "op": op}
        elif path == "/recommend":
            params = {"user_id": f"u-{rng.randrange(N_USERS)}", "k": 20}
        elif path == "/similar":
            params = {"item_id": rng.choices(cat.ids, cum_weights=cat.cum_weights)[0], "k": 20}
        else:
            params = {"k": 20}
            if rng.random() < 0.5:
                params["category"] = rng.choice(categories)
        out.append((path, params))
    return out


def http_target(path: str, params: dict[str, Any]) -> str:
    return path + ("?" + urlencode(params, doseq=True) if params else "")


def run_load(url: str, requests: list[tuple[str, dict[str, Any]]], clients: int) -> dict[str, Any]:
    """``clients`` concurrent keep-alive connections share the request list; each sends
    its next request when its previous one is answered. Records (path, start wall ms,
    latency ms, status or -1 for an error or a timeout).

    The client is a few lines of asyncio (uvloop) HTTP/1.1 rather than httpx: at 50
    concurrent connections httpx.AsyncClient's own overhead was the bottleneck (it
    measured ~200 requests/s of /healthz where this client measures ~800 and more)."""
    u = urlsplit(url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    targets = [
        f"GET {http_target(p, q)} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode() for p, q in requests
    ]

    async def main() -> dict[str, Any]:
        records: list[tuple[str, float, float, int]] = []
        errors: list[str] = []
        nxt = 0

        async def exchange(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
        ) -> tuple[int, bytes]:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            return int(head[9:12]), await reader.readexactly(length)

        async def client(warm: bytes) -> None:
            nonlocal nxt
            nonlocal ready
            reader, writer = await asyncio.open_connection(host, port)
            try:
                await exchange(reader, writer, warm)  # connection up, outside the clock
                ready += 1
                if ready == clients:
                    all_ready.set()
                await start.wait()
                while nxt < len(targets):
                    i = nxt
                    nxt += 1
                    w0, t0 = time.time(), time.perf_counter()
                    try:
                        status, body = await asyncio.wait_for(
                            exchange(reader, writer, targets[i]), TIMEOUT_S
                        )
                        if status != 200 and len(errors) < 20:
                            errors.append(f"{requests[i][0]} {status} {body[:200]!r}")
                    except (OSError, asyncio.IncompleteReadError, TimeoutError) as e:
                        status = -1
                        if len(errors) < 20:
                            errors.append(f"{requests[i][0]} {type(e).__name__}: {e}")
                        writer.close()
                        reader, writer = await asyncio.open_connection(host, port)
                    latency = (time.perf_counter() - t0) * 1e3
                    records.append((requests[i][0], w0 * 1000, latency, status))
            finally:
                writer.close()

        start, all_ready = asyncio.Event(), asyncio.Event()
        ready = 0
        warm = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        tasks = [asyncio.create_task(client(warm)) for _ in range(clients)]
        await asyncio.wait_for(all_ready.wait(), TIMEOUT_S)
        wall0, t_start = time.time(), time.perf_counter()
        start.set()
        await asyncio.gather(*tasks)
        return {
            "records": records,
            "errors": errors,
            "seconds": time.perf_counter() - t_start,
            "wall": (wall0 * 1000, time.time() * 1000),
        }

    return uvloop.run(main())


def _load_child(url: str, requests: list[Any], clients: int, q: Any) -> None:
    gc.freeze()
    q.put(run_load(url, requests, clients))


def _heavy_child(url: str, queries: list[str], threads: int, stop: Any, q: Any) -> None:
    spans: list[tuple[float, float, int, str]] = []
    running = threading.Semaphore(0)

    def loop(w: int) -> None:
        with httpx.Client(base_url=url, timeout=TIMEOUT_S) as c:
            i = w
            running.release()
            while not stop.is_set():
                qq, op = queries[i % len(queries)], ("or", "and")[(i // len(queries)) % 2]
                i += 1
                t0 = time.time()
                try:
                    status = c.get("/search", params={"q": qq, "op": op, "k": 1000}).status_code
                except httpx.HTTPError:
                    status = -1
                spans.append((t0 * 1000, time.time() * 1000, status, op))

    ts = [threading.Thread(target=loop, args=(w,), daemon=True) for w in range(threads)]
    for t in ts:
        t.start()
    for _ in ts:
        running.acquire()
    q.put("running")
    for t in ts:
        t.join()
    q.put(spans)


def _light_child(url: str, n: int, q: Any) -> None:
    light = [("/healthz", {}) if i % 2 else ("/search", {"q": "经济", "k": 10}) for i in range(n)]
    q.put(run_load(url, light, 1)["records"])


def heavy_queries(s: Settings, cat: Catalog) -> list[str]:
    import re

    an = Analyzer(s.analysis)
    words: dict[str, None] = {}
    for e in cat.events[:3000]:
        for t in an.tokens(e["doc"]["body"]):
            if len(t) >= 2 and re.fullmatch(r"[\u4e00-\u9fff]+", t):
                words[t] = None
    terms = list(words)
    random.Random(3).shuffle(terms)
    packed = ""
    for t in terms:
        if len(packed) + len(t) > 1000:
            break
        packed += t
    chars = "".join(dict.fromkeys(c for t in terms for c in t))[:1000]
    scripts = [
        "北京烤鸭经济改革",
        "Hello iPhone15 naïve",
        "Привет мир",
        "مرحبا بالعالم",
        "नमस्ते",
        "😀👍🏽👩\u200d👩\u200d👧",
        "e\u0301\u0323",
        "ＡＢＣ１２３",
    ]
    mixed = (" ".join(scripts) + " ") * 40
    return [packed, chars, mixed[:1000], distinct_terms(an, cat)]


def distinct_terms(an: Analyzer, cat: Catalog) -> str:
    """1,000 characters, 1,000 distinct analyzed terms (as tests/e2e/test_query_limits.py
    builds them): the 500 commonest single-character Han tokens of the corpus, each
    followed by a Hangul syllable of its own (which ends the Han run: no two characters
    can merge into a word)."""
    import re

    counts = collections.Counter(
        t
        for e in cat.events[:3000]
        for t in an.tokens(e["doc"]["body"])
        if re.fullmatch(r"[\u4e00-\u9fd5]", t)
    )
    han = [t for t, _n in counts.most_common(500)]
    q = "".join(h + chr(0xAC00 + 7 * i) for i, h in enumerate(han))
    tokens = an.tokens(q)
    assert len(q) <= 1000 and len(set(tokens)) == len(q), (len(q), len(set(tokens)))
    return q


# -- the run ------------------------------------------------------------------------------
def stats_snapshot(url: str) -> dict[str, Any]:
    st = httpx.get(f"{url}/stats", timeout=TIMEOUT_S).json()
    consumers = {
        kind: {
            k: c.get(k)
            for k in ("events_per_s", "freshness_p50_ms", "freshness_p99_ms", "lag_messages")
        }
        for kind, c in st["consumers"].items()
    }
    return {"consumers": consumers, "dlq_total": st["dlq"]["total"], "index": st["index"]}


def by_endpoint(records: list[tuple[str, float, float, int]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in [*(p for p, _ in MIX), "all"]:
        sel = [r for r in records if path in ("all", r[0])]
        ms = [r[2] for r in sel]
        out[path] = {
            **summary_ms(ms),
            "failures": sum(1 for r in sel if r[3] != 200),
        }
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    n_docs = args.docs or (1_000 if quick else 6_000)
    n_requests = args.requests or (1_500 if quick else 30_000)
    n_behaviors = 4 * n_docs
    n_light = 100 if quick else 1_000
    rng = random.Random(SEED)
    load0 = os.getloadavg()
    log(f"building {n_docs:,} documents")
    cat = Catalog(n_docs, rng)
    ctx = mp.get_context("spawn")
    with servers() as (kafka, red):
        s = settings_for(
            kafka,
            red,
            "load",
            documents_topic="load.documents",
            behaviors_topic="load.behaviors",
            dlq_topic="load.dlq",
            documents_group="load-documents",
            behaviors_group="load-behaviors",
        )
        ensure_topics(s, partitions=3)
        rc = redis.Redis.from_url(s.redis.url)
        procs = [start_consumer(s, "documents"), start_consumer(s, "behaviors")]
        api, url = start_api(s, Path("/tmp/rtindex-bench-load-api.log"), "/healthz")
        procs.append(api)
        writer: Writer | None = None
        try:
            pre = preload(s, cat, n_behaviors, rc)
            log(
                f"preloaded {pre['documents']:,} documents and {pre['behaviors']:,} behavior "
                f"events in {pre['seconds']:.1f} s"
            )
            an = Analyzer(s.analysis)
            vocab = [
                sorted({t for t in an.tokens(e["doc"]["body"]) if len(t) >= 2}) for e in cat.events
            ]
            requests = make_requests(n_requests, rng, [v for v in vocab if v], cat)
            heavy = heavy_queries(s, cat)
            writer = Writer(
                s, cat, url, args.doc_rate, args.behavior_rate, args.backlog, pre["behaviors"]
            )
            writer.start()
            # Let the write load reach its steady state before measuring.
            # (a full window of the consumers' rolling figures, ops.window_s, in a full run)
            warm_s = 3 if quick else s.ops.window_s
            warm_until = time.monotonic() + warm_s
            while time.monotonic() < warm_until:
                time.sleep(0.1)

            log(f"phase A: {n_requests:,} requests from {args.clients} clients")
            q = ctx.Queue()
            p = ctx.Process(target=_load_child, args=(url, requests, args.clients, q))
            p.start()
            load = q.get(timeout=3600)
            p.join()
            stats_a = stats_snapshot(url)
            log(f"phase A: {n_requests / load['seconds']:,.0f} requests/s")

            log(f"phase B: {n_light} light requests next to 4 threads of heavy queries")
            stop = ctx.Event()
            hq = ctx.Queue()
            hp = ctx.Process(target=_heavy_child, args=(url, heavy, 4, stop, hq))
            hp.start()
            assert hq.get(timeout=120) == "running"
            lq = ctx.Queue()
            lp = ctx.Process(target=_light_child, args=(url, n_light, lq))
            lp.start()
            light = lq.get(timeout=3600)
            lp.join()
            stop.set()
            spans = hq.get(timeout=600)
            hp.join()
            stats_b = stats_snapshot(url)
            log("writes stopped: waiting for the consumers to apply everything sent")
            catch_up = writer.finish()
            log(f"caught up: {catch_up}")
            end = stats_snapshot(url)
        finally:
            if writer is not None:
                writer.stop.set()
            for proc in procs:
                proc.stop()
            rc.close()
    load1 = os.getloadavg()
    records = load["records"]
    a0, a1 = load["wall"]
    b0 = min(r[1] for r in light)
    b1 = max(r[1] + r[2] for r in light)
    t_first = writer.sent[0][2] if writer.sent else a0
    t_last = writer.sent[-1][2] if writer.sent else a1
    seconds_w = max((t_last - t_first) / 1000, 1e-9)
    return {
        "docs": n_docs,
        "n_real": cat.n_real,
        "behaviors_preloaded": n_behaviors,
        "users": N_USERS,
        "clients": args.clients,
        "requests": n_requests,
        "mix": MIX,
        "preload": pre,
        "doc_rate": args.doc_rate,
        "warm_s": warm_s,
        "behavior_rate": args.behavior_rate,
        "phase_a": {
            "seconds": load["seconds"],
            "qps": len(records) / load["seconds"],
            "latency": by_endpoint(records),
            "errors": load["errors"],
            "freshness": writer.freshness(a0, a1),
            "consumers": stats_a["consumers"],
        },
        "phase_b": {
            "light": {
                path: {
                    **summary_ms([r[2] for r in light if r[0] == path]),
                    "failures": sum(1 for r in light if r[0] == path and r[3] != 200),
                }
                for path in ("/healthz", "/search")
            },
            "heavy": {
                op: {
                    **summary_ms([h[1] - h[0] for h in spans if h[3] == op]),
                    "statuses": sorted({h[2] for h in spans if h[3] == op}),
                }
                for op in ("or", "and")
            },
            "light_during_heavy": sum(
                1 for r in light if any(h[0] < r[1] + r[2] < h[1] for h in spans)
            ),
            "freshness": writer.freshness(b0, b1),
            "consumers": stats_b["consumers"],
        },
        "writes": {
            "documents_sent": len(writer.sent),
            "documents_applied": len(writer.found),
            "behaviors_sent": writer.behaviors_sent,
            "behaviors_applied": writer.behaviors_applied,
            "catch_up": catch_up,
            "throttled_s": writer.throttled,
            "seconds": seconds_w,
            "freshness_all": writer.freshness(t_first, t_last),
            "poll_loop_ms_p99": pct(writer.loop_ms, 99),
            "searches": writer.searches,
            "superseded": writer.superseded,
            "dlq_total": end["dlq_total"],
            "index_end": end["index"],
        },
        "loadavg_before": load0,
        "loadavg_after": load1,
    }


def render(r: dict[str, Any]) -> str:
    a, b, w = r["phase_a"], r["phase_b"], r["writes"]
    rows = []
    for path, d in a["latency"].items():
        share = dict(r["mix"]).get(path, 1.0)
        rows.append(
            [path, f"{share:.0%}", d["n"], d["failures"], d["p50"], d["p90"], d["p99"], d["max"]]
        )
    fa = a["freshness"]
    fb = b["freshness"]
    fresh_rows = [
        [
            "A (load)",
            fa["sent"],
            fa["exact"]["p50"],
            fa["exact"]["p99"],
            fa["exact"]["max"],
            fa["search"]["n"],
            fa["search"]["p50"],
            fa["search"]["p99"],
            fa["search"]["max"],
        ],
        [
            "B (heavy)",
            fb["sent"],
            fb["exact"]["p50"],
            fb["exact"]["p99"],
            fb["exact"]["max"],
            fb["search"]["n"],
            fb["search"]["p50"],
            fb["search"]["p99"],
            fb["search"]["max"],
        ],
    ]
    cons = []
    for phase, st in (("A", a["consumers"]), ("B", b["consumers"])):
        for kind, c in sorted(st.items()):
            cons.append(
                [
                    phase,
                    kind,
                    c["events_per_s"],
                    c["freshness_p50_ms"],
                    c["freshness_p99_ms"],
                    c["lag_messages"],
                ]
            )
    light = [
        [path, d["n"], d["failures"], d["p50"], d["p90"], d["p99"], d["max"]]
        for path, d in b["light"].items()
    ]
    heavy = [
        [
            f"heavy /search op={op}",
            d["n"],
            str(d["statuses"]),
            d["p50"],
            d["p90"],
            d["p99"],
            d["max"],
        ]
        for op, d in b["heavy"].items()
    ]
    n_light = sum(d["n"] for d in b["light"].values())
    failures = a["latency"]["all"]["failures"]
    la0, la1 = r["loadavg_before"], r["loadavg_after"]
    return "\n\n".join(
        [
            f"{r['docs']:,} documents ({r['n_real']:,} real) and {r['behaviors_preloaded']:,} "
            f"behavior events ({r['users']} users) preloaded through Kafka and the consumers in "
            f"{r['preload']['seconds']:.1f} s; then, while a producer sends "
            f"{r['doc_rate']:,.0f} document upserts/s and {r['behavior_rate']:,.0f} behavior "
            f"events/s, {r['clients']} concurrent clients (asyncio HTTP/1.1 keep-alive; "
            f"their own process) send {r['requests']:,} requests to `rtindex serve`. "
            f"All of it (Tansu, Valkey, both consumers, the service, the clients) on this "
            f"machine; load average {la0[0]:.2f} before, {la1[0]:.2f} after.",
            f"**Phase A: {a['qps']:,.0f} requests/s** over {a['seconds']:.1f} s, "
            f"**{failures} failed** (non-200 or exception). Latency in ms, per endpoint:",
            table(["endpoint", "share", "requests", "failed", "p50", "p90", "p99", "max"], rows),
            "Freshness meanwhile (new documents sent during the phase; ms from event ts): "
            "'exact' = forward key v visible in Redis (every document), 'search' = its "
            f"unique token finds it through GET /search on the loaded service (every "
            f"{PROBE_EVERY}th):",
            table(
                [
                    "phase",
                    "docs sent",
                    "exact p50",
                    "exact p99",
                    "exact max",
                    "searched",
                    "search p50",
                    "search p99",
                    "search max",
                ],
                fresh_rows,
            ),
            "The consumers' own figures at the end of each phase (their status reports via "
            "/stats, over the last 60 s, which in a `--quick` run still include the preload; "
            "freshness = applied - event ts, every event):",
            table(["phase", "consumer", "events/s", "fresh p50", "fresh p99", "lag msgs"], cons),
            f"Writes over the run ({w['seconds']:.0f} s): {w['documents_sent']:,} document "
            f"upserts sent (half new documents, half new versions), {w['documents_applied']:,} "
            f"applied; {w['behaviors_sent']:,} behavior events sent, "
            f"{w['behaviors_applied']:,} applied; dead letters {w['dlq_total']}. The producer "
            f"held back (consumers behind by the backlog limit) for "
            f"{w['throttled_s']['documents']:.1f} s (documents) and "
            f"{w['throttled_s']['behaviors']:.1f} s (behaviors). {catch_up_text(w)} "
            "Freshness over all document "
            f"events: exact p50 "
            f"{w['freshness_all']['exact']['p50']:.0f} ms, p99 "
            f"{w['freshness_all']['exact']['p99']:.0f} ms.",
            f"Phase B: {n_light:,} light requests, one at a time, while four threads loop "
            f"the heaviest queries the limits allow (1,000 characters: packed terms, 1,000 "
            "distinct Han characters, mixed scripts, 1,000 distinct analyzed terms; k=1,000); "
            f"{b['light_during_heavy']:,} of them completed while a heavy one was in flight. "
            "Latency in ms:",
            table(["request", "n", "failed / statuses", "p50", "p90", "p99", "max"], light + heavy),
        ]
    )


def catch_up_text(w: dict[str, Any]) -> str:
    c = w.get("catch_up")
    if c is None:  # a result from before the catch-up wait existed
        return ""

    def took(s: float | None) -> str:
        return f"{s:.1f} s" if s is not None else f"NOT within {c['timeout_s']:.0f} s"

    return (
        f"After the writes stopped, the consumers caught up (every document event's "
        f"version in Redis, every behavior event applied) in {took(c['documents_s'])} "
        f"(documents) and {took(c['behaviors_s'])} (behaviors); unapplied at the end: "
        f"{c['documents_unapplied']} documents, {c['behaviors_unapplied']} behavior events."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1,000 documents, 1,500 requests")
    ap.add_argument("--docs", type=int, default=None)
    ap.add_argument("--requests", type=int, default=None)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--doc-rate", type=float, default=100.0, help="document events/s")
    ap.add_argument("--behavior-rate", type=float, default=300.0, help="behavior events/s")
    ap.add_argument(
        "--backlog", type=int, default=500, help="most unapplied documents (behaviors: 2x)"
    )
    args = ap.parse_args()
    result = run(args)
    save("load", {"quick": args.quick, **result})
    print(render(result))
    problems = []
    if result["phase_a"]["latency"]["all"]["failures"]:
        problems.append("some requests failed: " + "; ".join(result["phase_a"]["errors"][:5]))
    unapplied = unapplied_writes(result)
    if unapplied:
        problems.append(
            f"sent and not applied {CATCH_UP_S:.0f} s after the writes stopped: {unapplied}"
        )
    if problems:
        sys.exit("\n".join(problems))


def unapplied_writes(result: dict[str, Any]) -> dict[str, int]:
    """Events sent and never applied (a run whose consumers did not catch up fails)."""
    c = result["writes"]["catch_up"]
    counts = {
        "documents": c["documents_unapplied"],
        "behaviors": c["behaviors_unapplied"],
    }
    return {k: v for k, v in counts.items() if v}


if __name__ == "__main__":
    main()
