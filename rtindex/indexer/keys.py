"""The Redis key layout: every key rtindex reads or writes is named here and nowhere else.

Layout version 2 (version 2 added the bigram postings). The index is
document-partitioned into ``shards``; all keys of one shard share the hash tag ``{s<i>}``
so that a shard lives in one Redis Cluster hash slot and one Lua script can update a
document atomically. Queries fan out over the
shards and sum their statistics, so BM25 is global whatever the shard count.

Per shard (prefix ``<ns>:{s<i>}:``):

=================  =====  ==========================================================
``st``             hash   N (live docs), next (docnum counter), top (largest docnum
                          applied), cl:<chunk> (live docs per doc-value chunk),
                          tl:<field> (tokens per text field), terms, postings, tombstones,
                          bigrams (bigram postings)
``d:<id>``         hash   forward index: v (version), n (docnum), src (stored JSON),
                          t (indexed terms JSON), ts; a tombstone is {v, del=1, ts}
``ids``            hash   docnum -> id
``p:<term>``       str    text postings, sorted by docnum: records of a 4-byte
                          big-endian docnum then one big-endian u16 tf per text field
``k:<f>:<value>``  str    keyword postings: sorted 4-byte big-endian docnums
``g:<bigram>``     str    Han character bigram postings (``index.han_bigrams``): sorted
                          4-byte big-endian docnums of the documents whose text fields
                          hold those two characters side by side, except those that have
                          the bigram as a word (``p:<bigram>`` holds them; a query reads
                          both)
``dl:<chunk>``     str    doc lengths, u16 BE per text field, indexed by docnum
``nv:<f>:<chunk>`` str    numeric doc values, f64 BE per docnum (NaN = missing)
=================  =====  ==========================================================

Behavior state is user-partitioned into ``behavior.shards`` shards (hash tag ``{b<i>}``,
shard = crc32(user id)): every effect of one event lands in its user's shard, so one script
applies a batch's events to a shard atomically together with the shard's Kafka offsets.
Item-level structures are therefore per-shard partial sums, merged when read. Per shard
(prefix ``<ns>:{b<i>}:``), version ``BEHAVIOR_LAYOUT_VERSION``:

=================  =====  ==========================================================
``bs``             hash   o:<topic>:<partition> (last applied offset), f:<topic>:<partition>
                          (its record's hash), applied, duplicate (events)
``ua``             zset   user -> time of their last event (ms): users, and expiry
``u:<user>``       hash   n (events since reset), last (ts), seq (events ever: the CAS token)
``ur:<user>``      list   recent events, newest first: ts, action, event id, item (0x1f
                          separated)
``ux:<user>``      zset   items excluded from recommendations (e.g. bought) -> ts
``up:<user>``      zset   preference ``<field>=<value>`` -> decayed weight (log2)
``nb:<item>``      zset   co-occurring item -> decayed weight (log2)
``ic:<item>``      hash   action -> events
``ip``             zset   item -> decayed interaction weight (log2), for normalizing
``tr``, ``tr:<v>`` zset   item -> decayed trending weight (log2), global and per value
=================  =====  ==========================================================

Decayed weights are stored as log2 of a forward-decayed sum (see ``indexer/decay.py``), so
no rescan is ever needed and nothing overflows.

Geo fields are two numeric doc-value columns, ``<f>.lat`` and ``<f>.lon``.
Docnums are allocated per shard, never reused; an update keeps the docnum, so only the
changed terms are written. Global: ``<ns>:meta`` (layout version, shards, schema).
Operational, not index state: ``<ns>:ops:consumers`` (consumer status reports) and
``<ns>:ops:dlq`` (dead letters by topic and reason); see :class:`OpsKeys`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

LAYOUT_VERSION = 2
BEHAVIOR_LAYOUT_VERSION = 2
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

    def bigram(self, shard: int, bigram: str) -> str:
        return self.shard_prefix(shard) + "g:" + bigram

    def doc_lengths(self, shard: int, chunk: int) -> str:
        return self.shard_prefix(shard) + f"dl:{chunk}"

    def numeric(self, shard: int, column: str, chunk: int) -> str:
        return self.shard_prefix(shard) + f"nv:{column}:{chunk}"

    def postings_prefix(self, shard: int) -> str:
        """For building many posting keys of one shard in a hot loop."""
        return self.shard_prefix(shard) + "p:"


def geo_columns(field: str) -> tuple[str, str]:
    return f"{field}.lat", f"{field}.lon"


@dataclass(frozen=True, slots=True)
class BehaviorKeys:
    namespace: str
    shards: int

    def shard_of(self, user_id: str) -> int:
        return zlib.crc32(user_id.encode("utf-8")) % self.shards

    def prefix(self, shard: int) -> str:
        return f"{self.namespace}:{{b{shard}}}:"

    def stats(self, shard: int) -> str:
        return self.prefix(shard) + "bs"

    def users(self, shard: int) -> str:
        return self.prefix(shard) + "ua"

    def user(self, shard: int, user_id: str) -> str:
        return self.prefix(shard) + "u:" + user_id

    def recent(self, shard: int, user_id: str) -> str:
        return self.prefix(shard) + "ur:" + user_id

    def excluded(self, shard: int, user_id: str) -> str:
        return self.prefix(shard) + "ux:" + user_id

    def profile(self, shard: int, user_id: str) -> str:
        return self.prefix(shard) + "up:" + user_id

    def user_keys(self, shard: int, user_id: str) -> tuple[str, str, str, str]:
        """Every per-user key (what expiring a user deletes)."""
        return (
            self.user(shard, user_id),
            self.recent(shard, user_id),
            self.excluded(shard, user_id),
            self.profile(shard, user_id),
        )

    def neighbours(self, shard: int, item_id: str) -> str:
        return self.prefix(shard) + "nb:" + item_id

    def counters(self, shard: int, item_id: str) -> str:
        return self.prefix(shard) + "ic:" + item_id

    def popularity(self, shard: int) -> str:
        return self.prefix(shard) + "ip"

    def trending(self, shard: int, value: str | None = None) -> str:
        return self.prefix(shard) + ("tr" if value is None else "tr:" + value)

    @staticmethod
    def offset_fields(topic: str, partition: int) -> tuple[str, str]:
        """The ``bs`` fields of a partition's last applied offset and its record's hash."""
        return f"o:{topic}:{partition}", f"f:{topic}:{partition}"


@dataclass(frozen=True, slots=True)
class OpsKeys:
    """Operational keys (``<ns>:ops:``): consumer status reports and the DLQ tally. Not
    index state: canonical dumps leave them out, and losing them loses no data."""

    namespace: str

    @property
    def prefix(self) -> str:
        return f"{self.namespace}:ops:"

    @property
    def consumers(self) -> str:
        """hash: consumer member -> its latest status report (JSON, with ``at_ms``)."""
        return self.prefix + "consumers"

    @property
    def dlq(self) -> str:
        """hash: ``<topic>|<reason>`` -> messages dead-lettered (at least once, like the DLQ)."""
        return self.prefix + "dlq"
