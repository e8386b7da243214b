"""Remembered docnum -> id pairs never show a deleted or re-created document's old slot."""

from __future__ import annotations

import pytest
import redis

from rtindex.indexer.analysis import Analyzer
from rtindex.indexer.batch import index_documents
from rtindex.indexer.events import DeleteEvent, UpsertEvent
from rtindex.indexer.store import DocumentStore
from rtindex.query.search import Searcher, SearchRequest
from rtindex.settings import Settings

pytestmark = pytest.mark.integration


def up(doc_id: str, version: int, body: str) -> UpsertEvent:
    return UpsertEvent(op="upsert", id=doc_id, version=version, ts=0, doc={"body": body})


def test_a_stale_docnum_is_never_served(settings: Settings, redis_client: redis.Redis) -> None:
    an = Analyzer(settings.analysis)
    store = DocumentStore(redis_client, settings)
    store.ensure_layout()
    index_documents(store, [up("a", 1, "烤鸭 one"), up("b", 1, "烤鸭 two")], an.tokens)
    searcher = Searcher(redis_client, settings, an)
    first = searcher.search(SearchRequest(q="烤鸭", k=10))
    assert {h["id"] for h in first["hits"]} == {"a", "b"}
    old = store.read(["a"])["a"].docnum
    assert old is not None and searcher.doc_ids.get(0, old) == "a"  # remembered
    # Deleted, then created again: a new docnum; the old one must not serve it.
    index_documents(store, [DeleteEvent(op="delete", id="a", version=2, ts=0)], an.tokens)
    index_documents(store, [up("a", 3, "烤鸭 three")], an.tokens)
    new = store.read(["a"])["a"].docnum
    assert new is not None and new != old
    assert searcher._documents([(0, old)]) == [None]
    assert searcher.doc_ids.get(0, old) is None  # forgotten
    again = searcher.search(SearchRequest(q="烤鸭", k=10))
    assert sorted(h["id"] for h in again["hits"]) == ["a", "b"]
    assert {h["doc"]["body"] for h in again["hits"]} == {"烤鸭 three", "烤鸭 two"}
