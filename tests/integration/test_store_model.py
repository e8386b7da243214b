"""Model-based property test: the real Redis store against a plain dictionary model.

Random upserts, patches and deletes for a handful of ids, with duplicates, stale
versions and shuffled order, are applied in random micro-batches (some delivered twice)
through the real store. The index must then hold exactly what a dictionary that applies
the contract's rules event by event says: the documents found, every posting list, every
keyword list, the statistics, and no key that the model cannot account for.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from rtindex.indexer.batch import index_documents
from rtindex.indexer.docview import (
    apply_patch,
    build_view,
    clean_upsert,
    numeric_columns,
    text_bigrams,
)
from rtindex.indexer.dump import dump_namespace
from rtindex.indexer.events import DeleteEvent, PatchEvent, UpsertEvent
from rtindex.indexer.keys import CHUNK_DOCS, Keys
from rtindex.indexer.plan import group_by_id, plan_document
from rtindex.indexer.store import DocumentStore
from rtindex.query.postings import decode_docnums, decode_text_postings
from rtindex.runtime.servers import RedisServer
from rtindex.settings import Settings

pytestmark = pytest.mark.integration

IDS = ["a", "b", "c", "d", "é/{x}:*"]
WORDS = ["alpha", "beta", "gamma", "delta", "北京", "烤鸭", "北京烤鸭店"]


def tok(text: str) -> list[str]:
    return text.split()


texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=5).map(" ".join)
fields = st.fixed_dictionaries(
    {"title": texts},
    optional={
        "body": texts,
        "tags": st.lists(st.sampled_from(["t1", "t2", "t3"]), max_size=2),
        "city": st.sampled_from(["杭州", "北京"]),
        "price": st.integers(0, 100),
        "location": st.builds(
            lambda a, b: {"lat": a, "lon": b}, st.integers(-90, 90), st.integers(-180, 180)
        ),
        "note": st.text(max_size=5),
    },
)
patch_fields = fields.flatmap(
    lambda d: st.fixed_dictionaries({k: st.sampled_from([v, None]) for k, v in d.items()})
)


@st.composite
def event(draw: st.DrawFn) -> UpsertEvent | PatchEvent | DeleteEvent:
    doc_id, version = draw(st.sampled_from(IDS)), draw(st.integers(0, 12))
    op = draw(st.sampled_from(["upsert", "upsert", "patch", "delete"]))
    if op == "upsert":
        return UpsertEvent(op="upsert", id=doc_id, version=version, ts=version, doc=draw(fields))
    if op == "patch":
        return PatchEvent(
            op="patch", id=doc_id, version=version, ts=version, doc=draw(patch_fields)
        )
    return DeleteEvent(op="delete", id=doc_id, version=version, ts=version)


@st.composite
def deliveries(draw: st.DrawFn) -> list[list[UpsertEvent | PatchEvent | DeleteEvent]]:
    """Batches as a consumer sees them: duplicates, reorders, and redelivered batches."""
    events = draw(st.lists(event(), min_size=5, max_size=60))
    events = events + draw(st.lists(st.sampled_from(events), max_size=5))  # exact duplicates
    events = draw(st.permutations(events))
    cuts = sorted(draw(st.lists(st.integers(0, len(events)), max_size=6)))
    batches = [events[i:j] for i, j in zip([0, *cuts], [*cuts, len(events)], strict=True) if j > i]
    out: list[list[Any]] = []
    for b in batches:
        out.append(b)
        if draw(st.booleans()) and draw(st.booleans()):
            out.append(b)  # a crash before the commit: the batch comes again
    return out


def model(batches: list[list[Any]]) -> dict[str, tuple[int, dict[str, Any] | None]]:
    """The contract's rules, one event at a time: id -> (version, doc or None if deleted)."""
    state: dict[str, tuple[int, dict[str, Any] | None]] = {}
    for batch in batches:
        for ev in batch:
            cur = state.get(ev.id)
            if cur is not None and ev.version <= cur[0]:
                continue
            if isinstance(ev, DeleteEvent):
                state[ev.id] = (ev.version, None)
            elif isinstance(ev, UpsertEvent):
                state[ev.id] = (ev.version, clean_upsert(ev.doc))
            else:
                base = cur[1] if cur is not None and cur[1] is not None else {}
                state[ev.id] = (ev.version, apply_patch(base, ev.doc))
    return state


@pytest.fixture(scope="module")
def client(redis_server: RedisServer) -> Any:
    c = redis.Redis.from_url(redis_server.url)
    yield c
    c.close()


@hsettings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=deliveries(),
    shards=st.sampled_from([1, 3]),
    chunk=st.sampled_from([2, 200]),
    bigrams=st.booleans(),
)
def test_store_matches_the_model(
    client: redis.Redis,
    redis_server: RedisServer,
    batches: list[list[Any]],
    shards: int,
    chunk: int,
    bigrams: bool,
) -> None:
    ns = "m" + uuid.uuid4().hex[:10]
    settings = Settings().with_overrides(
        {
            "redis": {"url": redis_server.url, "namespace": ns},
            "index": {"shards": shards, "apply_chunk": chunk, "han_bigrams": bigrams},
        }
    )
    store = DocumentStore(client, settings)
    store.ensure_layout()
    try:
        for batch in batches:
            index_documents(store, batch, tok)
        check_against_model(client, settings, model(batches))
        # Everything delivered once more: nothing changes, not a byte.
        before = dump_namespace(client, ns)
        for batch in batches:
            result = index_documents(store, batch, tok)
            assert result.documents_written == 0
        assert dump_namespace(client, ns) == before
    finally:
        keys = list(client.scan_iter(match=f"{ns}:*", count=1000))
        if keys:
            client.delete(*keys)


def check_against_model(
    client: redis.Redis, settings: Settings, want: dict[str, tuple[int, dict[str, Any] | None]]
) -> None:
    schema = settings.index.schema_
    keys = Keys(settings.redis.namespace, settings.index.shards)
    store = DocumentStore(client, settings)
    got = store.read(list(want))
    live = {i: doc for i, (_, doc) in want.items() if doc is not None}
    for doc_id, (version, doc) in want.items():
        s = got[doc_id]
        assert s.version == version, doc_id
        assert s.deleted == (doc is None), doc_id
        if doc is not None:
            assert s.src == doc, doc_id

    # Expected postings, keyword lists and statistics, from the model alone.
    views = {i: build_view(doc, schema, tok) for i, doc in live.items()}
    expected_keys = {keys.meta.encode()}
    stats_want: dict[int, Counter[str]] = {s: Counter() for s in range(keys.shards)}
    postings_want: dict[str, dict[str, tuple[int, ...]]] = {}
    keywords_want: dict[str, set[str]] = {}
    chunks: set[tuple[int, int]] = set()
    for doc_id in want:
        expected_keys.add(keys.doc(keys.shard_of(doc_id), doc_id).encode())
        if want[doc_id][1] is None:
            stats_want[keys.shard_of(doc_id)]["tombstones"] += 1
    for doc_id, view in views.items():
        shard = keys.shard_of(doc_id)
        stats_want[shard]["N"] += 1
        for name, n in zip(schema.text_fields, view.lengths, strict=True):
            stats_want[shard][f"tl:{name}"] += n
        stats_want[shard]["postings"] += len(view.terms)
        for term, tf in view.terms.items():
            postings_want.setdefault(keys.postings(shard, term), {})[doc_id] = tf
        for f, v in view.keywords:
            keywords_want.setdefault(keys.keyword(shard, f, v), set()).add(doc_id)
        # Han bigram postings: docnum lists like keywords, one per bigram of the text that
        # is not a word of the document (those are found by their word postings).
        grams = (
            text_bigrams(live[doc_id], schema, view.terms) if settings.index.han_bigrams else set()
        )
        stats_want[shard]["bigrams"] += len(grams)
        for g in grams:
            keywords_want.setdefault(keys.bigram(shard, g), set()).add(doc_id)
        docnum = got[doc_id].docnum
        assert docnum is not None
        chunks.add((shard, docnum // CHUNK_DOCS))
        expected_keys.add(keys.ids(shard).encode())
    for shard in range(keys.shards):
        stats_want[shard]["terms"] = sum(
            1 for k in postings_want if k.startswith(keys.shard_prefix(shard))
        )
    expected_keys.update(k.encode() for k in postings_want)
    expected_keys.update(k.encode() for k in keywords_want)
    for shard, chunk in chunks:
        expected_keys.add(keys.doc_lengths(shard, chunk).encode())
        expected_keys.update(
            keys.numeric(shard, c, chunk).encode() for c in numeric_columns(schema)
        )

    # Docnums: a bijection between the ids hash and the live documents.
    by_docnum: dict[tuple[int, int], str] = {}
    for shard in range(keys.shards):
        for n, i in client.hgetall(keys.ids(shard)).items():
            by_docnum[(shard, int(n))] = i.decode()
    assert sorted(by_docnum.values()) == sorted(live)
    for doc_id in live:
        assert by_docnum[(keys.shard_of(doc_id), got[doc_id].docnum)] == doc_id  # type: ignore[index]

    for key, docs in postings_want.items():
        shard = int(key.split("{s")[1].split("}")[0])
        docnums, tfs = decode_text_postings(client.get(key), len(schema.text_fields))
        assert list(docnums) == sorted(docnums) and len(set(docnums)) == len(docnums)
        found = {
            by_docnum[(shard, int(n))]: tuple(int(x) for x in row)
            for n, row in zip(docnums, tfs, strict=True)
        }
        assert found == docs, key
    for key, ids in keywords_want.items():
        shard = int(key.split("{s")[1].split("}")[0])
        docnums = decode_docnums(client.get(key))
        assert list(docnums) == sorted(docnums)
        assert {by_docnum[(shard, int(n))] for n in docnums} == ids, key

    for shard in range(keys.shards):
        raw = client.hgetall(keys.stats(shard))
        if raw:
            expected_keys.add(keys.stats(shard).encode())
        have = {
            k.decode(): int(v)
            for k, v in raw.items()
            if k not in (b"next", b"top") and not k.startswith(b"cl:")
        }
        have = {k: v for k, v in have.items() if v}
        assert have == {k: v for k, v in stats_want[shard].items() if v}, shard
        chunk_counts = {int(k[3:]): int(v) for k, v in raw.items() if k.startswith(b"cl:")}
        live_per_chunk = Counter(n // CHUNK_DOCS for (s, n) in by_docnum if s == shard)
        assert chunk_counts == dict(live_per_chunk)

    present = set(client.scan_iter(match=f"{settings.redis.namespace}:*", count=1000))
    assert present == expected_keys, {
        "orphans": present - expected_keys,
        "missing": expected_keys - present,
    }


@hsettings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    first=st.lists(event(), min_size=1, max_size=25),
    second=st.lists(event(), min_size=1, max_size=25),
)
def test_interleaved_writers_keep_postings_sorted(
    client: redis.Redis, redis_server: RedisServer, first: list[Any], second: list[Any]
) -> None:
    """Writer A allocates docnums, writer B allocates later ones and applies first, then A
    applies: A's appends can no longer go blindly at the end and must be placed by search.
    The documents of A and B are distinct, so the result must equal one writer's."""
    second = [ev.model_copy(update={"id": "B" + ev.id}) for ev in second]
    ns = "m" + uuid.uuid4().hex[:10]
    settings = Settings().with_overrides(
        {"redis": {"url": redis_server.url, "namespace": ns}, "index": {"han_bigrams": True}}
    )
    store = DocumentStore(client, settings)
    store.ensure_layout()
    try:
        groups = group_by_id(first)
        stored = store.read(list(groups))
        plans = [
            p
            for i in groups
            if (
                p := plan_document(
                    i, stored[i], groups[i], store.schema, tok, bigrams=store.han_bigrams
                )[0]
            )
            is not None
        ]
        store.allocate_docnums(plans)  # A holds its docnums ...
        index_documents(store, second, tok)  # ... while B allocates and applies later ones
        assert store.apply(plans) == []  # A applies: no conflicts, ids are distinct
        check_against_model(client, settings, model([first, second]))
    finally:
        keys = list(client.scan_iter(match=f"{ns}:*", count=1000))
        if keys:
            client.delete(*keys)
