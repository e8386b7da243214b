"""Ordering hits: best score first, deterministic ties, one page at a time (pure)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def top_order(
    scores: npt.NDArray[np.float64],
    shards: npt.NDArray[np.int64],
    docnums: npt.NDArray[np.int64],
    start: int,
    stop: int,
) -> npt.NDArray[np.intp]:
    """Positions of ranks [start, stop): best score first, ties by shard then docnum."""
    n = len(scores)
    if start >= n or stop <= start:
        return np.empty(0, np.intp)
    keep = np.arange(n)
    if stop < n:
        # Everything scoring above the stop-th best, plus every tie at that score.
        cut = -np.partition(-scores, stop - 1)[stop - 1]
        keep = np.flatnonzero(scores >= cut)
    order = np.lexsort((docnums[keep], shards[keep], -scores[keep]))
    out: npt.NDArray[np.intp] = keep[order][start:stop]
    return out
