"""The one module that writes behavior state to Redis (and reads what planning needs).

Reads a shard's users (events count and recent list) and applied Kafka offsets in one
pipelined round trip, reads the items' document attributes (keyword values for profiles
and trending, cached by document version), and runs ``behavior.lua`` on planned chunks.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources

import orjson
import redis

from rtindex.indexer.behavior import ChunkPlan, ItemAttributes, Op, Recent, UserState
from rtindex.indexer.keys import BEHAVIOR_LAYOUT_VERSION, BehaviorKeys, Keys
from rtindex.indexer.store import record_layout
from rtindex.settings import Settings

# How long an item's cached attributes are used without asking the document index.
ATTRIBUTES_FRESH_S = 5.0
_LUA = resources.files("rtindex.indexer").joinpath("behavior.lua").read_text("utf-8")


@dataclass(slots=True)
class ShardState:
    users: dict[str, UserState]
    offsets: dict[tuple[str, int], int]  # (topic, partition) -> last applied offset
    expired: list[str]  # users past the TTL, to forget


class BehaviorStore:
    def __init__(self, client: redis.Redis, settings: Settings, *, cache_items: int = 100_000):
        self.client = client
        self.settings = settings
        self.cfg = settings.behavior
        self.keys = BehaviorKeys(settings.redis.namespace, self.cfg.shards)
        self.doc_keys = Keys(settings.redis.namespace, settings.index.shards)
        self.fields = tuple(dict.fromkeys((*self.cfg.profile_fields, self.cfg.trending_field)))
        self._script = client.register_script(_LUA)
        self._cache: OrderedDict[str, tuple[bytes, dict[str, tuple[str, ...]], float]] = (
            OrderedDict()
        )
        self._cache_size = cache_items
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtindex-behavior-io")

    def ensure_layout(self) -> None:
        record_layout(
            self.client,
            self.keys.namespace,
            {
                "behavior_layout": str(BEHAVIOR_LAYOUT_VERSION),
                "behavior_shards": str(self.keys.shards),
            },
        )

    # -- read -------------------------------------------------------------------------
    def read(self, shard: int, users: Sequence[str], cutoff_ms: int | None) -> ShardState:
        """The users' planning state, the shard's applied offsets, and (with a cutoff) up
        to 16 users whose last event is older than it, none of them in ``users``."""
        keys = self.keys
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(keys.stats(shard))
        for u in users:
            pipe.hmget(keys.user(shard, u), ["n", "last", "seq"])
            pipe.lrange(keys.recent(shard, u), 0, -1)
        if cutoff_ms is not None:
            pipe.zrangebyscore(keys.users(shard), "-inf", f"({cutoff_ms}", start=0, num=16)
        replies = pipe.execute()
        offsets: dict[tuple[str, int], int] = {}
        for k, v in replies[0].items():
            if k.startswith(b"o:"):
                topic, _, partition = k[2:].decode().rpartition(":")
                offsets[(topic, int(partition))] = int(v)
        states = {
            u: UserState.of(
                int(replies[1 + 2 * j][0] or 0),
                int(replies[1 + 2 * j][1] or 0),
                (Recent.unpack(r) for r in replies[2 + 2 * j]),
                int(replies[1 + 2 * j][2] or 0),
            )
            for j, u in enumerate(users)
        }
        expired: list[str] = []
        if cutoff_ms is not None:
            present = set(users)
            expired = [u for raw in replies[-1] if (u := raw.decode()) not in present]
        return ShardState(states, offsets, expired)

    def partition_marks(
        self, partitions: Sequence[tuple[str, int]]
    ) -> list[tuple[str, int, int, int, str]]:
        """(topic, partition, shard, last applied offset, that record's hash) for every
        partition and shard that has one, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for topic, partition in partitions:
            for shard in range(self.keys.shards):
                pipe.hmget(self.keys.stats(shard), self.keys.offset_fields(topic, partition))
        replies = iter(pipe.execute())
        out = []
        for topic, partition in partitions:
            for shard in range(self.keys.shards):
                offset, fp = next(replies)
                if offset is not None:
                    out.append((topic, partition, shard, int(offset), (fp or b"").decode()))
        return out

    def forget_partition(self, shard: int, topic: str, partition: int) -> None:
        """Drop a partition's applied offset (its topic was recreated: offsets restart)."""
        self.client.hdel(self.keys.stats(shard), *self.keys.offset_fields(topic, partition))

    def item_attributes(self, items: Iterable[str]) -> ItemAttributes:
        """Each item's values of the profile and trending fields, from the document index
        (empty for an item that has no live document). Cached: an entry younger than
        ``ATTRIBUTES_FRESH_S`` is used as it is (a hot item costs nothing), an older one is
        revalidated by document version (one small round trip); so a changed category
        reaches profiles within seconds."""
        now = time.monotonic()
        out: dict[str, dict[str, tuple[str, ...]]] = {}
        check: list[str] = []
        for item in dict.fromkeys(items):
            hit = self._cache.get(item)
            if hit is not None and now - hit[2] < ATTRIBUTES_FRESH_S:
                out[item] = hit[1]
            else:
                check.append(item)
        if not check:
            return out
        pipe = self.client.pipeline(transaction=False)
        for item in check:
            pipe.hmget(self.doc_keys.doc(self.doc_keys.shard_of(item), item), ["v", "del"])
        missing: list[tuple[str, bytes]] = []
        for item, (version, deleted) in zip(check, pipe.execute(), strict=True):
            if version is None or deleted:
                out[item] = {}  # not cached: the document may be indexed any moment
                self._cache.pop(item, None)
                continue
            hit = self._cache.get(item)
            if hit is not None and hit[0] == version:
                self._cache[item] = (version, hit[1], now)
                self._cache.move_to_end(item)
                out[item] = hit[1]
            else:
                missing.append((item, version))
        if missing:
            pipe = self.client.pipeline(transaction=False)
            for item, _ in missing:
                pipe.hget(self.doc_keys.doc(self.doc_keys.shard_of(item), item), "src")
            for (item, version), src in zip(missing, pipe.execute(), strict=True):
                attrs = self._attributes(orjson.loads(src)) if src else {}
                out[item] = attrs
                self._cache[item] = (version, attrs, now)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return out

    def _attributes(self, doc: dict[str, object]) -> dict[str, tuple[str, ...]]:
        attrs: dict[str, tuple[str, ...]] = {}
        for name in self.fields:
            value = doc.get(name)
            values = value if isinstance(value, list) else [value]
            kept = tuple(dict.fromkeys(v for v in values if isinstance(v, str) and v))
            if kept:
                attrs[name] = kept
        return attrs

    # -- write ------------------------------------------------------------------------
    def apply(self, plan: ChunkPlan, extra_ops: Sequence[Op] = ()) -> list[str]:
        """Run one chunk; returns the user keys whose compare-and-set failed (then nothing
        was written)."""
        ops = [*extra_ops, *plan.ops]
        if not ops:
            return []
        argv: list[Op] = [len(plan.cas)]
        for key, n in plan.cas.items():
            argv += (key, n)
        argv += ops
        declared = plan.keys + _declared_keys((), extra_ops) if extra_ops else plan.keys
        result = self._script(keys=declared, args=[orjson.dumps(argv)])
        return [k.decode() for k in result]

    def apply_async(self, plan: ChunkPlan, extra_ops: Sequence[Op] = ()) -> Future[list[str]]:
        """:meth:`apply` in the store's I/O thread, so the next chunk can be planned
        meanwhile (redis-py releases the GIL while it waits for the script)."""
        return self._io.submit(self.apply, plan, extra_ops)

    def close(self) -> None:
        self._io.shutdown(wait=True)


def _declared_keys(cas: Iterable[str], ops: Sequence[Op]) -> list[str]:
    """Every key the operations touch (for Redis Cluster's routing and rules)."""
    keys = dict.fromkeys(cas)
    i, n = 0, len(ops)
    while i < n:
        op, key = ops[i], str(ops[i + 1])
        keys[key] = None
        if not isinstance(op, str):
            raise ValueError(f"operation expected at {i}, found {op!r}")
        if op in "zxeoar":
            width = {"z": 5, "x": 5, "a": 4, "o": 6, "e": 8, "r": 7}[op]
        elif op == "u":
            width = 5
            if op in "er":
                keys.update(dict.fromkeys(str(k) for k in ops[i + width - 4 : i + width]))
        elif op == "Z":
            width = 4 + 2 * int(ops[i + 3])
        elif op == "l":
            width = 4 + int(ops[i + 3])
        elif op == "h":
            width = 4
        else:
            raise ValueError(f"unknown behavior operation {op!r}")
        i += width
    return list(keys)
