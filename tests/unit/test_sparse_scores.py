"""op=and's scoring of the matches alone equals the dense accumulation it replaces (pure:
the Searcher's scoring over hand-made postings and doc-length chunks, no server)."""

from __future__ import annotations

import numpy as np
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from rtindex.indexer.analysis import Analyzer
from rtindex.indexer.keys import CHUNK_DOCS
from rtindex.query.postings import gather_f64, gather_u16_rows
from rtindex.query.search import Searcher, _Shard
from rtindex.settings import Settings

SETTINGS = Settings()
# Not connected: the scoring methods never touch Redis.
SEARCHER = Searcher(redis.Redis(), SETTINGS, Analyzer(SETTINGS.analysis))
N_TEXT = len(SETTINGS.index.schema_.text_fields)


@st.composite
def shards(draw: st.DrawFn) -> tuple[_Shard, list[float], np.ndarray]:
    size = draw(st.integers(1, 2 * CHUNK_DOCS + 50))
    n_terms = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    postings = []
    for _ in range(n_terms):
        n = int(rng.integers(0, min(size, 300) + 1))
        docs = np.sort(rng.choice(size, n, replace=False)).astype(np.uint32)
        tfs = rng.integers(0, 5, (n, N_TEXT)).astype(np.uint16)
        tfs[tfs.sum(axis=1) == 0, 0] = 1
        postings.append((docs, tfs))
    lengths = {}
    for ch in range((size - 1) // CHUNK_DOCS + 1):
        if rng.random() < 0.9:  # now and then a chunk is missing: lengths 0
            rows = min(CHUNK_DOCS, size - ch * CHUNK_DOCS) - int(rng.integers(0, 3))
            lengths[ch] = rng.integers(1, 400, (max(rows, 0), N_TEXT)).astype(">u2").tobytes()
    sh = _Shard(0, postings, [], [], size=size, lengths=lengths)
    idfs = [float(x) for x in rng.uniform(0.1, 9, n_terms)]
    c = np.sort(rng.choice(size, int(rng.integers(1, min(size, 200) + 1)), replace=False))
    return sh, idfs, c.astype(np.uint32)


@settings(max_examples=60, deadline=None)
@given(shards(), st.floats(1, 300), st.floats(1, 300))
def test_scores_of_the_matches_equal_the_dense_scores(
    case: tuple[_Shard, list[float], np.ndarray], avg_title: float, avg_body: float
) -> None:
    sh, idfs, c = case
    avgdl = np.array([avg_title, avg_body][:N_TEXT])
    dense = SEARCHER._dense_scores(sh, avgdl, idfs)[c]
    sparse = SEARCHER._scores_of(sh, c, avgdl, idfs)
    np.testing.assert_allclose(sparse, dense, rtol=1e-12, atol=0)


def test_gather_rows_and_values_across_chunks() -> None:
    lengths = {
        0: np.array([[1, 2], [3, 4]], ">u2").tobytes(),
        2: np.array([[5, 6]], ">u2").tobytes(),
    }
    docs = np.array([0, 1, 2, CHUNK_DOCS, 2 * CHUNK_DOCS, 2 * CHUNK_DOCS + 1], np.uint32)
    got = gather_u16_rows(lengths, docs, CHUNK_DOCS, 2)
    assert got.tolist() == [[1, 2], [3, 4], [0, 0], [0, 0], [5, 6], [0, 0]]
    values = {1: np.array([1.5, 2.5], ">f8").tobytes()}
    out = gather_f64(values, np.array([0, CHUNK_DOCS + 1, CHUNK_DOCS + 2], np.uint32), CHUNK_DOCS)
    assert out[1] == 2.5 and np.isnan(out[0]) and np.isnan(out[2])


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 3 * CHUNK_DOCS))
def test_gather_equals_a_dense_column(seed: int, size: int) -> None:
    """Chunks missing, short or absent; docnums anywhere (past every chunk too)."""
    rng = np.random.default_rng(seed)
    dense = np.full(size + 10, np.nan)
    chunks: dict[int, bytes | None] = {}
    for ch in range((size - 1) // CHUNK_DOCS + 1):
        if rng.random() < 0.2:
            continue
        rows = max(0, min(CHUNK_DOCS, size - ch * CHUNK_DOCS) - int(rng.integers(0, 3)))
        col = rng.uniform(-1e6, 1e6, rows)
        dense[ch * CHUNK_DOCS : ch * CHUNK_DOCS + rows] = col
        chunks[ch] = col.astype(">f8").tobytes() if rows or rng.random() < 0.5 else None
    docs = np.sort(rng.choice(size + 10, int(rng.integers(0, min(size, 500) + 1)), replace=False))
    got = gather_f64(chunks, docs.astype(np.uint32), CHUNK_DOCS)
    np.testing.assert_array_equal(got, dense[docs])
