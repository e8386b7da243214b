"""Scores from Redis equal a plain reference BM25 over the same analyzed documents.

1,500 real People's Daily paragraphs are indexed, then a third are updated and a tenth
deleted (so the incrementally kept statistics are exercised, not just a bulk load).
The reference is written here from the formula, independently of rtindex.query.
"""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
import redis

from rtindex.corpus import peoples_daily_paragraphs
from rtindex.indexer.analysis import Analyzer, normalize
from rtindex.indexer.batch import index_documents
from rtindex.indexer.events import DeleteEvent, UpsertEvent
from rtindex.indexer.store import DocumentStore
from rtindex.query.matching import and_requirements
from rtindex.query.search import Searcher, SearchRequest
from rtindex.settings import Settings

pytestmark = pytest.mark.integration
SEED = 7


TermCounts = dict[str, dict[str, Counter[str]]]


def analyze_all(
    docs: dict[str, dict[str, str]], fields: list[str], analyzer: Analyzer
) -> TermCounts:
    return {i: {f: Counter(analyzer.tokens(d.get(f, ""))) for f in fields} for i, d in docs.items()}


def bm25_idf(n: int, df: int) -> float:
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


def reference_scores(
    tf: TermCounts,
    texts: dict[str, dict[str, str]],
    query: str,
    analyzer: Analyzer,
    settings: Settings,
    op: str,
) -> dict[str, float]:
    """BM25 over the query's tokens. ``and`` with the bigram postings: each Han run of
    2+ characters is met by occurring in a text field (and then adds one term's idf, its
    document frequency counted by substring); the other tokens by their requirements.
    Without them, all tokens by their requirements."""
    substrings = settings.index.han_bigrams
    schema, k1, b = settings.index.schema_, settings.bm25.k1, settings.bm25.b
    fields = list(schema.text)
    docs = tf
    n = len(docs)
    avgdl = {f: sum(sum(tf[i][f].values()) for i in docs) / n for f in fields}
    segments = analyzer.segments(query)
    terms = list(dict.fromkeys(t for _run, tokens in segments for t in tokens))
    df = {t: sum(1 for i in docs if any(tf[i][f][t] for f in fields)) for t in terms}
    runs: list[str] = []
    rest: list[str] = []
    for run, tokens in segments:
        if substrings and len(run) >= 2:
            runs.append(run)
        else:
            rest.extend(tokens)
    norm = {i: [normalize(texts[i].get(f, "")) for f in fields] for i in docs}
    inside = {r: {i for i in docs if any(r in t for t in norm[i])} for r in runs}
    out: dict[str, float] = {}
    for i in docs:
        present = [t for t in terms if any(tf[i][f][t] for f in fields)]

        def met(tokens: list[str], present: list[str] = present) -> bool:
            reqs = and_requirements(tokens)
            return bool(reqs) and all(
                r.term in present or (r.cover and all(p in present for p in r.cover)) for r in reqs
            )

        contained = [r for r in dict.fromkeys(runs) if i in inside[r]]
        if not present and not (op == "and" and contained):
            continue
        if op == "and":
            if len(contained) < len(set(runs)):
                continue
            if rest and not met(rest):
                continue
        score = 0.0
        for t in present:
            w = bm25_idf(n, df[t])
            for f in fields:
                x, dl = tf[i][f][t], sum(tf[i][f].values())
                if x:
                    score += (
                        schema.text[f].boost
                        * w
                        * x
                        * (k1 + 1)
                        / (x + k1 * (1 - b + b * dl / avgdl[f]))
                    )
        if op == "and":
            score += sum(bm25_idf(n, len(inside[r])) for r in contained)
        out[i] = score
    return out


@pytest.mark.parametrize("bigrams", [False, True], ids=["words", "bigrams"])
def test_scores_equal_reference_bm25(
    settings: Settings, redis_client: redis.Redis, bigrams: bool
) -> None:
    settings = settings.with_overrides({"index": {"han_bigrams": bigrams}})
    rng = random.Random(SEED)
    analyzer = Analyzer(settings.analysis)
    store = DocumentStore(redis_client, settings)
    store.ensure_layout()
    paragraphs = [p for p in peoples_daily_paragraphs() if len(p) > 30][:1500]
    docs = {f"pd-{i}": {"title": p[:16], "body": p} for i, p in enumerate(paragraphs)}
    events: list[UpsertEvent | DeleteEvent] = [
        UpsertEvent(op="upsert", id=i, version=1, ts=0, doc=d) for i, d in docs.items()
    ]
    for i in rng.sample(sorted(docs), 500):
        docs[i] = {"title": docs[i]["title"], "body": rng.choice(paragraphs)}
        events.append(UpsertEvent(op="upsert", id=i, version=2, ts=0, doc=docs[i]))
    for i in rng.sample(sorted(docs), 150):
        del docs[i]
        events.append(DeleteEvent(op="delete", id=i, version=3, ts=0))
    for start in range(0, len(events), 250):
        index_documents(store, events[start : start + 250], analyzer.tokens)

    searcher = Searcher(redis_client, settings, analyzer)
    vocabulary = sorted({t for d in docs.values() for t in analyzer.tokens(d["body"])})
    queries = [" ".join(rng.sample(vocabulary, rng.randint(1, 3))) for _ in range(40)]
    queries += ["中国 经济", "人民", "发展 改革 开放", "中华人民共和国", "北京大学 清华大学"]
    # Substrings across or inside words (found by the bigram postings in and mode).
    bodies = [d["body"] for d in docs.values()]
    for _ in range(15):
        body = rng.choice(bodies)
        start = rng.randrange(len(body) - 6)
        queries.append(body[start : start + rng.randint(2, 6)])
    compared = 0
    tf = analyze_all(docs, list(settings.index.schema_.text), analyzer)
    for q in queries:
        for op in ("or", "and"):
            want = reference_scores(tf, docs, q, analyzer, settings, op)
            got = searcher.search(SearchRequest(q=q, k=1000, op=op))
            assert got["total"] == len(want), (q, op)
            have = {h["id"]: h["score"] for h in got["hits"]}
            assert set(have) == set(want), (q, op)
            for i, score in have.items():
                assert math.isclose(score, want[i], rel_tol=1e-9), (q, op, i, score, want[i])
            scores = [h["score"] for h in got["hits"]]
            assert scores == sorted(scores, reverse=True)
            compared += len(have)
    assert compared > 1000, "the queries must match enough documents to mean something"
