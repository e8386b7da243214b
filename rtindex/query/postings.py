"""Decoding the index's binary strings (layout in rtindex.indexer.keys) into numpy arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

U32Array = npt.NDArray[np.uint32]
U16Array = npt.NDArray[np.uint16]


def decode_text_postings(blob: bytes | None, n_text: int) -> tuple[U32Array, U16Array]:
    """A text posting string -> (sorted docnums, tf per text field as an (n, n_text) array)."""
    dtype = np.dtype([("doc", ">u4"), ("tf", ">u2", (n_text,))])
    if not blob:
        return np.empty(0, np.uint32), np.empty((0, n_text), np.uint16)
    rec = np.frombuffer(blob, dtype=dtype)
    return rec["doc"].astype(np.uint32), rec["tf"].astype(np.uint16).reshape(-1, n_text)


def decode_docnums(blob: bytes | None) -> U32Array:
    """A keyword posting string -> sorted docnums."""
    if not blob:
        return np.empty(0, np.uint32)
    return np.frombuffer(blob, dtype=">u4").astype(np.uint32)


# A row of 2, 4 or 8 bytes is gathered as one unsigned integer: numpy's take on a native
# integer array is several times faster than fancy indexing big-endian rows.
_ROW_AS = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def _gather(
    chunks: dict[int, bytes | None],
    docnums: U32Array,
    chunk_docs: int,
    dtype: str,
    width: int,
    out: npt.NDArray[Any],
) -> None:
    """Fill ``out``'s rows with the chunked column's rows (``width`` values of ``dtype``
    per docnum) for the SORTED ``docnums``; rows past a chunk's end or in no chunk stay as
    they are. Sorted, a chunk's docnums are one slice (two binary searches), so the cost
    is O(len(docnums)) whatever the number of chunks."""
    item = np.dtype(dtype)
    row_bytes = item.itemsize * width
    as_int = _ROW_AS.get(row_bytes)
    for chunk, blob in chunks.items():
        if not blob:
            continue
        base = chunk * chunk_docs
        lo, hi = np.searchsorted(docnums, (base, base + len(blob) // row_bytes))
        if hi <= lo:
            continue
        slots = docnums[lo:hi] - np.uint32(base)
        if as_int is not None:
            rows = np.frombuffer(blob, dtype=as_int).take(slots).view(item)
        else:
            rows = np.frombuffer(blob, dtype=item).reshape(-1, width)[slots]
        out[lo:hi] = rows.reshape((-1, *out.shape[1:]))


def gather_f64(
    chunks: dict[int, bytes | None], docnums: U32Array, chunk_docs: int
) -> npt.NDArray[np.float64]:
    """Values of an f64 doc-value column for the given sorted docnums (NaN where missing)."""
    out = np.full(len(docnums), np.nan)
    _gather(chunks, docnums, chunk_docs, ">f8", 1, out)
    return out


def gather_u16_rows(
    chunks: dict[int, bytes | None], docnums: U32Array, chunk_docs: int, width: int
) -> U16Array:
    """Rows of ``width`` u16 values (doc lengths per text field) for the given sorted
    docnums (zeros where missing)."""
    out = np.zeros((len(docnums), width), np.uint16)
    _gather(chunks, docnums, chunk_docs, ">u2", width, out)
    return out


def haversine_km(
    lat: npt.NDArray[np.float64], lon: npt.NDArray[np.float64], lat0: float, lon0: float
) -> npt.NDArray[np.float64]:
    r = 6371.0088  # mean Earth radius, km
    p1, p2 = np.radians(lat), np.radians(lat0)
    dp, dl = p2 - p1, np.radians(lon0) - np.radians(lon)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    out: npt.NDArray[np.float64] = 2 * r * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    return out
