"""The Redis side of consumer status reports and the dead-letter tally (``OpsKeys``)."""

from __future__ import annotations

from collections import Counter

import orjson
import redis

from rtindex.indexer.keys import OpsKeys
from rtindex.ops.status import Report, live_reports


class StatusBoard:
    def __init__(self, client: redis.Redis, namespace: str, ttl_s: float) -> None:
        self.client = client
        self.keys = OpsKeys(namespace)
        self.ttl_ms = int(ttl_s * 1000)

    def publish(self, report: Report) -> None:
        """Write this member's report and prune reports of members that died."""
        key = self.keys.consumers
        raw = self.client.hgetall(key)
        stale = [
            m
            for m, v in raw.items()
            if report["at_ms"] - int(orjson.loads(v).get("at_ms", 0)) > self.ttl_ms
        ]
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(key, report["member"], orjson.dumps(report))
        if stale:
            pipe.hdel(key, *stale)
        pipe.execute()

    def withdraw(self, member: str) -> None:
        """A member that stops cleanly takes its report with it."""
        self.client.hdel(self.keys.consumers, member)

    def reports(self, now_ms: int) -> list[Report]:
        raw = self.client.hgetall(self.keys.consumers)
        return live_reports((orjson.loads(v) for v in raw.values()), now_ms, self.ttl_ms)

    def count_dead_letters(self, topic: str, reasons: Counter[str]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for reason, n in reasons.items():
            pipe.hincrby(self.keys.dlq, f"{topic}|{reason}", n)
        pipe.execute()

    def dead_letters(self) -> dict[tuple[str, str], int]:
        """(topic, reason) -> messages dead-lettered."""
        out = {}
        for field, n in self.client.hgetall(self.keys.dlq).items():
            name = field.decode() if isinstance(field, bytes) else str(field)
            topic, _, reason = name.rpartition("|")
            out[(topic, reason)] = int(n)
        return out
