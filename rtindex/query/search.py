"""Keyword search: analyze the query, read postings from Redis, filter, score with BM25.

Four pipelined round trips whatever the query: (1) shard statistics, the query terms'
postings and the keyword filters' postings; (2) the doc-length (and, for range and geo
filters, doc-value) chunks the candidates fall in; (3) the ids of the top hits; (4) their
stored fields. Scoring is vectorized numpy over whole posting lists, so a query costs
O(postings of its terms), never a per-document Redis call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import orjson
import redis
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rtindex.indexer.analysis import Analyzer
from rtindex.indexer.connection import connect
from rtindex.indexer.keys import CHUNK_DOCS, Keys, geo_columns
from rtindex.query.bm25 import idf, term_scores
from rtindex.query.matching import and_requirements
from rtindex.query.postings import (
    decode_docnums,
    decode_text_postings,
    gather_f64,
    gather_u16,
    haversine_km,
)
from rtindex.query.rank import top_order
from rtindex.settings import Settings

MAX_Q_CHARS = 1000
MAX_K = 1000
MAX_OFFSET = 10_000


class GeoFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    field: str
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    radius_km: float = Field(gt=0, le=20_037.6)  # half the Earth's circumference


class SearchRequest(BaseModel):
    """A keyword query. Filters: any value of a field (OR), all fields (AND)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    q: str = Field(min_length=1, max_length=MAX_Q_CHARS)
    k: int = Field(default=10, ge=0, le=MAX_K)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)
    op: Literal["or", "and"] = "or"
    keywords: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    ranges: dict[str, tuple[float | None, float | None]] = Field(default_factory=dict)
    geo: GeoFilter | None = None

    @model_validator(mode="after")
    def _ranges(self) -> SearchRequest:
        for name, (lo, hi) in self.ranges.items():
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"{name}: the minimum {lo} is above the maximum {hi}")
        return self


@dataclass(slots=True)
class _ShardHits:
    shard: int
    docnums: npt.NDArray[np.uint32]
    scores: npt.NDArray[np.float64]


def unique_terms(tokens: list[str]) -> list[str]:
    return list(dict.fromkeys(tokens))


class Searcher:
    """Answers keyword queries from Redis. Thread-safe (the Redis pool is)."""

    def __init__(self, client: redis.Redis, settings: Settings, analyzer: Analyzer) -> None:
        self.client = client
        self.settings = settings
        self.analyzer = analyzer
        self.schema = settings.index.schema_
        self.keys = Keys(settings.redis.namespace, settings.index.shards)
        self.text_fields = self.schema.text_fields
        self.boosts = [self.schema.text[f].boost for f in self.text_fields]
        self.k1, self.b = settings.bm25.k1, settings.bm25.b

    @classmethod
    def connect(cls, settings: Settings) -> Searcher:
        return cls(connect(settings), settings, Analyzer(settings.analysis))

    def close(self) -> None:
        self.client.close()

    # -- validation against the schema ---------------------------------------------------
    def check(self, req: SearchRequest) -> None:
        """Raise ValueError for filters the schema does not index (a 422, not a 500)."""
        for name in req.keywords:
            if name not in self.schema.keyword:
                raise ValueError(f"{name!r} is not a keyword field of the index schema")
        for name in req.ranges:
            if name not in self.schema.number:
                raise ValueError(f"{name!r} is not a number field of the index schema")
        if req.geo is not None and req.geo.field not in self.schema.geo:
            raise ValueError(f"{req.geo.field!r} is not a geo field of the index schema")

    # -- the query -------------------------------------------------------------------
    def search(self, req: SearchRequest) -> dict[str, Any]:
        t0 = time.perf_counter()
        self.check(req)
        terms = unique_terms(self.analyzer.tokens(req.q))
        total, hits = self._search(req, terms) if terms else (0, [])
        return {"total": total, "took_ms": (time.perf_counter() - t0) * 1e3, "hits": hits}

    def _search(self, req: SearchRequest, terms: list[str]) -> tuple[int, list[dict[str, Any]]]:
        keys, n_text = self.keys, len(self.text_fields)
        shards = range(keys.shards)
        filters = [(f, vals) for f, vals in req.keywords.items()]
        pipe = self.client.pipeline(transaction=False)
        for s in shards:
            pipe.hmget(keys.stats(s), ["N", *(f"tl:{f}" for f in self.text_fields)])
            for t in terms:
                pipe.get(keys.postings(s, t))
            for f, vals in filters:
                for v in vals:
                    pipe.get(keys.keyword(s, f, v))
        replies = iter(pipe.execute())

        n_docs = 0
        total_len = np.zeros(n_text)
        per_shard: list[tuple[int, list[tuple[Any, Any]], list[Any]]] = []
        df = np.zeros(len(terms), np.int64)
        for s in shards:
            st = next(replies)
            n_docs += int(st[0] or 0)
            total_len += [int(x or 0) for x in st[1:]]
            postings = [decode_text_postings(next(replies), n_text) for _ in terms]
            df += [len(d) for d, _ in postings]
            allowed = [
                np.unique(np.concatenate([decode_docnums(next(replies)) for _ in vals]))
                for _, vals in filters
            ]
            per_shard.append((s, postings, allowed))
        if n_docs <= 0:
            return 0, []
        avgdl = total_len / n_docs
        idfs = [idf(n_docs, int(d)) for d in df]

        # Candidates per shard, then the doc-value chunks they need, in one round trip.
        cands: list[npt.NDArray[np.uint32]] = []
        for _s, postings, allowed in per_shard:
            lists = [d for d, _ in postings]
            if req.op == "and":
                by_term = dict(zip(terms, lists, strict=True))
                c = None
                for need in and_requirements(terms):
                    ok = by_term[need.term]
                    if need.cover:
                        alt = by_term[need.cover[0]]
                        for part in need.cover[1:]:
                            alt = np.intersect1d(alt, by_term[part], assume_unique=True)
                        ok = np.union1d(ok, alt)
                    c = ok if c is None else np.intersect1d(c, ok, assume_unique=True)
                assert c is not None  # a query with terms has at least one requirement
            else:
                c = np.unique(np.concatenate(lists))
            for a in allowed:
                c = np.intersect1d(c, a, assume_unique=True)
            cands.append(c)
        columns = [*req.ranges]
        if req.geo is not None:
            columns.extend(geo_columns(req.geo.field))
        pipe = self.client.pipeline(transaction=False)
        wanted: list[tuple[int, list[int]]] = []
        for (s, _, _), c in zip(per_shard, cands, strict=True):
            chunks = sorted({int(x) for x in np.unique(c // CHUNK_DOCS)}) if len(c) else []
            wanted.append((s, chunks))
            for ch in chunks:
                pipe.get(keys.doc_lengths(s, ch))
                for col in columns:
                    pipe.get(keys.numeric(s, col, ch))
        replies = iter(pipe.execute())

        results: list[_ShardHits] = []
        for (s, postings, _), c, (_, chunks) in zip(per_shard, cands, wanted, strict=True):
            dl_chunks: dict[int, bytes | None] = {}
            col_chunks: dict[str, dict[int, bytes | None]] = {col: {} for col in columns}
            for ch in chunks:
                dl_chunks[ch] = next(replies)
                for col in columns:
                    col_chunks[col][ch] = next(replies)
            if not len(c):
                continue
            mask = np.ones(len(c), bool)
            for name, (lo, hi) in req.ranges.items():
                column = gather_f64(col_chunks[name], c, CHUNK_DOCS)
                if lo is not None:
                    mask &= column >= lo
                if hi is not None:
                    mask &= column <= hi
                mask &= ~np.isnan(column)
            if req.geo is not None:
                lat_col, lon_col = geo_columns(req.geo.field)
                lat = gather_f64(col_chunks[lat_col], c, CHUNK_DOCS)
                lon = gather_f64(col_chunks[lon_col], c, CHUNK_DOCS)
                with np.errstate(invalid="ignore"):
                    mask &= haversine_km(lat, lon, req.geo.lat, req.geo.lon) <= req.geo.radius_km
            c = c[mask]
            if not len(c):
                continue
            lengths = gather_u16(dl_chunks, c, n_text, CHUNK_DOCS)
            scores = np.zeros(len(c))
            for (docs, tfs), term_idf in zip(postings, idfs, strict=True):
                if not len(docs):
                    continue
                pos = np.searchsorted(c, docs)
                hit = pos < len(c)
                hit[hit] = c[pos[hit]] == docs[hit]
                rows = pos[hit]
                scores[rows] += term_scores(
                    tfs[hit], lengths[rows], avgdl, self.boosts, term_idf, self.k1, self.b
                )
            results.append(_ShardHits(s, c, scores))
        return self._page(req, results)

    def _page(
        self, req: SearchRequest, results: list[_ShardHits]
    ) -> tuple[int, list[dict[str, Any]]]:
        if not results:
            return 0, []
        scores = np.concatenate([r.scores for r in results])
        shard_of = np.concatenate([np.full(len(r.docnums), r.shard, np.int64) for r in results])
        docnums = np.concatenate([r.docnums.astype(np.int64) for r in results])
        total = len(scores)
        top = top_order(scores, shard_of, docnums, req.offset, req.offset + req.k)
        if not len(top):
            return total, []
        pipe = self.client.pipeline(transaction=False)
        for i in top:
            pipe.hget(self.keys.ids(int(shard_of[i])), str(int(docnums[i])))
        ids = pipe.execute()
        pipe = self.client.pipeline(transaction=False)
        for i, doc_id in zip(top, ids, strict=True):
            if doc_id is not None:
                pipe.hget(self.keys.doc(int(shard_of[i]), doc_id.decode()), "src")
        srcs = iter(pipe.execute())
        hits: list[dict[str, Any]] = []
        for i, doc_id in zip(top, ids, strict=True):
            if doc_id is None:
                continue  # deleted between our reads: skip rather than show a ghost
            src = next(srcs)
            if src is None:
                continue
            hits.append(
                {"id": doc_id.decode(), "score": float(scores[i]), "doc": orjson.loads(src)}
            )
        return total, hits

    # -- single documents and statistics -------------------------------------------------
    def get_document(self, doc_id: str) -> dict[str, Any] | None:
        shard = self.keys.shard_of(doc_id)
        v, deleted, src = self.client.hmget(self.keys.doc(shard, doc_id), ["v", "del", "src"])
        if v is None or deleted or src is None:
            return None
        return {"id": doc_id, "version": int(v), "doc": orjson.loads(src)}

    def index_stats(self) -> dict[str, int]:
        names = ["N", "terms", "postings", "tombstones"]
        pipe = self.client.pipeline(transaction=False)
        for s in range(self.keys.shards):
            pipe.hmget(self.keys.stats(s), names)
        totals = dict.fromkeys(names, 0)
        for row in pipe.execute():
            for name, value in zip(names, row, strict=True):
                totals[name] += int(value or 0)
        return {
            "documents": totals["N"],
            "terms": totals["terms"],
            "postings": totals["postings"],
            "tombstones": totals["tombstones"],
        }
