"""The query service reads the index as it was built (its meta hash), not as it assumes."""

from __future__ import annotations

import httpx
import pytest
import redis

from rtindex.indexer.analysis import Analyzer
from rtindex.indexer.batch import index_documents
from rtindex.indexer.events import UpsertEvent
from rtindex.indexer.store import DocumentStore, LayoutMismatch
from rtindex.query.search import Searcher, SearchRequest
from rtindex.query.server import create_app
from rtindex.settings import Settings
from tests.helpers import serving

pytestmark = pytest.mark.integration

DOCS = {"a": "我在北京烤鸭店吃饭", "b": "北京的小馆，烤鸭和炸酱面"}


def build(settings: Settings, client: redis.Redis, bigrams: bool) -> None:
    built = settings.with_overrides({"index": {"han_bigrams": bigrams}})
    store = DocumentStore(client, built)
    store.ensure_layout()
    events = [
        UpsertEvent(op="upsert", id=i, version=1, ts=0, doc={"body": body})
        for i, body in DOCS.items()
    ]
    index_documents(store, events, Analyzer(built.analysis).tokens)


def and_ids(searcher: Searcher, q: str) -> set[str]:
    return {h["id"] for h in searcher.search(SearchRequest(q=q, op="and", k=10))["hits"]}


@pytest.mark.parametrize("built_with", [True, False], ids=["index-bigrams", "index-words"])
def test_and_follows_the_bigram_postings_the_index_has(
    settings: Settings, redis_client: redis.Redis, built_with: bool
) -> None:
    # Configured the other way round from how the index was built.
    asks = settings.with_overrides({"index": {"han_bigrams": not built_with}})
    searcher = Searcher(redis_client, asks, Analyzer(asks.analysis))
    assert and_ids(searcher, "京烤") == set()  # no index yet: nothing, and no error
    build(settings, redis_client, built_with)
    if built_with:
        # The substring index: 京烤 is inside 北京烤鸭店; 北京烤鸭 typed together is a
        # string that only a has (b has 北京 and 烤鸭 apart).
        assert and_ids(searcher, "京烤") == {"a"}
        assert and_ids(searcher, "北京烤鸭") == {"a"}
    else:
        # Words only: 京烤 needs the tokens 京 and 烤, which no document has;
        # 北京烤鸭 is met by 北京 + 烤鸭 wherever they stand.
        assert and_ids(searcher, "京烤") == set()
        assert and_ids(searcher, "北京烤鸭") == {"a", "b"}
    assert searcher.han_bigrams is built_with


def test_a_service_configured_for_another_layout_answers_503_with_the_reason(
    settings: Settings, redis_client: redis.Redis
) -> None:
    build(settings, redis_client, False)
    other = settings.with_overrides({"index": {"shards": settings.index.shards + 1}})
    searcher = Searcher(redis_client, other, Analyzer(other.analysis))
    with pytest.raises(LayoutMismatch, match="shards"):
        searcher.search(SearchRequest(q="烤鸭"))
    with serving(create_app(other)) as base, httpx.Client(base_url=base, timeout=10) as c:
        r = c.get("/search", params={"q": "烤鸭"})
        assert r.status_code == 503 and "shards" in r.json()["detail"]
        ready = c.get("/readyz")
        assert ready.status_code == 503
        assert any("shards" in reason for reason in ready.json()["reasons"])
