"""Behavior recall from Redis: similar items, recommendations, trending, preferences.

Item-level structures are per user shard (see ``indexer/keys.py``), so every read fans
out over the behavior shards and merges with :func:`~rtindex.query.merge.merge_shards`.
Each call is a fixed number of pipelined round trips. Only items with a live document
are returned: a deleted (or never indexed) item is never recommended.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import orjson
import redis

from rtindex.indexer.behavior import Recent
from rtindex.indexer.keys import BehaviorKeys, Keys
from rtindex.query.merge import (
    Scored,
    combine,
    merge_shards,
    seed_weights,
    similarity,
    to_linear,
)
from rtindex.settings import ACTIONS, Settings

# Neighbours read per seed item, and trending entries read per list, per shard.
PER_SEED = 50
MAX_K = 1000


def _top(pipe: Any, key: str, n: int) -> None:
    """ZRANGE key 0 n-1 REV WITHSCORES (n = -1: all)."""
    pipe.execute_command("ZRANGE", key, 0, n - 1 if n > 0 else -1, "REV", "WITHSCORES")


def _pairs(rows: list[list[Any]]) -> list[tuple[str, float]]:
    """A WITHSCORES reply (its callback made it [member, score] pairs) -> tuples."""
    return [(m.decode(), s) for m, s in rows]


class Recaller:
    """Answers similar / recommend / trending. Thread-safe (the Redis pool is)."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.cfg = settings.behavior
        self.keys = BehaviorKeys(settings.redis.namespace, self.cfg.shards)
        self.doc_keys = Keys(settings.redis.namespace, settings.index.shards)
        self.weights: dict[str, float] = {a: self.cfg.actions.of(a) for a in ACTIONS}
        self.channel_weights = self.cfg.channels.model_dump()

    # -- public calls -----------------------------------------------------------------
    def similar(self, item_id: str, k: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        pipe = self.client.pipeline(transaction=False)
        for s in range(self.keys.shards):
            _top(pipe, self.keys.neighbours(s, item_id), -1)
        co = merge_shards(_pairs(rows) for rows in pipe.execute())
        scores = self._similarities({item_id: 1.0}, {item_id: co})
        items = self._resolve(
            [Scored(i, s, ("i2i",)) for i, s in _ranked(to_linear(scores))], k, set()
        )
        return {"item_id": item_id, "took_ms": _ms(t0), "items": items}

    def trending(self, k: int, category: str | None = None) -> dict[str, Any]:
        t0 = time.perf_counter()
        scores = to_linear(self._trending(category, _fanout(k)))
        items = self._resolve([Scored(i, s, ("trending",)) for i, s in _ranked(scores)], k, set())
        return {"took_ms": _ms(t0), "items": items}

    def recommend(self, user_id: str, k: int) -> dict[str, Any]:
        """i2i from the user's recent items (by recency and action), trending in the
        categories they prefer, and global trending (the cold start), merged; items the
        user acted on with an ``exclude_actions`` action are left out. Four pipelined
        round trips: the user; neighbours and trending lists; popularity and exclusions;
        the documents."""
        t0 = time.perf_counter()
        recent, profile = self._user(user_id)
        seeds = seed_weights(
            recent, self.weights, self.cfg.recent_used, self.cfg.recent_half_life_s
        )
        preferred = self._preferred(profile)
        lists: list[str | None] = [None, *preferred]  # None: global trending
        fanout, shards = _fanout(k), self.keys.shards
        pipe = self.client.pipeline(transaction=False)
        for seed in seeds:
            for s in range(shards):
                _top(pipe, self.keys.neighbours(s, seed), PER_SEED)
        for value in lists:
            for s in range(shards):
                _top(pipe, self.keys.trending(s, value), fanout)
        replies = iter(pipe.execute())
        co = {seed: merge_shards(_pairs(next(replies)) for _ in range(shards)) for seed in seeds}
        trending = {
            value: to_linear(merge_shards(_pairs(next(replies)) for _ in range(shards)))
            for value in lists
        }
        pref: dict[str, float] = {}
        for value, weight in preferred.items():
            for item, score in trending[value].items():
                pref[item] = pref.get(item, 0.0) + weight * score
        channels: dict[str, dict[str, float]] = {
            "i2i": to_linear(self._similarities(seeds, co)) if seeds else {},
            "preference": pref,
            "trending": trending[None],
        }
        candidates = list(dict.fromkeys(i for c in channels.values() for i in c))
        excluded = self._excluded(user_id, candidates)
        # Deleted documents are skipped when resolving: keep a generous margin for them.
        ranked = combine(channels, self.channel_weights, excluded, limit=3 * k + 50)
        items = self._resolve(ranked, k, set())
        return {"user_id": user_id, "took_ms": _ms(t0), "items": items}

    def preferences(self, user_id: str) -> dict[tuple[str, str], float]:
        """The user's profile as (field, value) -> weight in (0, 1], best = 1."""
        _, profile = self._user(user_id, recent=False)
        out: dict[tuple[str, str], float] = {}
        for member, w in to_linear(profile).items():
            name, _, value = member.partition("=")
            out[(name, value)] = w
        return out

    # -- reads ------------------------------------------------------------------------
    def _user(self, user_id: str, *, recent: bool = True) -> tuple[list[Recent], dict[str, float]]:
        shard = self.keys.shard_of(user_id)
        pipe = self.client.pipeline(transaction=False)
        if recent:
            pipe.lrange(self.keys.recent(shard, user_id), 0, -1)
        _top(pipe, self.keys.profile(shard, user_id), -1)
        replies = pipe.execute()
        entries = [Recent.unpack(r) for r in replies[0]] if recent else []
        return entries, dict(_pairs(replies[-1]))

    def _preferred(self, profile: dict[str, float]) -> dict[str, float]:
        """The user's top values of the trending field, weighted (best = 1)."""
        prefix = self.cfg.trending_field + "="
        values = {m[len(prefix) :]: v for m, v in profile.items() if m.startswith(prefix)}
        top = dict(_ranked(values)[: self.cfg.preferred_values])
        return to_linear(top)

    def _trending(self, value: str | None, n: int) -> dict[str, float]:
        pipe = self.client.pipeline(transaction=False)
        for s in range(self.keys.shards):
            _top(pipe, self.keys.trending(s, value), n)
        return merge_shards(_pairs(rows) for rows in pipe.execute())

    def _popularity(self, items: Sequence[str]) -> dict[str, float]:
        if not items:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for s in range(self.keys.shards):
            pipe.zmscore(self.keys.popularity(s), list(items))
        rows = pipe.execute()
        return merge_shards(
            [(item, float(v)) for item, v in zip(items, row, strict=True) if v is not None]
            for row in rows
        )

    def _similarities(
        self, seeds: dict[str, float], co: dict[str, dict[str, float]]
    ) -> dict[str, float]:
        """log2 of sum over seeds of seed weight * similarity(seed, item)."""
        alpha = self.cfg.normalization
        items = list(dict.fromkeys([*seeds, *(i for c in co.values() for i in c)]))
        pop = self._popularity(items)
        parts: dict[str, list[float]] = {}
        for seed, weight in seeds.items():
            p_seed = pop.get(seed)
            if p_seed is None:
                continue
            lw = math.log2(weight)
            for item, c in co.get(seed, {}).items():
                p_item = pop.get(item)
                if p_item is not None:
                    parts.setdefault(item, []).append(similarity(c, p_seed, p_item, alpha) + lw)
        return merge_shards([(i, v) for v in vs] for i, vs in parts.items())

    def _excluded(self, user_id: str, items: Sequence[str]) -> set[str]:
        if not items or not self.cfg.exclude_actions:
            return set()
        shard = self.keys.shard_of(user_id)
        scores = self.client.zmscore(self.keys.excluded(shard, user_id), list(items))
        return {i for i, s in zip(items, scores, strict=True) if s is not None}

    def _resolve(self, ranked: list[Scored], k: int, excluded: set[str]) -> list[dict[str, Any]]:
        """The first ``k`` candidates that are not excluded and have a live document."""
        out: list[dict[str, Any]] = []
        candidates = [r for r in ranked if r.id not in excluded]
        pos = 0
        while len(out) < k and pos < len(candidates):
            batch = candidates[pos : pos + (k - len(out)) + 8]  # most are live: few rounds
            pos += len(batch)
            pipe = self.client.pipeline(transaction=False)
            for r in batch:
                pipe.hmget(self.doc_keys.doc(self.doc_keys.shard_of(r.id), r.id), ["del", "src"])
            for r, (deleted, src) in zip(batch, pipe.execute(), strict=True):
                if deleted or src is None or len(out) >= k:
                    continue
                out.append(
                    {
                        "id": r.id,
                        "score": r.score,
                        "sources": list(r.sources),
                        "doc": orjson.loads(src),
                    }
                )
        return out

    # -- statistics -------------------------------------------------------------------
    def behavior_stats(self) -> dict[str, int]:
        pipe = self.client.pipeline(transaction=False)
        for s in range(self.keys.shards):
            pipe.zcard(self.keys.users(s))
            pipe.zcard(self.keys.popularity(s))
            pipe.hmget(self.keys.stats(s), ["applied", "duplicate"])
        replies = pipe.execute()
        out = {"users": 0, "items": 0, "behavior_events": 0, "behavior_duplicates": 0}
        for s in range(self.keys.shards):
            users, items, (applied, dups) = replies[3 * s : 3 * s + 3]
            out["users"] += int(users)
            out["items"] += int(items)  # an item active in two shards counts twice
            out["behavior_events"] += int(applied or 0)
            out["behavior_duplicates"] += int(dups or 0)
        return out


def _ranked(scores: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def _fanout(k: int) -> int:
    return min(max(3 * k, 50), 3 * MAX_K)


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3
