"""Hit rate on real interactions: MovieLens-100K replayed through the real pipeline.

    python benchmarks/bench_movielens.py [--quick] [--limit N] [--direct]

The 1,682 movies are published as documents (title, the first genre as ``category``, all
genres as ``tags``) and indexed by `rtindex consume documents`. Then the 100,000 ratings
are replayed in timestamp order as behavior events (rating >= 4: ``like``, else ``view``;
``ts`` = the rating's time) through Kafka and `rtindex consume behaviors` (separate
processes, real Tansu and Valkey). Before each interaction (u, i), rtindex is asked
``recommend(u, 50)`` (rtindex.query.recall.Recaller, in process, reading Redis) and so
are two baselines fed the same interactions (benchmarks/movielens.py): real-time global
popularity, and an offline item-CF recomputed once per simulated day from all data seen
so far, with the user's history as of that day (a nightly batch) and, stronger, with
their live history. Every list excludes the movies the user has already rated (for
rtindex: ``behavior.exclude_actions`` = both actions used). HR@10, HR@50 and MRR.

Exactly "before each interaction": the stream is cut into steps in which no user
appears twice; a step's recommendations are asked, its events published, and the next
step waits until the behavior consumer has applied them (the ``applied`` counters in
Redis). So every recommend(u) sees all of u's earlier events, and nothing later.

``--direct`` applies the events with the behavior store in this process instead of
through Kafka: the same planner, Lua and store, and the same state (a function of the
event sequence), so the same figures — the two paths agreed at every checkpoint of a
42,118-rating run. The full replay is published from the direct path and a 30,000-rating
prefix through Kafka: the embedded Tansu broker (in-memory storage) slows down as a topic
fills with one-record batches (about 2 s per fetch after 44,000; 80 % of a core), which
would make the full Kafka replay take hours. run_all.py runs both.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import redis
from common import log, save, servers, settings_env, settings_for, table
from movielens import DailyItemCF, HitRate, Interaction, Popularity, load_interactions, load_movies

from rtindex.consumers.publish import make_producer
from rtindex.consumers.topics import ensure_topics
from rtindex.indexer.behavior import Located
from rtindex.indexer.behavior_batch import index_behaviors
from rtindex.indexer.behavior_store import BehaviorStore
from rtindex.indexer.events import BehaviorEvent
from rtindex.indexer.keys import BehaviorKeys
from rtindex.query.recall import Recaller
from rtindex.runtime.servers import ManagedProcess
from rtindex.settings import Settings

K = 50
# What the replay changes from the defaults: ratings are films watched, so every rated
# film is excluded (as in the baselines); the rest are the shipped defaults.
BEHAVIOR: dict[str, Any] = {"exclude_actions": ["view", "like"]}


def action(it: Interaction) -> str:
    return "like" if it.rating >= 4 else "view"


def event(n: int, it: Interaction) -> dict[str, Any]:
    return {
        "event_id": f"ml-{n}",
        "user_id": it.user,
        "item_id": it.item,
        "action": action(it),
        "ts": it.ts_ms,
    }


def steps(stream: list[Interaction]) -> Iterator[list[tuple[int, Interaction]]]:
    """Consecutive runs of the stream in which no user appears twice."""
    step: list[tuple[int, Interaction]] = []
    users: set[str] = set()
    for n, it in enumerate(stream):
        if it.user in users:
            yield step
            step, users = [], set()
        step.append((n, it))
        users.add(it.user)
    if step:
        yield step


def movie_docs(ts: int) -> list[dict[str, Any]]:
    out = []
    for m in load_movies().values():
        doc: dict[str, Any] = {"title": m.title or m.id, "body": f"{m.title} {m.year}".strip()}
        if m.genres:
            doc |= {"category": m.genres[0], "tags": list(m.genres)}
        out.append({"op": "upsert", "id": m.id, "version": 1, "ts": ts, "doc": doc})
    return out


def behavior_env(s: Settings) -> dict[str, str]:
    env = settings_env(s)
    env["RTINDEX_KAFKA__BEHAVIORS_TOPIC"] = s.kafka.behaviors_topic
    env["RTINDEX_KAFKA__BEHAVIORS_GROUP"] = s.kafka.behaviors_group
    for key, value in BEHAVIOR.items():
        env[f"RTINDEX_BEHAVIOR__{key.upper()}"] = json.dumps(value)
    return env


class Applied:
    """How many behavior events the store has taken (applied + duplicates), all shards."""

    def __init__(self, client: redis.Redis, s: Settings) -> None:
        self.client = client
        self.keys = BehaviorKeys(s.redis.namespace, s.behavior.shards)

    def __call__(self) -> int:
        pipe = self.client.pipeline(transaction=False)
        for shard in range(self.keys.shards):
            pipe.hmget(self.keys.stats(shard), ["applied", "duplicate"])
        return sum(int(a or 0) + int(d or 0) for a, d in pipe.execute())


def wait_for(predicate: Any, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.0005)


def replay(s: Settings, stream: list[Interaction], direct: bool) -> dict[str, Any]:
    client = redis.Redis.from_url(s.redis.url)
    recaller = Recaller(client, s)
    applied = Applied(client, s)
    store = BehaviorStore(client, s) if direct else None
    producer = None if direct else make_producer(s)
    models: dict[str, HitRate] = {n: HitRate() for n in ("rtindex", "popularity", "cf", "cf_live")}
    pop, cf = Popularity(), DailyItemCF()
    seen: dict[str, set[str]] = {}
    timing = {"recommend_s": 0.0, "apply_wait_s": 0.0}
    sent = 0
    t0 = time.perf_counter()
    n_steps = 0
    for step in steps(stream):
        n_steps += 1
        for _n, it in step:
            exclude = seen.setdefault(it.user, set())
            t = time.perf_counter()
            got = [x["id"] for x in recaller.recommend(it.user, K)["items"]]
            timing["recommend_s"] += time.perf_counter() - t
            models["rtindex"].add(got, it.item)
            models["popularity"].add(pop.recommend(it.user, K, exclude), it.item)
            models["cf"].add(cf.recommend(it.user, K, exclude, it.ts_ms, False), it.item)
            models["cf_live"].add(cf.recommend(it.user, K, exclude, it.ts_ms, True), it.item)
        t = time.perf_counter()
        if store is not None:
            located = [
                Located(BehaviorEvent.model_validate(event(n, it)), "ml", 0, n) for n, it in step
            ]
            index_behaviors(store, located)
        else:
            assert producer is not None
            for n, it in step:
                value = json.dumps(event(n, it)).encode()
                producer.send(s.kafka.behaviors_topic, key=it.user.encode(), value=value)
            producer.flush()
        sent += len(step)
        wait_for(lambda n=sent: applied() >= n, f"{sent} events applied")
        timing["apply_wait_s"] += time.perf_counter() - t
        for _n, it in step:
            pop.observe(it)
            cf.observe(it)
            seen[it.user].add(it.item)
        if n_steps % 2000 == 0:
            log(f"{sent:,} events, {n_steps:,} steps: {models['rtindex'].summary()}")
    if producer is not None:
        producer.close()
    out = {
        "events": sent,
        "steps": n_steps,
        "wall_s": round(time.perf_counter() - t0, 1),
        "recommend_ms_avg": round(timing["recommend_s"] / max(sent, 1) * 1e3, 2),
        "step_apply_ms_avg": round(timing["apply_wait_s"] / max(n_steps, 1) * 1e3, 2),
        "models": {name: m.summary() for name, m in models.items()},
        "memory": memory(client, s),
    }
    client.close()
    return out


def memory(client: redis.Redis, s: Settings) -> dict[str, Any]:
    """Bytes of the behavior keys by family (MEMORY USAGE), per user and per item."""
    families: dict[str, int] = {}
    counts: dict[str, int] = {}
    for key in client.scan_iter(match=f"{s.redis.namespace}:{{b*", count=1000):
        name = key.decode().split(":", 2)[2]
        family = name.split(":", 1)[0] if ":" in name else name
        families[family] = families.get(family, 0) + int(client.memory_usage(key, samples=0) or 0)
        counts[family] = counts.get(family, 0) + 1
    users = int(client.zcard(f"{s.redis.namespace}:{{b0}}:ua"))
    items = int(client.zcard(f"{s.redis.namespace}:{{b0}}:ip"))
    per_user = sum(families.get(f, 0) for f in ("u", "ur", "ux", "up"))
    per_item = sum(families.get(f, 0) for f in ("nb", "ic"))
    shared = sum(families.get(f, 0) for f in ("ip", "tr", "ua", "bs"))
    return {
        "users": users,
        "items": items,
        "bytes_by_family": families,
        "keys_by_family": counts,
        "bytes_per_user": round(per_user / max(users, 1)),
        "bytes_per_item": round(per_item / max(items, 1)),
        "shared_bytes": shared,
    }


def index_movies(s: Settings, client: redis.Redis, env: dict[str, str]) -> None:
    """Publish the movies as documents and let `rtindex consume documents` index them."""
    docs = movie_docs(ts=int(time.time() * 1000))
    producer = make_producer(s)
    for d in docs:
        producer.send(s.kafka.documents_topic, key=d["id"].encode(), value=json.dumps(d).encode())
    producer.flush()
    producer.close()
    proc = ManagedProcess([*PY, "consume", "documents", "--metrics-port", "0"], None, env=env)
    try:
        wait_for(
            lambda: int(client.hget(f"{s.redis.namespace}:{{s0}}:st", "N") or 0) >= len(docs),
            "movies indexed",
            timeout=180,
        )
    finally:
        proc.stop()


PY = [sys.executable, "-m", "rtindex"]


NAMES = {
    "rtindex": "rtindex `recommend` (real time)",
    "popularity": "global popularity (real time)",
    "cf": "item-CF, recomputed daily; history as of that day (nightly batch)",
    "cf_live": "item-CF, recomputed daily; the user's live history",
}


def render(r: dict[str, Any]) -> str:
    models = r["models"]
    pop50 = models["popularity"]["hr@50"]
    rows = [
        [NAMES.get(n, n), m["hr@10"], m["hr@50"], m["mrr"], f"{m['hr@50'] / pop50:.2f}x"]
        for n, m in models.items()
    ]
    mem = r["memory"]
    path = (
        "in process (`--direct`: planner, Lua script and store, no Kafka)"
        if r["path"] == "direct"
        else "through Kafka (3 partitions) and `rtindex consume behaviors`"
    )
    lines = [
        f"{r['events']:,} interactions replayed {path} in {r['steps']:,} steps, "
        f"{r['wall_s']:.0f} s; "
        f"recommend {r['recommend_ms_avg']} ms on average (in process). "
        f"Behavior settings changed from the defaults: `{json.dumps(r['behavior_settings'])}`.",
        "",
        table(["model", "HR@10", "HR@50", "MRR", "HR@50 vs popularity"], rows),
        "",
        f"Memory at the end: {mem['users']:,} users, {mem['items']:,} items; "
        f"**{mem['bytes_per_user']:,} bytes per user** (u, ur, ux, up keys), "
        f"**{mem['bytes_per_item']:,} bytes per item** (nb, ic keys), plus "
        f"{mem['shared_bytes']:,} bytes of shard-wide lists (ip, tr, ua, bs).",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="the first 3,000 interactions")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--direct", action="store_true", help="no Kafka: apply in process")
    args = ap.parse_args()
    limit = 3000 if args.quick else args.limit
    stream = load_interactions(limit)
    log(f"{len(stream):,} interactions, {'direct' if args.direct else 'through Kafka'}")
    with servers(kafka=not args.direct) as (kafka, redis_server):
        s = settings_for(kafka, redis_server, namespace="ml").with_overrides({"behavior": BEHAVIOR})
        client = redis.Redis.from_url(s.redis.url)
        if args.direct:
            from rtindex.indexer.analysis import Analyzer
            from rtindex.indexer.batch import index_documents
            from rtindex.indexer.events import UpsertEvent
            from rtindex.indexer.store import DocumentStore

            ds = DocumentStore(client, s)
            ds.ensure_layout()
            docs = [UpsertEvent.model_validate(d) for d in movie_docs(int(time.time() * 1000))]
            index_documents(ds, docs, Analyzer(s.analysis).tokens)
            BehaviorStore(client, s).ensure_layout()
            result = replay(s, stream, direct=True)
        else:
            ensure_topics(s, partitions=3)
            env = behavior_env(s)
            index_movies(s, client, env)
            proc = ManagedProcess(
                [*PY, "consume", "behaviors", "--metrics-port", "0"], None, env=env
            )
            try:
                result = replay(s, stream, direct=False)
            finally:
                proc.stop()
        client.close()
    result |= {
        "path": "direct" if args.direct else "kafka",
        "limit": limit,
        "behavior_settings": BEHAVIOR,
        "k": K,
    }
    models = result["models"]
    pop50 = models["popularity"]["hr@50"]
    rows = [
        [name, m["hr@10"], m["hr@50"], m["mrr"], m["hr@50"] / pop50 if pop50 else float("nan")]
        for name, m in models.items()
    ]
    print(table(["model", "HR@10", "HR@50", "MRR", "HR@50 / popularity"], rows))
    print(render(result) if "memory" in result else "")
    print(json.dumps({k: v for k, v in result.items() if k != "models"}, indent=1))
    save("movielens_direct" if args.direct else "movielens", result | {"quick": args.quick})


if __name__ == "__main__":
    main()
