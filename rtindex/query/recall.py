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
        pop, _ = self._lookups([item_id, *co], [], None)
        scores = self._similarities({item_id: 1.0}, {item_id: co}, pop)
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
        round trips (more only when many candidates turn out deleted): the user;
        neighbours and trending lists; popularity and exclusions; the documents."""
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
        linked = [i for c in co.values() for i in c]
        candidates = list(dict.fromkeys([*linked, *pref, *trending[None]]))
        pop, excluded = self._lookups(list(dict.fromkeys([*seeds, *linked])), candidates, user_id)
        channels: dict[str, dict[str, float]] = {
            "i2i": to_linear(self._similarities(seeds, co, pop)) if seeds else {},
            "preference": pref,
            "trending": trending[None],
        }
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

    def _lookups(
        self, items: Sequence[str], candidates: Sequence[str], user_id: str | None
    ) -> tuple[dict[str, float], set[str]]:
        """One round trip: the items' popularity (log2, summed over shards), and which
        candidates the user has excluded."""
        uid = user_id if candidates and self.cfg.exclude_actions else None
        exclusions = uid is not None
        if not items and not exclusions:
            return {}, set()
        pipe = self.client.pipeline(transaction=False)
        if items:
            for s in range(self.keys.shards):
                pipe.zmscore(self.keys.popularity(s), list(items))
        if uid is not None:
            pipe.zmscore(self.keys.excluded(self.keys.shard_of(uid), uid), list(candidates))
        replies = pipe.execute()
        rows = replies[: self.keys.shards] if items else []
        pop = merge_shards(
            [(item, float(v)) for item, v in zip(items, row, strict=True) if v is not None]
            for row in rows
        )
        excluded = (
            {i for i, s in zip(candidates, replies[-1], strict=True) if s is not None}
            if exclusions
            else set()
        )
        return pop, excluded

    def _similarities(
        self, seeds: dict[str, float], co: dict[str, dict[str, float]], pop: dict[str, float]
    ) -> dict[str, float]:
        """log2 of sum over seeds of seed weight * similarity(seed, item)."""
        alpha = self.cfg.normalization
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
