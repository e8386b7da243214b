"""A canonical dump of every key under a namespace, to compare index states exactly."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import redis

from rtindex.indexer.keys import OpsKeys


def dump_namespace(client: redis.Redis, namespace: str) -> dict[bytes, Any]:
    """Key -> canonical value (strings as bytes, hashes and sets sorted, zsets as pairs).
    Operational keys (status reports, the DLQ tally) are not index state: left out."""
    out: dict[bytes, Any] = {}
    ops = OpsKeys(namespace).prefix.encode()
    for key in client.scan_iter(match=f"{namespace}:*", count=1000):
        if key.startswith(ops):
            continue
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


def logical_dump(client: redis.Redis, namespace: str, shards: int, n_text: int) -> dict[str, Any]:
    """The index's meaning, independent of docnums (which depend on how a stream happened
    to be cut into batches): postings, keywords, doc values and lengths keyed by document
    id; statistics without the docnum counter and chunk counters; and every key name
    except the docnum-numbered chunks. Two correct runs over one stream agree on this.
    """
    from rtindex.indexer.keys import CHUNK_DOCS, Keys

    keys = Keys(namespace, shards)
    raw = dump_namespace(client, namespace)
    out: dict[str, Any] = {"docs": {}, "postings": {}, "keywords": {}, "values": {}, "stats": {}}
    names: list[str] = []
    for s in range(shards):
        prefix = keys.shard_prefix(s).encode()
        id_of = {int(n): i.decode() for n, i in raw.get(keys.ids(s).encode(), [])}
        for key, value in raw.items():
            if not key.startswith(prefix):
                continue
            rest = key[len(prefix) :]
            if rest.startswith(b"d:"):
                fields = {k.decode(): v.decode() for k, v in value if k != b"n"}
                out["docs"][rest[2:].decode()] = fields
            elif rest.startswith(b"p:"):
                rs = 4 + 2 * n_text
                recs = [value[i : i + rs] for i in range(0, len(value), rs)]
                out["postings"][rest[2:].decode()] = sorted(
                    (id_of[int.from_bytes(r[:4], "big")], r[4:].hex()) for r in recs
                )
            elif rest.startswith(b"k:"):
                out["keywords"][rest[2:].decode()] = sorted(
                    id_of[int.from_bytes(value[i : i + 4], "big")] for i in range(0, len(value), 4)
                )
            elif rest.startswith((b"dl:", b"nv:")):
                column, _, chunk = rest.decode().rpartition(":")
                width = 2 * n_text if rest.startswith(b"dl:") else 8
                for n, doc_id in id_of.items():
                    if n // CHUNK_DOCS == int(chunk):
                        off = (n % CHUNK_DOCS) * width
                        out["values"].setdefault(doc_id, {})[column] = value[
                            off : off + width
                        ].hex()
                continue  # chunk key names carry docnums
            elif rest == b"st":
                out["stats"][s] = {
                    k.decode(): v.decode()
                    for k, v in value
                    if k not in (b"next", b"top") and not k.startswith(b"cl:")
                }
            names.append(key.decode("utf-8", errors="surrogateescape"))
    names.extend(k.decode() for k in raw if not k.startswith(f"{namespace}:{{".encode()))
    out["keys"] = sorted(n.replace(namespace, "<ns>", 1) for n in names)
    return out
