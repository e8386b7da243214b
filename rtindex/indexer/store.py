"""The one module that writes the document index to Redis.

It reads the stored state of a batch's documents, allocates docnums for new ones, and
applies :class:`~rtindex.indexer.plan.DocPlan`s through ``apply.lua`` — one script call
per shard and ``index.apply_chunk`` documents, pipelined, each document compare-and-set
on its version.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import orjson
import redis

from rtindex.indexer.docview import IndexedView, numeric_columns
from rtindex.indexer.keys import CHUNK_DOCS, LAYOUT_VERSION, Keys
from rtindex.indexer.plan import DocPlan, Stored
from rtindex.settings import IndexSchema, Settings

_APPLY_LUA = resources.files("rtindex.indexer").joinpath("apply.lua").read_text("utf-8")
_NAN = struct.pack(">d", math.nan)
_FORWARD_FIELDS = ("v", "n", "del", "src", "ix")


class LayoutMismatch(RuntimeError):
    """The Redis namespace holds an index built with an incompatible layout or schema."""


_DOCNUM = struct.Struct(">I")


def schema_fingerprint(schema: IndexSchema) -> str:
    # Only what changes the stored bytes: text field order (record layout) and columns.
    return orjson.dumps({"text": list(schema.text), "cols": list(numeric_columns(schema))}).decode()


BIGRAMS_NOT_WORDS = "2"


def document_layout(settings: Settings) -> dict[str, str]:
    """What the documents index records in the namespace's meta hash: how it was built."""
    return {
        "layout": str(LAYOUT_VERSION),
        "shards": str(settings.index.shards),
        "schema": schema_fingerprint(settings.index.schema_),
        # "2": the bigrams that are not words of their document ("1", every bigram, was
        # written before; an index built so is refused here and must be rebuilt).
        "bigrams": BIGRAMS_NOT_WORDS if settings.index.han_bigrams else "0",
    }


def check_layout(namespace: str, have: dict[str, str], want: dict[str, str]) -> None:
    """Raise LayoutMismatch unless the recorded ``have`` agrees with ``want``."""
    for k, v in want.items():
        if have.get(k) != v:
            raise LayoutMismatch(
                f"namespace {namespace!r} holds an index with {k}={have.get(k)!r}, "
                f"this configuration needs {v!r}: use another namespace or rebuild the index"
            )


def record_layout(client: redis.Redis, namespace: str, want: dict[str, str]) -> None:
    """Record ``want`` in the namespace's meta hash if new, or refuse a namespace that
    was built with other values (a layout version, a shard count, a schema)."""
    meta = Keys(namespace, 1).meta
    pipe = client.pipeline(transaction=False)
    for k, v in want.items():
        pipe.hsetnx(meta, k, v)
    pipe.hgetall(meta)
    stored: dict[bytes, bytes] = pipe.execute()[-1]
    check_layout(namespace, {k.decode(): v.decode() for k, v in stored.items()}, want)


@dataclass(slots=True)
class _Args:
    """KEYS and ARGV of one script call, with the keys de-duplicated."""

    keys: list[str]
    argv: list[bytes | str] = field(default_factory=lambda: ["", ""])
    _index: dict[str, int] = field(default_factory=dict)

    def key(self, name: str) -> int:
        i = self._index.get(name)
        if i is None:
            self.keys.append(name)
            i = self._index[name] = len(self.keys)
        return i

    def keys_of(self, names: list[str]) -> list[int]:
        """Indexes of many keys at once (the hot loop of bulk indexing)."""
        index, keys = self._index, self.keys
        out = []
        for name in names:
            i = index.get(name)
            if i is None:
                keys.append(name)
                i = index[name] = len(keys)
            out.append(i)
        return out

    def arg(self, value: bytes | str) -> int:
        self.argv.append(value)
        return len(self.argv)


class DocumentStore:
    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.settings = settings
        self.client = client
        self.schema = settings.index.schema_
        self.keys = Keys(settings.redis.namespace, settings.index.shards)
        self.tombstone_ttl = settings.index.tombstone_ttl_s
        self.columns = numeric_columns(self.schema)
        self.n_text = len(self.schema.text_fields)
        self.apply_chunk = settings.index.apply_chunk
        self.han_bigrams = settings.index.han_bigrams
        self.record_size = 4 + 2 * self.n_text
        self._rec = struct.Struct(f">I{self.n_text}H")
        self._apply = client.register_script(_APPLY_LUA)

    # -- layout -------------------------------------------------------------------
    def ensure_layout(self) -> None:
        """Record the layout in a new namespace, or refuse one built differently."""
        record_layout(self.client, self.keys.namespace, document_layout(self.settings))

    # -- read -----------------------------------------------------------------------
    def read(self, doc_ids: list[str]) -> dict[str, Stored]:
        pipe = self.client.pipeline(transaction=False)
        for doc_id in doc_ids:
            pipe.hmget(self.keys.doc(self.keys.shard_of(doc_id), doc_id), _FORWARD_FIELDS)
        out: dict[str, Stored] = {}
        for doc_id, (v, n, deleted, src, ix) in zip(doc_ids, pipe.execute(), strict=True):
            if v is None:
                out[doc_id] = Stored()
            elif deleted:
                out[doc_id] = Stored(version=int(v), deleted=True)
            else:
                out[doc_id] = Stored(
                    version=int(v),
                    docnum=int(n),
                    src=orjson.loads(src),
                    view=IndexedView.from_json(ix),
                )
        return out

    # -- write ----------------------------------------------------------------------
    def allocate_docnums(self, plans: list[DocPlan]) -> None:
        """Give every plan that creates a live document a fresh docnum (never reused)."""
        wanted: dict[int, list[DocPlan]] = {}
        for p in plans:
            if p.needs_docnum:
                wanted.setdefault(self.keys.shard_of(p.doc_id), []).append(p)
        if not wanted:
            return
        pipe = self.client.pipeline(transaction=False)
        for shard, ps in wanted.items():
            pipe.hincrby(self.keys.stats(shard), "next", len(ps))
        for (_shard, ps), last in zip(wanted.items(), pipe.execute(), strict=True):
            for i, p in enumerate(ps):
                p.docnum = int(last) - len(ps) + i + 1

    def apply(self, plans: list[DocPlan]) -> list[DocPlan]:
        """Write the plans; return those that lost a compare-and-set race (to re-plan)."""
        self.allocate_docnums(plans)
        by_shard: dict[int, list[DocPlan]] = {}
        for p in plans:
            by_shard.setdefault(self.keys.shard_of(p.doc_id), []).append(p)
        pipe = self.client.pipeline(transaction=False)
        order: list[list[DocPlan]] = []
        chunks = [
            (shard, all_ps[i : i + self.apply_chunk])
            for shard, all_ps in by_shard.items()
            for i in range(0, len(all_ps), self.apply_chunk)
        ]
        for shard, ps in chunks:
            args = _Args(keys=[self.keys.stats(shard), self.keys.ids(shard)])
            ops = [self._op(shard, p, args) for p in ps]
            args.argv[0] = orjson.dumps(ops)
            args.argv[1] = str(self.record_size)
            self._apply(keys=args.keys, args=args.argv, client=pipe)
            order.append(ps)
        conflicts: list[DocPlan] = []
        for ps, results in zip(order, pipe.execute(), strict=True):
            conflicts.extend(p for p, ok in zip(ps, results, strict=True) if not ok)
        return conflicts

    def _op(self, shard: int, p: DocPlan, a: _Args) -> dict[str, Any]:
        k = self.keys
        base = "" if p.base.version is None else str(p.base.version)
        op: dict[str, Any] = {
            "d": a.key(k.doc(shard, p.doc_id)),
            "b": a.arg(base),
            "k": 2 if p.deleted else 1,
            "v": a.arg(str(p.version)),
            "ts": a.arg(str(p.ts)),
        }
        stats: list[list[Any]] = []
        d = p.diff
        if p.deleted:
            docnum = p.base.docnum if p.base.live else None
            if self.tombstone_ttl:
                op["ttl"] = self.tombstone_ttl
            if not p.base.deleted:
                stats.append(["tombstones", 1])
        else:
            docnum = p.docnum
            assert docnum is not None, "docnums are allocated before ops are built"
            op["src"] = a.arg(orjson.dumps(p.src))
            assert p.view is not None
            op["ix"] = a.arg(p.view.to_json())
            if not p.base.live:
                op["new"] = 1
                op["id"] = a.arg(p.doc_id)
                if p.base.deleted:
                    stats.append(["tombstones", -1])
            chunk, slot = divmod(docnum, CHUNK_DOCS)
            op["dl"] = [
                a.key(k.doc_lengths(shard, chunk)),
                slot * 2 * self.n_text,
                a.arg(struct.pack(f">{self.n_text}H", *p.view.lengths)),
            ]
            op["nv"] = [
                [
                    a.key(k.numeric(shard, col, chunk)),
                    slot * 8,
                    a.arg(
                        struct.pack(">d", p.view.numbers[col]) if col in p.view.numbers else _NAN
                    ),
                ]
                for col in self.columns
            ]
        if docnum is not None:
            nb = _DOCNUM.pack(docnum)
            op["n"] = a.arg(str(docnum))
            op["nb"] = a.arg(nb)
            if p.base.live:
                # An update: few postings change, each found by binary search.
                op["pr"] = [a.key(k.postings(shard, t)) for t in d.remove]
                op["kr"] = [a.key(k.keyword(shard, f, v)) for f, v in d.keywords_remove] + [
                    a.key(k.bigram(shard, g)) for g in d.bigrams_remove
                ]
                op["pa"] = [
                    [a.key(k.postings(shard, t)), a.arg(self._rec.pack(docnum, *tf))]
                    for t, tf in d.add.items()
                ]
                op["pu"] = [
                    [a.key(k.postings(shard, t)), a.arg(self._rec.pack(docnum, *tf))]
                    for t, tf in d.update.items()
                ]
                op["ka"] = [a.key(k.keyword(shard, f, v)) for f, v in d.keywords_add] + [
                    a.key(k.bigram(shard, g)) for g in d.bigrams_add
                ]
            else:
                # A new document: its docnum is fresh. Its postings travel as one blob of
                # records and the list of their keys; the script groups them by key
                # across the batch and appends each group at once.
                prefix, rec = k.postings_prefix(shard), self._rec.pack
                op["g"] = a.keys_of([prefix + t for t in d.add])
                op["gr"] = a.arg(b"".join([rec(docnum, *tf) for tf in d.add.values()]))
                op["gk"] = a.keys_of(
                    [k.keyword(shard, f, v) for f, v in d.keywords_add]
                    + [k.bigram(shard, g) for g in d.bigrams_add]
                )
            chunk = docnum // CHUNK_DOCS
            counter = f"cl:{chunk}"
            if d.live_delta:
                stats.append([counter, d.live_delta])
            if d.live_delta < 0:
                chunk_keys = [k.doc_lengths(shard, chunk)] + [
                    k.numeric(shard, col, chunk) for col in self.columns
                ]
                op["cz"] = [counter, [a.key(x) for x in chunk_keys]]
        if d.live_delta:
            stats.append(["N", d.live_delta])
        if d.postings_delta:
            stats.append(["postings", d.postings_delta])
        if bigram_delta := len(d.bigrams_add) - len(d.bigrams_remove):
            stats.append(["bigrams", bigram_delta])
        for name, delta in zip(self.schema.text_fields, d.length_delta, strict=True):
            if delta:
                stats.append([f"tl:{name}", delta])
        if stats:
            op["st"] = stats
        return op
