"""A canonical dump of every key under a namespace, to compare index states exactly."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import redis


def dump_namespace(client: redis.Redis, namespace: str) -> dict[bytes, Any]:
    """Key -> canonical value (strings as bytes, hashes and sets sorted, zsets as pairs)."""
    out: dict[bytes, Any] = {}
    for key in client.scan_iter(match=f"{namespace}:*", count=1000):
        kind = client.type(key)
        if kind == b"string":
            out[key] = client.get(key)
        elif kind == b"hash":
            out[key] = sorted(client.hgetall(key).items())
        elif kind == b"set":
            out[key] = sorted(client.smembers(key))
        elif kind == b"zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == b"list":
            out[key] = client.lrange(key, 0, -1)
        elif kind != b"none":  # vanished between SCAN and TYPE
            raise ValueError(f"unexpected type {kind!r} for {key!r}")
    return dict(sorted(out.items()))


def digest(dump: dict[bytes, Any]) -> str:
    """A stable hash of a dump (bytes rendered as latin-1 so every byte survives)."""

    def plain(x: Any) -> Any:
        if isinstance(x, bytes):
            return x.decode("latin-1")
        if isinstance(x, list | tuple):
            return [plain(y) for y in x]
        return x

    payload = orjson.dumps([[plain(k), plain(v)] for k, v in dump.items()])
    return hashlib.sha256(payload).hexdigest()
