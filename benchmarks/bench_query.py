"""Query latency and index memory at 100,000 documents, with SQLite FTS5 alongside.

    python benchmarks/bench_query.py [--quick] [--docs N] [--queries N]

1. Index N documents (common.py: the real ones, then SYNTHETIC ones from sampled real
   sentences) straight through rtindex.indexer.batch.index_documents + DocumentStore into
   a fresh Valkey, in batches of 1,000 (no Kafka). Memory: Redis used_memory before and
   after, per text posting (the ``postings`` statistic of the shard stats hash) and per
   document, and MEMORY USAGE by key type (all keys of a type, or a seeded sample of
   2,000 scaled up by the key count).
2. Queries (seeded): pick an indexed document uniformly at random, then 1, 2 or 3
   (uniformly) of its distinct terms of 2+ characters, uniformly. A term is thus drawn
   about in proportion to its document frequency (the "user looks for something that
   exists" model); the query string is the terms joined by spaces. Each query runs in
   ``or`` and in ``and`` mode, top 10, and is timed:
   - in process: Searcher.search (analysis, the Redis round trips, BM25, stored fields);
   - over HTTP: GET /search on `rtindex serve` (uvicorn, its own process), httpx client
     with keep-alive;
   - SQLite FTS5 (in-memory, this process) over the same analyzer tokens joined by
     spaces (title and body columns, bm25 weights 2 and 1, the stored document returned
     with each hit; no total count, which rtindex computes).
   Latency is reported against the query terms' postings length (the sum of their
   document frequencies, i.e. the postings a query must read).
"""

from __future__ import annotations

import argparse
import gc
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis
from common import SEED, log, pct, save, servers, settings_for, start_api, table, texts, upsert

from rtindex.indexer.analysis import Analyzer
from rtindex.indexer.batch import index_documents
from rtindex.indexer.events import UpsertEvent
from rtindex.indexer.keys import Keys
from rtindex.indexer.store import DocumentStore
from rtindex.query.search import Searcher, SearchRequest, unique_terms
from rtindex.settings import Settings

BATCH = 1000
BUCKETS = [(0, 100), (100, 1_000), (1_000, 10_000), (10_000, 10**12)]
KEY_TYPES = ["p:", "k:", "d:", "dl:", "nv:", "ids", "st"]


def build_index(s: Settings, rc: redis.Redis, n: int) -> dict[str, Any]:
    """Index n documents; keep (id, title tokens, body tokens, stored JSON) for SQLite.

    Events are built batch by batch, outside the clock, and only strings are kept: a heap
    of millions of container objects would make Python's cyclic GC pause this process.
    """
    docs, n_real = texts(n)
    an = Analyzer(s.analysis)
    seen: dict[str, str] = {}  # text -> its tokens joined by spaces

    def tokenize(text: str) -> list[str]:
        toks = an.tokens(text)
        seen[text] = " ".join(toks)
        return toks

    store = DocumentStore(rc, s)
    store.ensure_layout()
    mem0 = rc.info("memory")["used_memory"]
    seconds, srcs = 0.0, []
    for i in range(0, n, BATCH):
        batch = [upsert(j, docs[j], ts=1_767_225_600_000) for j in range(i, min(i + BATCH, n))]
        events = [UpsertEvent.model_validate(e) for e in batch]
        t0 = time.perf_counter()
        index_documents(store, events, tokenize)
        seconds += time.perf_counter() - t0
        for e in batch:
            d = e["doc"]
            srcs.append((e["id"], seen[d["title"]], seen[d["body"]], orjson.dumps(d).decode()))
        if i and i % 20_000 == 0:
            log(f"indexed {i:,}")
    mem1 = rc.info("memory")["used_memory"]
    stats = Searcher(rc, s, an).index_stats()
    return {
        "n": n,
        "n_real": n_real,
        "index_s": seconds,
        "used_memory_before": mem0,
        "used_memory_after": mem1,
        "stats": stats,
        "_srcs": srcs,
    }


def memory_by_type(rc: redis.Redis, ns: str, rng: random.Random) -> dict[str, dict[str, float]]:
    by: dict[str, list[bytes]] = {t: [] for t in KEY_TYPES}
    for key in rc.scan_iter(match=f"{ns}:{{*", count=10_000):
        rest = key.decode().split("}:", 1)[1]
        kind = next((t for t in KEY_TYPES if rest.startswith(t)), None)
        if kind:
            by[kind].append(key)
    out = {}
    for kind, keys in by.items():
        sample = keys if len(keys) <= 2000 else rng.sample(keys, 2000)
        pipe = rc.pipeline(transaction=False)
        for k in sample:
            pipe.memory_usage(k, samples=0)
        usage = pipe.execute()
        payload = 0
        if kind in ("p:", "k:", "dl:", "nv:"):
            pipe = rc.pipeline(transaction=False)
            for k in sample:
                pipe.strlen(k)
            payload = sum(pipe.execute())
        scale = len(keys) / len(sample) if sample else 0
        out[kind] = {
            "keys": len(keys),
            "bytes": sum(u or 0 for u in usage) * scale,
            "payload": payload * scale,  # string value bytes (STRLEN) where it applies
        }
    return out


def make_queries(idx: dict[str, Any], an: Analyzer, count: int, rng: random.Random) -> list[str]:
    srcs, out = idx["_srcs"], []
    while len(out) < count:
        _id, title, body, _src = srcs[rng.randrange(len(srcs))]
        terms = sorted({t for t in f"{title} {body}".split() if len(t) >= 2})
        k = rng.choice((1, 2, 3))
        if len(terms) >= k:
            out.append(" ".join(rng.sample(terms, k)))
    return out


def postings_length(rc: redis.Redis, keys: Keys, terms: list[str], record_size: int) -> int:
    return sum(rc.strlen(keys.postings(0, t)) for t in terms) // record_size


def build_sqlite(idx: dict[str, Any]) -> tuple[sqlite3.Connection, float]:
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE VIRTUAL TABLE docs USING fts5(id UNINDEXED, title, body, doc UNINDEXED,"
        " tokenize=\"unicode61 remove_diacritics 0 tokenchars '.+#'\")"
    )
    t0 = time.perf_counter()
    db.executemany("INSERT INTO docs VALUES (?, ?, ?, ?)", idx["_srcs"])
    db.commit()
    return db, time.perf_counter() - t0


def sqlite_search(db: sqlite3.Connection, terms: list[str], op: str) -> list[Any]:
    expr = f" {op.upper()} ".join('"' + t.replace('"', '""') + '"' for t in terms)
    return db.execute(
        "SELECT id, doc, bm25(docs, 0, 2.0, 1.0, 0) AS s FROM docs WHERE docs MATCH ?"
        " ORDER BY s LIMIT 10",
        (expr,),
    ).fetchall()


def timed(fn: Any, items: list[Any], warmup: int = 50) -> list[float]:
    for x in items[:warmup]:
        fn(x)
    out = []
    for x in items:
        t0 = time.perf_counter()
        fn(x)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def measure(
    op: str,
    queries: list[str],
    q_terms: list[list[str]],
    searcher: Searcher,
    http: httpx.Client,
    db: sqlite3.Connection,
) -> dict[str, list[float]]:
    def rtindex(i: int) -> None:
        searcher.search(SearchRequest(q=queries[i], k=10, op=op))

    def over_http(i: int) -> None:
        http.get("/search", params={"q": queries[i], "k": 10, "op": op}).raise_for_status()

    def fts5(i: int) -> None:
        sqlite_search(db, q_terms[i], op)

    idxs = list(range(len(queries)))
    return {
        "in-process": timed(rtindex, idxs),
        "HTTP": timed(over_http, idxs),
        "SQLite FTS5": timed(fts5, idxs),
    }


def run(quick: bool, n_docs: int | None = None, n_queries: int | None = None) -> dict[str, Any]:
    n_docs = n_docs or (10_000 if quick else 100_000)
    n_queries = n_queries or (300 if quick else 2_000)
    rng = random.Random(SEED)
    with servers(kafka=False) as (_, red):
        s = settings_for(None, red, "q")
        rc = redis.Redis.from_url(s.redis.url)
        idx = build_index(s, rc, n_docs)
        log(f"indexed {n_docs:,} documents in {idx['index_s']:.1f} s")
        memory = memory_by_type(rc, s.redis.namespace, rng)
        an = Analyzer(s.analysis)
        searcher = Searcher(rc, s, an)
        keys, rs = Keys(s.redis.namespace, s.index.shards), 4 + 2 * len(s.index.schema_.text)
        queries = make_queries(idx, an, n_queries, rng)
        q_terms = [unique_terms(an.tokens(q)) for q in queries]
        plen = [postings_length(rc, keys, t, rs) for t in q_terms]
        db, sqlite_build_s = build_sqlite(idx)
        log(f"SQLite FTS5 built in {sqlite_build_s:.1f} s; running {n_queries:,} queries x 2 modes")
        api, url = start_api(s, Path("/tmp/rtindex-bench-api.log"))
        gc.collect()
        gc.freeze()  # what is left of the build is not garbage: keep the GC off it
        lat: dict[str, dict[str, list[float]]] = {}
        floor: list[float] = []
        totals: dict[str, list[int]] = {}
        try:
            with httpx.Client(base_url=url, timeout=30) as http:
                floor = timed(lambda _i: http.get("/healthz").raise_for_status(), list(range(500)))
                for op in ("or", "and"):
                    totals[op] = [
                        searcher.search(SearchRequest(q=q, k=10, op=op))["total"] for q in queries
                    ]
                    lat[op] = measure(op, queries, q_terms, searcher, http, db)
        finally:
            api.stop()
        rc.close()
    idx.pop("_srcs")
    return {
        "index": idx,
        "memory": memory,
        "n_queries": n_queries,
        "terms_per_query": [len(t) for t in q_terms],
        "postings_len": plen,
        "totals": totals,
        "latency_ms": lat,
        "http_floor_ms": floor,
        "sqlite_build_s": sqlite_build_s,
        "examples": queries[:5],
    }


def render(r: dict[str, Any]) -> str:
    idx, plen = r["index"], r["postings_len"]
    rows, brows = [], []
    for op, engines in r["latency_ms"].items():
        base = pct(engines["in-process"], 50)
        for eng, ms in engines.items():
            ok = "met" if pct(ms, 99) <= 10 else f"MISSED ({pct(ms, 99) / 10:.1f}x)"
            rows.append(
                [
                    op,
                    eng,
                    pct(ms, 50),
                    pct(ms, 90),
                    pct(ms, 99),
                    max(ms),
                    f"{pct(ms, 50) / base:.2f}",
                    ok if eng != "SQLite FTS5" else "-",
                ]
            )
            for lo, hi in BUCKETS:
                sel = [m for m, p in zip(ms, plen, strict=True) if lo <= p < hi]
                if sel:
                    brows.append(
                        [
                            op,
                            eng,
                            f"{lo:,}-{hi:,}" if hi < 10**12 else f">= {lo:,}",
                            len(sel),
                            pct(sel, 50),
                            pct(sel, 99),
                            max(sel),
                        ]
                    )
    mem = r["memory"]
    postings, n = idx["stats"]["postings"], idx["stats"]["documents"]
    delta = idx["used_memory_after"] - idx["used_memory_before"]
    total_est = sum(m["bytes"] for m in mem.values())
    mrows = [
        [
            k,
            m["keys"],
            m["bytes"] / 2**20,
            m["bytes"] / max(m["keys"], 1),
            100 * m["bytes"] / total_est,
            m["bytes"] / postings,
            f"{100 * m['payload'] / m['bytes']:.0f}%" if m["payload"] else "-",
        ]
        for k, m in mem.items()
    ]
    no_fwd = total_est - mem["d:"]["bytes"]
    n_syn = idx["n"] - idx["n_real"]
    tpq = r["terms_per_query"]
    return "\n\n".join(
        [
            f"{idx['n']:,} documents ({idx['n_real']:,} real, {n_syn:,} SYNTHETIC from sampled "
            f"real sentences), indexed directly (index_documents + DocumentStore, batches of "
            f"{BATCH:,}) in {idx['index_s']:.1f} s ({idx['n'] / idx['index_s']:,.0f} docs/s); "
            f"{idx['stats']['terms']:,} terms, {postings:,} text postings. "
            f"{r['n_queries']:,} queries, top 10; analyzed terms per query: "
            f"{sum(tpq) / len(tpq):.2f} on average (max {max(tpq)}); postings read per query: "
            f"p50 {pct(plen, 50):,.0f}, p99 {pct(plen, 99):,.0f}. Examples: "
            + ", ".join(f"`{q}`" for q in r["examples"])
            + ". Latency in ms:",
            table(
                [
                    "mode",
                    "engine",
                    "p50",
                    "p90",
                    "p99",
                    "max",
                    "p50 / rtindex in-process",
                    "target p99 <= 10 ms",
                ],
                rows,
            ),
            f"HTTP floor (GET /healthz, same client and server): p50 "
            f"{pct(r['http_floor_ms'], 50):.2f} ms, p99 {pct(r['http_floor_ms'], 99):.2f} ms.",
            "By postings read (sum of the query terms' document frequencies):",
            table(["mode", "engine", "postings", "queries", "p50", "p99", "max"], brows),
            f"Memory: Redis used_memory grew by {delta / 2**20:,.1f} MiB: "
            f"**{delta / postings:,.1f} bytes per text posting** (target < 60), "
            f"{delta / n:,.0f} bytes per document. MEMORY USAGE by key type (sum "
            f"{total_est / 2**20:,.1f} MiB); without the forward index (d:) "
            f"{no_fwd / postings:,.1f} bytes per posting. "
            f"'payload' is the STRLEN share of string keys (the rest is key, object and "
            f"allocator overhead, including APPEND's spare capacity):",
            table(
                ["type", "keys", "MiB", "bytes/key", "% of sum", "bytes/posting", "payload"], mrows
            ),
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10,000 documents, 300 queries")
    ap.add_argument("--docs", type=int, default=None)
    ap.add_argument("--queries", type=int, default=None)
    args = ap.parse_args()
    result = run(args.quick, args.docs, args.queries)
    save("query", {"quick": args.quick, **result})
    print(render(result))


if __name__ == "__main__":
    main()
