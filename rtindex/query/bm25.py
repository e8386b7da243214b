"""BM25 over several text fields with boosts. Pure functions over numpy arrays.

For a query term t, document d and text field f with boost w_f::

    score(d) = sum_t idf(t) * sum_f w_f * tf(t,d,f) * (k1 + 1)
                                    / (tf(t,d,f) + k1 * (1 - b + b * len(d,f) / avgdl(f)))
    idf(t)   = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

N counts live documents; df(t) counts live documents with t in any text field; avgdl(f)
is the mean token count of field f over live documents. This is Lucene's BM25 (its idf
is never negative) summed over fields with per-field boosts, like Elasticsearch's
``multi_match`` of type ``most_fields``. Query terms are de-duplicated: repeating a word
in the query does not weigh it more.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def idf(n_docs: int, df: int) -> float:
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


def term_scores(
    tfs: npt.NDArray[np.uint16],
    lengths: npt.NDArray[np.uint16],
    avgdl: Sequence[float] | FloatArray,
    boosts: Sequence[float],
    term_idf: float | FloatArray,
    k1: float,
    b: float,
) -> FloatArray:
    """One term's score for each of n documents.

    ``tfs`` and ``lengths`` are (n, fields) arrays: the term's frequency and the
    document's length in each text field. ``term_idf``: the term's idf, or one per row
    (rows of several terms scored in one call).
    """
    tf = tfs.astype(np.float64)
    avg = np.asarray(avgdl, dtype=np.float64)
    # A field no live document has (avgdl 0) has tf 0 everywhere: any positive norm works.
    avg = np.where(avg > 0, avg, 1.0)
    # tf + k1 * (1 - b + b * dl / avgdl), in place: a few passes over the rows, no temporaries.
    denom = lengths.astype(np.float64)
    denom *= k1 * b / avg
    denom += k1 * (1.0 - b)
    denom += tf
    # With k1 >= 0 and 0 <= b <= 1 every addend is >= 0, so a zero denominator means tf 0,
    # which scores 0 (tf is left as it is there).
    np.divide(tf, denom, out=tf, where=denom > 0)
    weighted: FloatArray = tf @ (np.asarray(boosts, dtype=np.float64) * (k1 + 1.0))
    weighted *= term_idf
    return weighted
