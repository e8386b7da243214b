"""Doc-value chunks fetched with the postings (a shard spanning few chunks) give the same
answers as fetching them in a round trip of their own, in one round trip fewer."""

from __future__ import annotations

import random
from typing import Any

import pytest
import redis

from rtindex.corpus import peoples_daily_paragraphs
from rtindex.indexer.analysis import Analyzer
from rtindex.indexer.batch import index_documents
from rtindex.indexer.events import UpsertEvent
from rtindex.indexer.store import DocumentStore
from rtindex.query import search
from rtindex.query.search import GeoFilter, Searcher, SearchRequest
from rtindex.settings import Settings

pytestmark = pytest.mark.integration


def test_prefetched_chunks_answer_the_same_in_fewer_round_trips(
    settings: Settings, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(3)
    an = Analyzer(settings.analysis)
    store = DocumentStore(redis_client, settings)
    store.ensure_layout()
    paragraphs = [p for p in peoples_daily_paragraphs() if len(p) > 30][:600]
    events = [
        UpsertEvent(
            op="upsert",
            id=f"d{i}",
            version=1,
            ts=0,
            doc={
                "title": p[:12],
                "body": p,
                "price": rng.uniform(0, 100),
                "location": {"lat": 30 + rng.random(), "lon": 120 + rng.random()},
            },
        )
        for i, p in enumerate(paragraphs)
    ]
    index_documents(store, events, an.tokens)
    words = sorted({t for p in paragraphs[:50] for t in an.tokens(p) if len(t) > 1})
    requests = [
        SearchRequest(q=" ".join(rng.sample(words, rng.randint(1, 3))), op=op, k=10, **extra)
        for op in ("or", "and")
        for extra in (
            {},
            {"ranges": {"price": (20.0, 70.0)}},
            {"geo": GeoFilter(field="location", lat=30.5, lon=120.5, radius_km=40)},
        )
        for _ in range(10)
    ]

    def answers(searcher: Searcher) -> tuple[list[Any], int]:
        trips = 0
        run = searcher.wire.run

        def counted(cmds: Any) -> list[Any]:
            nonlocal trips
            trips += bool(cmds)
            return run(cmds)

        monkeypatch.setattr(searcher.wire, "run", counted)
        searcher.search(requests[0])  # learns the shards' spans (and some ids)
        trips = 0
        out = [
            [(h["id"], round(h["score"], 9)) for h in searcher.search(r)["hits"]] for r in requests
        ]
        return out, trips

    monkeypatch.setattr(search, "PREFETCH_CHUNKS", 0)
    apart, apart_trips = answers(Searcher(redis_client, settings, an))
    monkeypatch.setattr(search, "PREFETCH_CHUNKS", 2)
    ahead, ahead_trips = answers(Searcher(redis_client, settings, an))
    assert ahead == apart and any(apart)
    # One round trip fewer for every query that had candidates to score.
    scored = sum(1 for hits in apart if hits)
    assert apart_trips - ahead_trips >= scored
