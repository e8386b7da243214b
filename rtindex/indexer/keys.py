"""The Redis key layout: every key rtindex reads or writes is named here and nowhere else.

Layout version 1. The index is document-partitioned into ``shards``; all keys of one
shard share the hash tag ``{s<i>}`` so that a shard lives in one Redis Cluster hash
slot and one Lua script can update a document atomically. Queries fan out over the
shards and sum their statistics, so BM25 is global whatever the shard count.

Per shard (prefix ``<ns>:{s<i>}:``):

=================  =====  ==========================================================
``st``             hash   N (live docs), next (docnum counter), top (largest docnum
                          applied), cl:<chunk> (live docs per doc-value chunk),
                          tl:<field> (tokens per text field), terms, postings, tombstones
``d:<id>``         hash   forward index: v (version), n (docnum), src (stored JSON),
                          t (indexed terms JSON), ts; a tombstone is {v, del=1, ts}
``ids``            hash   docnum -> id
``p:<term>``       str    text postings, sorted by docnum: records of a 4-byte
                          big-endian docnum then one big-endian u16 tf per text field
``k:<f>:<value>``  str    keyword postings: sorted 4-byte big-endian docnums
``dl:<chunk>``     str    doc lengths, u16 BE per text field, indexed by docnum
``nv:<f>:<chunk>`` str    numeric doc values, f64 BE per docnum (NaN = missing)
=================  =====  ==========================================================

Geo fields are two numeric doc-value columns, ``<f>.lat`` and ``<f>.lon``.
Docnums are allocated per shard, never reused; an update keeps the docnum, so only the
changed terms are written. Global: ``<ns>:meta`` (layout version, shards, schema).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

LAYOUT_VERSION = 1
# Doc-value columns are split in chunks so a query fetches only the slices it needs.
CHUNK_DOCS = 16_384


@dataclass(frozen=True, slots=True)
class Keys:
    namespace: str
    shards: int

    @property
    def meta(self) -> str:
        return f"{self.namespace}:meta"

    @property
    def pattern(self) -> str:
        """A glob that matches every key of this namespace (for dumps and ACLs)."""
        return f"{self.namespace}:*"

    def shard_of(self, doc_id: str) -> int:
        # crc32 is stable across processes, versions and languages (unlike hash()).
        return zlib.crc32(doc_id.encode("utf-8")) % self.shards

    def shard_prefix(self, shard: int) -> str:
        return f"{self.namespace}:{{s{shard}}}:"

    def stats(self, shard: int) -> str:
        return self.shard_prefix(shard) + "st"

    def doc(self, shard: int, doc_id: str) -> str:
        return self.shard_prefix(shard) + "d:" + doc_id

    def ids(self, shard: int) -> str:
        return self.shard_prefix(shard) + "ids"

    def postings(self, shard: int, term: str) -> str:
        return self.shard_prefix(shard) + "p:" + term

    def keyword(self, shard: int, field: str, value: str) -> str:
        return self.shard_prefix(shard) + "k:" + field + ":" + value

    def doc_lengths(self, shard: int, chunk: int) -> str:
        return self.shard_prefix(shard) + f"dl:{chunk}"

    def numeric(self, shard: int, column: str, chunk: int) -> str:
        return self.shard_prefix(shard) + f"nv:{column}:{chunk}"

    def postings_prefix(self, shard: int) -> str:
        """For building many posting keys of one shard in a hot loop."""
        return self.shard_prefix(shard) + "p:"


def geo_columns(field: str) -> tuple[str, str]:
    return f"{field}.lat", f"{field}.lon"
