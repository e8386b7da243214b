"""Keyword search: analyze the query, read postings from Redis, filter, score with BM25.

At most four round trips (rtindex.query.wire) whatever the query: (1) shard statistics,
the query terms' postings, the keyword filters' postings and, for a shard spanning few
doc-value chunks, all of them; (2) the doc-length (and, for range and geo filters,
doc-value) chunks the candidates fall in that (1) did not bring, usually none; (3) the ids
of the top hits, unless remembered; (4) their stored fields. Scoring is vectorized numpy
over whole posting lists, so a query costs O(postings of its terms), never a
per-document Redis call.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
import orjson
import redis
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rtindex.indexer.analysis import Analyzer
from rtindex.indexer.connection import connect
from rtindex.indexer.keys import CHUNK_DOCS, Keys, geo_columns
from rtindex.indexer.store import check_layout, document_layout
from rtindex.query.bm25 import idf, term_scores
from rtindex.query.idcache import DocIdCache
from rtindex.query.matching import Group, Requirement, and_groups, contains_run
from rtindex.query.postings import (
    decode_docnums,
    decode_text_postings,
    gather_f64,
    gather_u16_rows,
    haversine_km,
)
from rtindex.query.rank import top_order
from rtindex.query.wire import Command, Wire
from rtindex.settings import Settings

# (keyword field, value) -> weight in (0, 1]: a user's preferences, for personalization.
Preferences = dict[tuple[str, str], float]

MAX_Q_CHARS = 1000
MAX_K = 1000
MAX_OFFSET = 10_000
MAX_ID_BYTES = 512
# A shard spanning this many doc-value chunks or fewer has them all fetched with the
# postings (a chunk holds 2 bytes per text field for each of CHUNK_DOCS documents).
PREFETCH_CHUNKS = 2
# Docnum -> id pairs the query service remembers (idcache.py): ~100 bytes each.
ID_CACHE_ENTRIES = 200_000


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
    # Personalization: boost hits that match this user's preferences (behavior profile).
    user_id: str | None = Field(default=None, min_length=1, max_length=512)

    @field_validator("user_id")
    @classmethod
    def _id_bytes(cls, v: str | None) -> str | None:
        # The contract's limit on ids is in bytes, as every other endpoint checks it.
        if v is not None and len(v.encode("utf-8", errors="replace")) > MAX_ID_BYTES:
            raise ValueError(f"ids are at most {MAX_ID_BYTES} bytes of UTF-8")
        return v

    @model_validator(mode="after")
    def _ranges(self) -> SearchRequest:
        for name, (lo, hi) in self.ranges.items():
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"{name}: the minimum {lo} is above the maximum {hi}")
        return self


@dataclass(slots=True)
class _Shard:
    """One shard's share of a query: its postings, filter postings, and doc-value chunks."""

    shard: int
    postings: list[tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint16]]]
    allowed: list[list[npt.NDArray[np.uint32]]]  # per keyword filter, per value
    preferred: list[npt.NDArray[np.uint32]]  # per preference, the documents matching it
    bigrams: dict[str, npt.NDArray[np.uint32]] = field(default_factory=dict)
    size: int = 0  # 1 + the largest docnum any of its postings holds
    match: npt.NDArray[np.bool_] | None = None  # op=and: the documents that qualify
    bonus: npt.NDArray[np.float64] | None = None  # op=and: score of containing a query run
    lengths: dict[int, bytes | None] = field(default_factory=dict)
    values: dict[str, dict[int, bytes | None]] = field(default_factory=dict)


@dataclass(slots=True)
class _ShardHits:
    shard: int
    docnums: npt.NDArray[np.uint32]
    scores: npt.NDArray[np.float64]


def chunks_of(docnums: npt.NDArray[np.uint32]) -> list[int]:
    """The doc-value chunks of sorted docnums (no sort needed: they are sorted)."""
    if not len(docnums):
        return []
    c = docnums // CHUNK_DOCS
    return [int(x) for x in c[np.r_[True, c[1:] != c[:-1]]]]


def unique_terms(tokens: list[str]) -> list[str]:
    return list(dict.fromkeys(tokens))


def _intersect(lists: list[npt.NDArray[np.uint32]]) -> npt.NDArray[np.uint32]:
    """Docnums in every (sorted, unique) list; the shortest first keeps it cheap."""
    if not lists:
        return np.zeros(0, np.uint32)
    ordered = sorted(lists, key=len)
    out = ordered[0]
    for other in ordered[1:]:
        if not len(out):
            break
        out = np.intersect1d(out, other, assume_unique=True)
    return out


def _union(a: npt.NDArray[np.uint32], b: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    """Sorted unique docnums in either sorted unique list."""
    if not len(a):
        return b
    if not len(b):
        return a
    return np.union1d(a, b)


def _requirements_mask(
    requirements: tuple[Requirement, ...], has: dict[str, npt.NDArray[np.bool_]], size: int
) -> npt.NDArray[np.bool_]:
    """The documents meeting every requirement; none when there are no requirements."""
    if not requirements:
        return np.zeros(size, bool)
    match = np.ones(size, bool)
    for need in requirements:
        ok = has[need.term]
        if need.cover:
            ok = ok | np.logical_and.reduce([has[p] for p in need.cover])
        match &= ok
    return match


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
        self.search_boost = settings.behavior.search_boost
        self.han_bigrams = settings.index.han_bigrams
        self.layout_known = False
        self.doc_ids = DocIdCache(ID_CACHE_ENTRIES)
        self.wire = Wire(client)
        self._spans: dict[int, int] = {}  # shard -> doc-value chunks its docnums span

    @classmethod
    def connect(cls, settings: Settings) -> Searcher:
        return cls(connect(settings), settings, Analyzer(settings.analysis))

    def close(self) -> None:
        self.wire.close()
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

    def follow_layout(self) -> None:
        """Read how the index was built (its meta hash) until it exists. A layout version,
        shard count or schema other than this configuration's would give wrong answers:
        LayoutMismatch (a 503). The bigram postings are followed as the index has them,
        so ``and`` never looks for bigrams an index lacks, or ignores ones it has."""
        if self.layout_known:
            return
        raw = cast(dict[bytes, bytes], self.client.hgetall(self.keys.meta))
        have = {k.decode(): v.decode() for k, v in raw.items()}
        if "layout" not in have:
            return  # no documents index yet: nothing to find; look again next query
        want = document_layout(self.settings)
        check_layout(self.keys.namespace, have, {k: want[k] for k in want if k != "bigrams"})
        # Either kind of bigram postings ("1": all; "2": those not words) is read the
        # same way: a bigram's documents are its bigram postings + its word postings.
        self.han_bigrams = have.get("bigrams", "0") != "0"
        self.layout_known = True

    # -- the query -------------------------------------------------------------------
    def search(self, req: SearchRequest, preferences: Preferences | None = None) -> dict[str, Any]:
        """``preferences``: (keyword field, value) -> weight in (0, 1]; a hit's score is
        multiplied by 1 + ``behavior.search_boost`` * its best matching weight."""
        t0 = time.perf_counter()
        self.check(req)
        self.follow_layout()
        groups: list[Group] = []
        if req.op == "and":
            segments = self.analyzer.segments(req.q)
            terms = unique_terms([t for _run, tokens in segments for t in tokens])
            groups = and_groups(segments, self.han_bigrams)
        else:
            terms = unique_terms(self.analyzer.tokens(req.q))
        prefs = [(f, v, w) for (f, v), w in (preferences or {}).items() if f in self.schema.keyword]
        wanted = terms or any(g.run for g in groups)
        total, hits = self._search(req, terms, groups, prefs) if wanted else (0, [])
        return {"total": total, "took_ms": (time.perf_counter() - t0) * 1e3, "hits": hits}

    def _search(
        self,
        req: SearchRequest,
        terms: list[str],
        groups: list[Group],
        prefs: list[tuple[str, str, float]],
    ) -> tuple[int, list[dict[str, Any]]]:
        keys, n_text = self.keys, len(self.text_fields)
        filters = list(req.keywords.items())
        grams = list(dict.fromkeys(g for group in groups for g in group.bigrams))
        # A bigram's documents: its bigram postings + its word postings (a bigram that is
        # a word of a document has only the word posting), read here unless a query term.
        term_index = {t: i for i, t in enumerate(terms)}
        word_grams = [g for g in grams if g not in term_index]
        columns = [*req.ranges]  # the doc-value columns the filters read
        if req.geo is not None:
            columns.extend(geo_columns(req.geo.field))
        # A shard whose docnums span few chunks (as of the last query) has them fetched in
        # the first round trip: most queries then need no second one.
        ahead = {
            s: range(n) for s, n in self._spans.items() if n <= PREFETCH_CHUNKS
        }  # fmt: skip
        stat_fields = ["N", "next", *(f"tl:{f}" for f in self.text_fields)]
        cmds: list[Command] = []
        for s in range(keys.shards):
            cmds.append(["HMGET", keys.stats(s), *stat_fields])
            cmds.extend(("GET", keys.postings(s, t)) for t in terms)
            cmds.extend(("GET", keys.bigram(s, g)) for g in grams)
            cmds.extend(("GET", keys.postings(s, g)) for g in word_grams)
            for _f, vals in filters:
                cmds.extend(("GET", keys.keyword(s, _f, v)) for v in vals)
            cmds.extend(("GET", keys.keyword(s, _f, v)) for _f, v, _w in prefs)
            cmds.extend(self._chunk_commands(s, ahead.get(s, ()), columns))
        replies = iter(self.wire.run(cmds))

        n_docs = 0
        total_len = np.zeros(n_text)
        df = np.zeros(len(terms), np.int64)
        shards: list[_Shard] = []
        for s in range(keys.shards):
            st = next(replies)
            n_docs += int(st[0] or 0)
            self._spans[s] = int(st[1] or 0) // CHUNK_DOCS + 1
            total_len += [int(x or 0) for x in st[2:]]
            postings = [decode_text_postings(next(replies), n_text) for _ in terms]
            df += np.array([len(d) for d, _ in postings], np.int64)
            bigram_docs = {g: decode_docnums(next(replies)) for g in grams}
            as_words = {g: decode_text_postings(next(replies), n_text)[0] for g in word_grams}
            for g in grams:
                i = term_index.get(g)
                words = postings[i][0] if i is not None else as_words[g]
                bigram_docs[g] = _union(bigram_docs[g], words)
            allowed = [[decode_docnums(next(replies)) for _ in vals] for _f, vals in filters]
            preferred = [decode_docnums(next(replies)) for _ in prefs]
            sh = _Shard(s, postings, allowed, preferred, bigram_docs)
            self._read_chunks(sh, ahead.get(s, ()), columns, replies)
            shards.append(sh)
        if n_docs <= 0:
            return 0, []
        avgdl = total_len / n_docs
        idfs = [idf(n_docs, int(d)) for d in df]

        for sh in shards:
            sh.size = 1 + max(
                (
                    int(d[-1])
                    for d in [*(d for d, _ in sh.postings), *sh.bigrams.values()]
                    if len(d)
                ),
                default=-1,
            )
        if groups:
            self._and_match(groups, terms, shards, n_docs)
        # The doc-value chunks the candidates fall in (doc lengths; filter columns) that
        # the first round trip did not bring.
        missing: dict[int, list[int]] = {}
        for sh in shards:
            docs = [d for d, _ in sh.postings]
            if sh.match is not None:
                docs = [np.flatnonzero(sh.match).astype(np.uint32)]
            wanted = {c for d in docs for c in chunks_of(d)}
            missing[sh.shard] = sorted(wanted - sh.lengths.keys())
        cmds = [
            c for sh in shards for c in self._chunk_commands(sh.shard, missing[sh.shard], columns)
        ]
        replies = iter(self.wire.run(cmds))
        for sh in shards:
            self._read_chunks(sh, missing[sh.shard], columns, replies)

        results = [
            hits
            for sh in shards
            if (hits := self._score_shard(req, terms, sh, avgdl, idfs, columns, prefs)) is not None
        ]
        return self._page(req, results)

    def _chunk_commands(
        self, shard: int, chunks: Iterable[int], columns: list[str]
    ) -> Iterator[Command]:
        for ch in chunks:
            yield ("GET", self.keys.doc_lengths(shard, ch))
            yield from (("GET", self.keys.numeric(shard, col, ch)) for col in columns)

    @staticmethod
    def _read_chunks(
        sh: _Shard, chunks: Iterable[int], columns: list[str], replies: Iterator[Any]
    ) -> None:
        for ch in chunks:
            sh.lengths[ch] = next(replies)
            for col in columns:
                sh.values.setdefault(col, {})[ch] = next(replies)

    def _score_shard(
        self,
        req: SearchRequest,
        terms: list[str],
        sh: _Shard,
        avgdl: npt.NDArray[np.float64],
        idfs: list[float],
        columns: list[str],
        prefs: list[tuple[str, str, float]],
    ) -> _ShardHits | None:
        """op=or: scores accumulate in an array indexed by docnum (dense per shard):
        O(postings + docnums) with no sorting or merging of posting lists. op=and: the
        qualifying documents are known first, and only they are scored (_scores_of)."""
        size = sh.size
        if size <= 0:
            return None
        acc: npt.NDArray[np.float64] | None = None
        if sh.match is None:
            acc = self._dense_scores(sh, avgdl, idfs)
            # Every posting scores > 0 (Lucene's idf is never negative), so acc > 0.
            match = acc > 0
        else:
            match = sh.match.copy()
        for values in sh.allowed:
            ok = np.zeros(size, bool)
            for docs in values:
                ok[docs[docs < size]] = True
            match &= ok
        c = np.flatnonzero(match).astype(np.uint32)
        if len(c) and columns:
            mask = np.ones(len(c), bool)
            for name, (lo_v, hi_v) in req.ranges.items():
                column = gather_f64(sh.values[name], c, CHUNK_DOCS)
                if lo_v is not None:
                    mask &= column >= lo_v
                if hi_v is not None:
                    mask &= column <= hi_v
                mask &= ~np.isnan(column)
            if req.geo is not None:
                lat_col, lon_col = geo_columns(req.geo.field)
                lat = gather_f64(sh.values[lat_col], c, CHUNK_DOCS)
                lon = gather_f64(sh.values[lon_col], c, CHUNK_DOCS)
                with np.errstate(invalid="ignore"):
                    mask &= haversine_km(lat, lon, req.geo.lat, req.geo.lon) <= req.geo.radius_km
            c = c[mask]
        if not len(c):
            return None
        scores = acc[c] if acc is not None else self._scores_of(sh, c, avgdl, idfs)
        if sh.bonus is not None:
            scores += sh.bonus[c]
        if prefs and self.search_boost > 0:
            liked = np.zeros(size)
            for docs, (_f, _v, weight) in zip(sh.preferred, prefs, strict=True):
                inside = docs[docs < size]
                liked[inside] = np.maximum(liked[inside], weight)
            scores = scores * (1.0 + self.search_boost * liked[c])
        return _ShardHits(sh.shard, c, scores)

    def _dense_scores(
        self, sh: _Shard, avgdl: npt.NDArray[np.float64], idfs: list[float]
    ) -> npt.NDArray[np.float64]:
        """Every posting's BM25, summed per docnum into an array of the shard's size."""
        n_text = len(self.text_fields)
        lengths = np.zeros((sh.size, n_text), np.uint16)
        for ch, blob in sh.lengths.items():
            if blob:
                col = np.frombuffer(blob, dtype=">u2").reshape(-1, n_text)
                lo = ch * CHUNK_DOCS
                hi = min(lo + len(col), sh.size)
                if hi > lo:
                    lengths[lo:hi] = col[: hi - lo]
        acc = np.zeros(sh.size)
        for (docs, tfs), term_idf in zip(sh.postings, idfs, strict=True):
            if len(docs):
                acc[docs] += term_scores(
                    tfs, lengths[docs], avgdl, self.boosts, term_idf, self.k1, self.b
                )
        return acc

    def _scores_of(
        self,
        sh: _Shard,
        c: npt.NDArray[np.uint32],
        avgdl: npt.NDArray[np.float64],
        idfs: list[float],
    ) -> npt.NDArray[np.float64]:
        """BM25 of the (sorted) docnums ``c`` only: each term's postings are searched for
        them, then every (term, document) pair is scored in one vectorized call. The
        cost follows the query's terms and the matches, not the postings' length, and
        the per-term numpy calls of the dense path (a dozen each) are not repeated."""
        at: list[npt.NDArray[np.intp]] = []
        tf_rows: list[npt.NDArray[np.uint16]] = []
        weights: list[npt.NDArray[np.float64]] = []
        for (docs, tfs), term_idf in zip(sh.postings, idfs, strict=True):
            if not len(docs):
                continue
            if len(docs) == len(c) and np.array_equal(docs, c):
                # The matches are this term's documents (a one-word query, say): every
                # row, in order, no search needed.
                hit, rows = np.arange(len(c)), tfs
            else:
                pos = np.minimum(np.searchsorted(docs, c), len(docs) - 1)
                hit = np.flatnonzero(docs[pos] == c)
                rows = tfs[pos[hit]]
            if len(hit):
                at.append(hit)
                tf_rows.append(rows)
                weights.append(np.full(len(hit), term_idf))
        if not at:
            return np.zeros(len(c))
        lengths = gather_u16_rows(sh.lengths, c, CHUNK_DOCS, len(self.text_fields))
        if len(at) == 1 and len(at[0]) == len(c):
            # One term, in every match (its hits are then 0..n-1): nothing to sum.
            return term_scores(tf_rows[0], lengths, avgdl, self.boosts, weights[0], self.k1, self.b)
        i = np.concatenate(at)
        pair = term_scores(
            np.concatenate(tf_rows),
            lengths[i],
            avgdl,
            self.boosts,
            np.concatenate(weights),
            self.k1,
            self.b,
        )
        # Summed per document in term order, as the dense path adds them.
        return cast(npt.NDArray[np.float64], np.bincount(i, weights=pair, minlength=len(c)))

    def _and_match(
        self,
        groups: list[Group],
        terms: list[str],
        shards: list[_Shard],
        n_docs: int,
    ) -> None:
        """Set each shard's ``op=and`` match mask, and the bonus of the documents that
        contain a query run: the run's idf, as if it were one more term (a run cut into
        single characters the documents never index, 京烤, still scores)."""
        state = []
        checks: list[tuple[int, str, npt.NDArray[np.uint32]]] = []
        for sh in shards:
            has = {}
            for t, (docs, _) in zip(terms, sh.postings, strict=True):
                m = np.zeros(sh.size, bool)
                m[docs] = True
                has[t] = m
            per_group = []
            for group in groups:
                ok = _requirements_mask(group.requirements, has, sh.size)
                inside = np.zeros(0, np.uint32)
                if group.run:
                    inside = _intersect([sh.bigrams[g] for g in group.bigrams])
                    if not group.exact_by_bigrams:
                        # Bigrams apart prove nothing. A document whose tokens include the
                        # run itself contains it; the others are checked against their text.
                        sure = has.get(group.run)
                        unsure = inside if sure is None else inside[~sure[inside]]
                        if len(unsure):
                            checks.append((sh.shard, group.run, unsure))
                per_group.append((ok, inside))
            state.append(per_group)
        confirmed = self._contains(checks)
        unconfirmed = {
            (s, run): np.setdiff1d(docs, confirmed[(s, run)], assume_unique=True)
            for s, run, docs in checks
        }
        df = dict.fromkeys((g.run for g in groups if g.run), 0)
        for sh, per_group in zip(shards, state, strict=True):
            for i, (group, (ok, inside)) in enumerate(zip(groups, per_group, strict=True)):
                drop = unconfirmed.get((sh.shard, group.run))
                if drop is not None and len(drop):
                    inside = np.setdiff1d(inside, drop, assume_unique=True)
                    per_group[i] = (ok, inside)
                df[group.run] = df.get(group.run, 0) + len(inside)
        for sh, per_group in zip(shards, state, strict=True):
            match = np.ones(sh.size, bool)
            bonus = np.zeros(sh.size)
            for group, (ok, inside) in zip(groups, per_group, strict=True):
                if group.run:
                    ok = ok.copy()
                    ok[inside] = True
                    bonus[inside] += idf(n_docs, df[group.run])
                match &= ok
            sh.match, sh.bonus = match, bonus

    def _contains(
        self, checks: list[tuple[int, str, npt.NDArray[np.uint32]]]
    ) -> dict[tuple[int, str], npt.NDArray[np.uint32]]:
        """For each (shard, run, docnums): the docnums whose text fields contain the run.
        At most two pipelined round trips (ids not cached, stored sources); none without
        checks."""
        if not checks:
            return {}
        wanted = sorted({(s, int(d)) for s, _run, docs in checks for d in docs})
        srcs = {
            key: orjson.loads(doc[1])
            for key, doc in zip(wanted, self._documents(wanted), strict=True)
            if doc is not None
        }
        out = {}
        for s, run, docs in checks:
            keep = [
                d
                for d in docs
                if (src := srcs.get((s, int(d)))) and contains_run(src, self.text_fields, run)
            ]
            out[(s, run)] = np.array(keep, np.uint32)
        return out

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
        found = self._documents([(int(shard_of[i]), int(docnums[i])) for i in top])
        hits: list[dict[str, Any]] = []
        for i, doc in zip(top, found, strict=True):
            if doc is None:
                continue  # deleted between our reads: skip rather than show a ghost
            doc_id, src = doc
            hits.append({"id": doc_id, "score": float(scores[i]), "doc": orjson.loads(src)})
        return total, hits

    def _documents(self, wanted: list[tuple[int, int]]) -> list[tuple[str, bytes] | None]:
        """The id and stored source of each live ``(shard, docnum)``, None for one deleted.

        Ids the cache knows cost nothing; the others one pipelined round trip. Then one
        round trip for the sources, each checked against the docnum stored with it."""
        cache = self.doc_ids
        ids: list[str | None] = [cache.get(s, n) for s, n in wanted]
        missing = [k for k, i in enumerate(ids) if i is None]
        if missing:
            asks = [("HGET", self.keys.ids(wanted[k][0]), wanted[k][1]) for k in missing]
            for k, raw in zip(missing, self.wire.run(asks), strict=True):
                if raw is not None:
                    ids[k] = doc_id = raw.decode()
                    cache.put(*wanted[k], doc_id)
        cmds = [
            ("HMGET", self.keys.doc(s, doc_id), "n", "src")
            for (s, _n), doc_id in zip(wanted, ids, strict=True)
            if doc_id is not None
        ]
        replies = iter(self.wire.run(cmds))
        out: list[tuple[str, bytes] | None] = []
        for (s, n), doc_id in zip(wanted, ids, strict=True):
            if doc_id is None:
                out.append(None)
                continue
            stored_n, src = next(replies)
            if src is None or stored_n is None or int(stored_n) != n:
                cache.forget(s, n)  # deleted (a docnum is never reused)
                out.append(None)
            else:
                out.append((doc_id, src))
        return out

    # -- single documents and statistics -------------------------------------------------
    def get_document(self, doc_id: str) -> dict[str, Any] | None:
        shard = self.keys.shard_of(doc_id)
        v, deleted, src = self.client.hmget(self.keys.doc(shard, doc_id), ["v", "del", "src"])
        if v is None or deleted or src is None:
            return None
        return {"id": doc_id, "version": int(v), "doc": orjson.loads(src)}

    def index_stats(self) -> dict[str, int]:
        names = ["N", "terms", "postings", "tombstones", "bigrams"]
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
            "bigram_postings": totals["bigrams"],  # the substring index (index.han_bigrams)
        }
