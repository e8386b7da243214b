"""BM25 scoring and top-k ordering (pure), against a plain scalar reference."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from rtindex.query.bm25 import idf, term_scores
from rtindex.query.rank import top_order


def reference(tf: float, dl: float, avgdl: float, k1: float, b: float) -> float:
    if tf == 0:
        return 0.0
    return tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))


def test_idf_is_lucenes_and_never_negative() -> None:
    assert idf(10, 1) == math.log(1 + (10 - 1 + 0.5) / 1.5)
    assert idf(10, 10) > 0


@given(
    st.lists(
        st.tuples(st.integers(0, 50), st.integers(0, 50), st.integers(1, 500), st.integers(1, 500)),
        min_size=1,
        max_size=20,
    ),
    st.floats(0.1, 3.0),
    st.floats(0.0, 1.0),
)
def test_term_scores_match_the_scalar_formula(
    rows: list[tuple[int, int, int, int]], k1: float, b: float
) -> None:
    tfs = np.array([[r[0], r[1]] for r in rows], np.uint16)
    lengths = np.array([[max(r[0], r[2]), max(r[1], r[3])] for r in rows], np.uint16)
    avgdl, boosts, w = [37.5, 120.0], [2.0, 1.0], 1.7
    got = term_scores(tfs, lengths, avgdl, boosts, w, k1, b)
    for i, row in enumerate(rows):
        want = w * sum(
            boosts[f] * reference(row[f], float(lengths[i, f]), avgdl[f], k1, b) for f in range(2)
        )
        assert math.isclose(got[i], want, rel_tol=1e-12, abs_tol=1e-12)


def test_empty_field_average_does_not_divide_by_zero() -> None:
    got = term_scores(
        np.array([[1, 0]], np.uint16),
        np.array([[3, 0]], np.uint16),
        [3.0, 0.0],
        [1, 1],
        1.0,
        1.2,
        0.75,
    )
    assert np.isfinite(got).all()


@given(st.lists(st.integers(0, 5), min_size=0, max_size=60), st.integers(0, 70), st.integers(0, 20))
def test_top_order_is_a_page_of_the_full_sort(scores_int: list[int], start: int, size: int) -> None:
    scores = np.array(scores_int, float)
    shards = np.array([i % 3 for i in range(len(scores))], np.int64)
    docnums = np.arange(len(scores), dtype=np.int64)[::-1].copy()
    full = sorted(range(len(scores)), key=lambda i: (-scores[i], shards[i], docnums[i]))
    assert (
        list(top_order(scores, shards, docnums, start, start + size)) == full[start : start + size]
    )
