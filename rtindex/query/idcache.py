"""Docnum -> document id, remembered by the query service (pure, thread-safe).

A docnum is given to one live document and never reused (keys.py), so the id it names
never changes: a remembered pair can only go stale by the document's deletion. Readers
therefore check the docnum stored with the document (``n``) when they fetch it, and
forget the pair when it no longer matches. The top hits of a query then need one
round trip (their stored documents) instead of two (ids, then documents).
"""

from __future__ import annotations

import threading


class DocIdCache:
    """A bounded map ``(shard, docnum) -> id``; the oldest entries go first when full."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: dict[tuple[int, int], str] = {}
        self._lock = threading.Lock()

    def get(self, shard: int, docnum: int) -> str | None:
        return self._ids.get((shard, docnum))  # a dict read is atomic under the GIL

    def put(self, shard: int, docnum: int, doc_id: str) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            if len(self._ids) >= self.capacity and (shard, docnum) not in self._ids:
                del self._ids[next(iter(self._ids))]  # dicts keep insertion order
            self._ids[(shard, docnum)] = doc_id

    def forget(self, shard: int, docnum: int) -> None:
        with self._lock:
            self._ids.pop((shard, docnum), None)

    def __len__(self) -> int:
        return len(self._ids)
