"""Behavior pipeline: throughput, freshness (click -> /similar) and memory, on Tansu + Valkey.

    python benchmarks/bench_behaviors.py [--quick] [--n N] [--seconds S]

Workload (SYNTHETIC, seeded): 20,000 items in 20 categories with two tags each and a
heavy-tailed popularity (``paretovariate(1.5)``: the top 1% of items draw ~20-25% of the
events); 20,000 users of heavy-tailed activity (``paretovariate(2.5)``; 200,000 events
reach ~12,800 of them); sessions of 3 to 48 events (mean ~9) on mostly one category, a
few seconds to minutes apart (log-normal gaps, median 20 s), a third of the steps going
back to an item of the same session; actions view 60% / click 25% / like 5% / cart 6% /
purchase 4%, a query on 10% of the clicks; about 1% of the events re-sent (same event_id
and bytes) up to 30 s later. Every item has a document (category, tags, a real People's
Daily sentence as body), indexed first (once) with DocumentStore + index_documents, so
profiles and per-category trending are exercised.

1. Throughput. N events (full 200,000, quick 20,000) are published to a 3-partition
   behaviors topic, keyed by user id, in event-time order. Then one
   rtindex.consumers.behaviors.BehaviorConsumer, in this process as bench_indexing.py
   runs its DocumentConsumer (the consumer's own run loop, one writer thread), indexes
   them from a fresh group. The clock starts when the first poll returns records (group
   join excluded) and stops at the commit of the batch holding the N-th event. Cheap
   stage timers, process CPU of the consumer (this process) and of the Valkey server
   (/proc/<pid>/stat), and Redis INFO commandstats.
2. Memory after run 1: MEMORY USAGE (SAMPLES 0) of every behavior key, by key family,
   per user / per item; and Redis used_memory before and after the run.
   Then every behavior key is deleted (the documents stay) and a second run over the
   first 20,000 events (another group) runs under cProfile in a plain poll, process,
   commit loop in one thread: shares, not the throughput. The keys are deleted again.
3. Freshness, on another topic. The consumer runs as its own process (`python -m rtindex
   consume behaviors`). A paced producer in another process (multiprocessing, so that it
   does not compete for this process's GIL with the poller) sends the same kind of
   SYNTHETIC events at 2,000/s with ts = send time. Every 100 ms a probe: a fresh user
   clicks a fresh item A, then a fresh item B (both with documents; both fresh, so B
   cannot be trimmed from a full neighbour list), ts = send time. A poller here, every
   ~2 ms, looks up B's score in A's neighbour key (ZSCORE, one pipeline for all pending
   probes) and, once it is there, calls rtindex.query.recall.Recaller.similar(A, k=50) in
   process until B is among the items. Latency = (when seen) - B's ts, in ms; the
   producer's acknowledgement of B is timed too (the share of the latency spent before
   the consumer could see it). A warm-up probe must be visible before the load and the
   probes start (group join excluded).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import math
import multiprocessing as mp
import os
import pstats
import random
import re
import sys
import threading
import time
from bisect import bisect
from collections import Counter
from itertools import accumulate
from pathlib import Path
from typing import Any

import orjson
import redis
from common import (
    SEED,
    _busy_cpu_s,
    _sentences,
    log,
    now_ms,
    pct,
    profile_buckets,
    save,
    servers,
    settings_env,
    settings_for,
    summary_ms,
    table,
)

from rtindex.consumers.behaviors import BehaviorConsumer
from rtindex.consumers.publish import make_producer
from rtindex.consumers.topics import ensure_topics
from rtindex.indexer import behavior_batch
from rtindex.indexer.analysis import Analyzer
from rtindex.indexer.batch import index_documents
from rtindex.indexer.events import UpsertEvent
from rtindex.indexer.keys import BehaviorKeys
from rtindex.indexer.store import DocumentStore
from rtindex.query.recall import Recaller
from rtindex.runtime.servers import ManagedProcess
from rtindex.settings import Settings

TOPIC = "bench.behaviors"
N_USERS = 20_000
N_ITEMS = 20_000
PROFILE_N = 20_000  # the quick size: the profiled run covers this many events
BASE_TS = 1_767_225_600_000  # 2026-01-01 00:00 UTC: event times of the throughput stream
SPAN_MS_PER_EVENT = 216  # 200,000 events over 12 h of event time
DUP_RATE = 0.01
ACTIONS = ("view", "click", "like", "cart", "purchase")
ACTION_CUM = tuple(accumulate((0.60, 0.25, 0.05, 0.06, 0.04)))
CATEGORIES = (
    *("美食", "酒店", "景点", "购物", "电影", "丽人", "健身", "亲子", "婚庆", "家装"),
    *("教育", "医疗", "汽车", "宠物", "运动", "数码", "图书", "服装", "家电", "生鲜"),
)
TAGS = (
    *("免费停车", "24小时", "网红", "老字号", "亲子友好", "可预订", "外卖", "包间", "景观位"),
    *("新店", "连锁", "低价", "高端", "夜宵", "早餐", "下午茶", "宠物友好", "无障碍"),
    *("团购", "会员", "限时", "包邮", "正品", "进口", "国货", "手工", "环保", "智能"),
    *("户外", "室内", "周末", "假日", "学生", "情侣", "家庭", "商务", "地铁口", "江景"),
)
QUERIES = ("杭帮菜", "火锅", "亲子乐园", "周末去哪", "咖啡", "健身房", "电影票", "烤肉")
BG_RATE = 2_000  # background behavior events/s during the freshness run
LIGHT_RATE = 500  # a second, lighter freshness run (the documents benchmark's 500/s)
PROBE_EVERY_S = 0.1
POLL_S = 0.002


# -- the SYNTHETIC workload -------------------------------------------------------------
class Catalogue:
    """Items (category, two tags, heavy-tailed popularity) and users (heavy-tailed
    activity); draws sessions of events."""

    def __init__(self, n_items: int, n_users: int, seed: int) -> None:
        rng = random.Random(seed)
        self.items = [f"i-{j:05d}" for j in range(n_items)]
        self.category = [rng.randrange(len(CATEGORIES)) for _ in range(n_items)]
        self.tags = [rng.sample(range(len(TAGS)), 2) for _ in range(n_items)]
        weight = [rng.paretovariate(1.5) for _ in range(n_items)]
        self.by_cat: list[list[int]] = [[] for _ in CATEGORIES]
        for j, c in enumerate(self.category):
            self.by_cat[c].append(j)
        self.cat_cum = [list(accumulate(weight[j] for j in js)) for js in self.by_cat]
        self.all_cum = list(accumulate(weight))
        self.cats_cum = list(accumulate(cum[-1] for cum in self.cat_cum))
        self.users = [f"u-{k:05d}" for k in range(n_users)]
        self.user_cum = list(accumulate(rng.paretovariate(2.5) for _ in range(n_users)))
        sents = _sentences()
        self.body = [rng.choice(sents) for _ in range(n_items)]
        self.price = [round(rng.lognormvariate(4.0, 0.8), 1) for _ in range(n_items)]

    def doc(self, j: int, item_id: str | None = None) -> dict[str, Any]:
        cat = CATEGORIES[self.category[j]]
        return {
            "op": "upsert",
            "id": item_id or self.items[j],
            "version": 1,
            "ts": BASE_TS,
            "doc": {
                "title": f"{cat}·{TAGS[self.tags[j][0]]}·{j}",
                "body": self.body[j],
                "category": cat,
                "tags": [TAGS[t] for t in self.tags[j]],
                "price": self.price[j],
            },
        }

    def _pick(self, rng: random.Random, cum: list[float]) -> int:
        return bisect(cum, rng.random() * cum[-1])

    def session(self, rng: random.Random) -> list[tuple[float, dict[str, Any]]]:
        """One user's session: (offset ms, event without ts) pairs."""
        user = self.users[self._pick(rng, self.user_cum)]
        home = self._pick(rng, self.cats_cum)
        length = min(48, 3 + int(rng.expovariate(1 / 6)))
        t, out, visited = 0.0, [], []
        for _ in range(length):
            if visited and rng.random() < 0.3:
                j = rng.choice(visited)  # back to an item of this session (the funnel)
            elif rng.random() < 0.8:
                j = self.by_cat[home][self._pick(rng, self.cat_cum[home])]
            else:
                j = self._pick(rng, self.all_cum)
            visited.append(j)
            action = ACTIONS[bisect(ACTION_CUM, rng.random() * ACTION_CUM[-1])]
            e: dict[str, Any] = {
                "event_id": f"{rng.getrandbits(64):016x}",
                "user_id": user,
                "item_id": self.items[j],
                "action": action,
            }
            if action == "click" and rng.random() < 0.1:
                e["query"] = rng.choice(QUERIES)
            out.append((t, e))
            t += 1000 * min(600.0, max(2.0, rng.lognormvariate(math.log(20), 1.0)))
        return out


def stream(cat: Catalogue, n: int, seed: int) -> tuple[list[dict[str, Any]], list[int]]:
    """``n`` events in event-time order (ts from BASE_TS; re-sent duplicates are the same
    dict again) and the positions of the duplicates."""
    rng = random.Random(seed)
    span = n * SPAN_MS_PER_EVENT
    rows: list[tuple[float, int, dict[str, Any]]] = []
    while len(rows) < n * (1 + DUP_RATE) + 50:
        start = rng.uniform(0, span)
        for off, e in cat.session(rng):
            e["ts"] = BASE_TS + int(start + off)
            rows.append((start + off, len(rows), e))
            if rng.random() < DUP_RATE:
                rows.append((start + off + rng.uniform(500, 30_000), len(rows), e))
    rows.sort(key=lambda r: (r[0], r[1]))
    events = [e for _, _, e in rows[:n]]
    first: set[int] = set()
    dups = []
    for i, e in enumerate(events):
        if id(e) in first:
            dups.append(i)
        first.add(id(e))
    return events, dups


def workload_stats(events: list[dict[str, Any]], dups: list[int]) -> dict[str, Any]:
    actions = Counter(e["action"] for e in events)
    per_user = Counter(e["user_id"] for e in events)
    per_item = Counter(e["item_id"] for e in events)
    top1 = max(1, len(per_item) // 100)
    return {
        "events": len(events),
        "resent_duplicates": len(dups),
        "distinct_users": len(per_user),
        "distinct_items": len(per_item),
        "actions_pct": {a: round(100 * actions[a] / len(events), 2) for a in ACTIONS},
        "events_per_user_p50_p99_max": [
            pct(list(per_user.values()), 50),
            pct(list(per_user.values()), 99),
            max(per_user.values()),
        ],
        "top_1pct_items_share": sum(c for _, c in per_item.most_common(top1)) / len(events),
        "event_time_span_h": (events[-1]["ts"] - events[0]["ts"]) / 3.6e6,
    }


# -- helpers --------------------------------------------------------------------------------
def proc_cpu_s(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def index_items(rc: redis.Redis, s: Settings, docs: list[dict[str, Any]]) -> float:
    """Index the item documents straight into Redis (no Kafka); returns the seconds."""
    t0 = time.perf_counter()
    an = Analyzer(s.analysis)
    store = DocumentStore(rc, s)
    store.ensure_layout()
    for i in range(0, len(docs), 1000):
        events = [UpsertEvent.model_validate(d) for d in docs[i : i + 1000]]
        index_documents(store, events, an.tokens)
    return time.perf_counter() - t0


def publish(s: Settings, values: list[bytes], keys: list[bytes]) -> float:
    producer = make_producer(s, linger_ms=20, batch_size=256 * 1024)
    t0 = time.perf_counter()
    for value, key in zip(values, keys, strict=True):
        producer.send(s.kafka.behaviors_topic, value=value, key=key)
    producer.flush()
    producer.close()
    return time.perf_counter() - t0


def behavior_counters(rc: redis.Redis, keys: BehaviorKeys) -> dict[str, int]:
    pipe = rc.pipeline(transaction=False)
    for shard in range(keys.shards):
        pipe.hmget(keys.stats(shard), ["applied", "duplicate"])
    out = {"applied": 0, "duplicate": 0}
    for applied, dup in pipe.execute():
        out["applied"] += int(applied or 0)
        out["duplicate"] += int(dup or 0)
    return out


class Timers:
    """Wall time spent inside wrapped callables, by name."""

    def __init__(self) -> None:
        self.s: Counter[str] = Counter()

    def wrap(self, name: str, fn: Any) -> Any:
        def timed(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.s[name] += time.perf_counter() - t0

        return timed


# -- 1. throughput ---------------------------------------------------------------------------
def consume(s: Settings, group: str, n: int, pids: dict[str, int], profile: bool) -> dict[str, Any]:
    """Apply the topic's first ``n`` events with one BehaviorConsumer; time it.

    Unprofiled: the consumer's own run loop (a writer thread applies batch N while the
    main thread polls and decodes N+1). Profiled: a plain poll -> process -> commit loop
    in this thread, since cProfile sees one thread only.
    """
    c = BehaviorConsumer(s, group=group)
    stop, timers = threading.Event(), Timers()
    state: dict[str, Any] = {"first": None, "last_commit": None}
    prof = cProfile.Profile() if profile else None
    poll = c.consumer.poll

    def processed() -> int:
        return sum(c.totals.events[o] for o in c.outcomes)

    def timed_poll(*a: Any, **kw: Any) -> Any:
        if processed() >= n:  # the totals follow each batch's commit
            state["end"] = state["last_commit"]
            state["cpu_end"] = time.process_time()
            state["servers_end"] = {k: proc_cpu_s(pid) for k, pid in pids.items()}
            stop.set()
            return {}
        got = timers.wrap("kafka poll", poll)(*a, **kw)
        if got and state["first"] is None:
            state["first"] = time.perf_counter()
            state["cpu_first"] = time.process_time()
            state["servers_first"] = {k: proc_cpu_s(pid) for k, pid in pids.items()}
            timers.s.clear()  # the stage split covers the measured span only
            if prof:
                prof.enable()  # the group join is not in the profile either
        return got

    c.consumer.poll = timed_poll
    c.prepare = timers.wrap("prepare: decode (orjson + pydantic) + fingerprint", c.prepare)
    c.store.item_attributes = timers.wrap(
        "store.item_attributes (HMGET pipeline)", c.store.item_attributes
    )
    c.store.read = timers.wrap("store.read (users + recent lists pipeline)", c.store.read)
    c.store.apply = timers.wrap("store.apply (args + Lua script)", c.store.apply)
    commit = timers.wrap("kafka commit", c.commit)

    def timed_commit(records: list[Any], stop_: threading.Event) -> None:
        commit(records, stop_)
        state["last_commit"] = time.perf_counter()

    c.commit = timed_commit
    original_plan = behavior_batch.plan_chunk
    behavior_batch.plan_chunk = timers.wrap("plan_chunk", original_plan)
    rc = redis.Redis.from_url(s.redis.url)
    rc.config_resetstat()
    try:
        if prof is None:
            c.run(stop)
        else:
            c.ensure_layout()
            while not stop.is_set():
                polled = c.consumer.poll(timeout_ms=100)
                records = [r for tp in sorted(polled) for r in polled[tp]]
                if records:
                    counts = c.process(records, stop)
                    c.commit(records, stop)
                    c.totals.batches += 1
                    for o in c.outcomes:
                        c.totals.events[o] += counts.get(o, 0)
    finally:
        if prof:
            prof.disable()
        behavior_batch.plan_chunk = original_plan
        c.close()
    elapsed = state["end"] - state["first"]
    cmd = rc.info("commandstats")
    ev = cmd.get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    # Commands a script runs are counted twice: in EVALSHA's time and on their own line.
    inner_s = sum(v["usec"] for k, v in cmd.items() if k in _SCRIPT_COMMANDS) / 1e6
    outside_s = (
        sum(v["usec"] for k, v in cmd.items() if k not in _SCRIPT_COMMANDS) - ev["usec"]
    ) / 1e6
    counters = behavior_counters(rc, BehaviorKeys(s.redis.namespace, s.behavior.shards))
    rc.close()
    done = processed()
    out: dict[str, Any] = {
        "events": done,
        "outcomes": {o: c.totals.events[o] for o in c.outcomes},
        "bs_counters": counters,
        "batches": c.totals.batches,
        "seconds": elapsed,
        "events_per_s": done / elapsed,
        "stages_s": dict(timers.s),
        "consumer_cpu_s": state["cpu_end"] - state["cpu_first"],
        "valkey_cpu_s": state["servers_end"]["valkey"] - state["servers_first"]["valkey"],
        "tansu_cpu_s": state["servers_end"]["tansu"] - state["servers_first"]["tansu"],
        "evalsha_calls": ev["calls"],
        "evalsha_s": ev["usec"] / 1e6,
        "evalsha_usec_per_call": ev["usec"] / max(1, ev["calls"]),
        "evalsha_inner_commands_s": inner_s,
        "redis_other_commands_s": outside_s,
        "script_calls_per_event": {
            k.removeprefix("cmdstat_"): cmd[k]["calls"] / done
            for k in sorted(_SCRIPT_COMMANDS, key=lambda k: -cmd.get(k, {"calls": 0})["calls"])
            if k in cmd and k != "cmdstat_hget"
        },
        "commandstats": {
            k.removeprefix("cmdstat_"): {"calls": v["calls"], "usec": v["usec"]}
            for k, v in sorted(cmd.items(), key=lambda kv: -kv[1]["usec"])
        },
    }
    if prof:
        out["profile"] = profile_summary(prof)
    return out


# What behavior.lua calls (HGET too, though item_attributes also sends a few outside).
_SCRIPT_COMMANDS = {
    f"cmdstat_{c}"
    for c in (
        *("zadd", "zscore", "zmscore", "zcard", "zpopmin", "hincrby", "hget", "hset"),
        *("lpush", "ltrim", "del", "zrem"),
    )
}


# Functions whose cumulative time answers "where does the time go" (matched by name).
_BUCKETS = [
    ("kafka-python poll (fetch + record parsing)", "group.py", "poll"),
    ("prepare: decode + fingerprint", "behaviors.py", "prepare"),
    ("  of which pydantic model_validate", "main.py", "model_validate"),
    ("  of which fingerprint (blake2b)", "behaviors.py", "fingerprint"),
    ("index_behaviors (reads, planning, writes)", "behavior_batch.py", "index_behaviors"),
    ("  store.item_attributes (HMGET pipeline)", "behavior_store.py", "item_attributes"),
    ("  store.read (stats, users, recent lists)", "behavior_store.py", "read"),
    ("    of which Recent.unpack", "behavior.py", "unpack"),
    ("  plan_chunk", "behavior.py", "plan_chunk"),
    ("    of which window()", "behavior.py", "window"),
    ("    of which pair_weight()", "behavior.py", "pair_weight"),
    ("    of which log_weight()", "decay.py", "log_weight"),
    ("    of which UserState.push", "behavior.py", "push"),
    ("  store.apply (args + JSON + Lua round trip)", "behavior_store.py", "apply"),
    ("    of which _declared_keys", "behavior_store.py", "_declared_keys"),
    ("    of which orjson.dumps", "~", "<built-in method orjson.dumps>"),
    (
        "waiting on Redis (socket recv_into, all calls)",
        "~",
        "<method 'recv_into' of '_socket.socket' objects>",
    ),
    ("freshness() (batch log figures)", "pipeline.py", "freshness"),
    ("kafka commit", "pipeline.py", "commit"),
]


def profile_summary(prof: cProfile.Profile) -> dict[str, Any]:
    total, buckets, text = profile_buckets(prof, _BUCKETS)
    raw = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    top = sorted(raw.items(), key=lambda kv: -kv[1][2])[:15]
    rows = []
    for (f, line, name), (_cc, nc, tt, ct, _callers) in top:
        where = name if f == "~" else f"{'/'.join(Path(f).parts[-2:])}:{line}({name})"
        rows.append([where, nc, tt, 100 * tt / total, ct])
    return {"total_s": total, "buckets": buckets, "top_tottime": rows, "top_tottime_text": text}


# -- 2. memory -------------------------------------------------------------------------------
PER_USER = ("u", "ur", "ux", "up")
PER_ITEM = ("nb", "ic")


def memory_by_family(rc: redis.Redis, keys: BehaviorKeys) -> dict[str, Any]:
    """MEMORY USAGE (SAMPLES 0: exact) of every behavior key, summed by key family."""
    names: list[bytes] = []
    for shard in range(keys.shards):
        names += rc.scan_iter(match=keys.prefix(shard).replace("{", "\\{") + "*", count=2000)
    fam_bytes: Counter[str] = Counter()
    fam_keys: Counter[str] = Counter()
    for i in range(0, len(names), 2000):
        chunk = names[i : i + 2000]
        pipe = rc.pipeline(transaction=False)
        for k in chunk:
            pipe.memory_usage(k, samples=0)
        for k, size in zip(chunk, pipe.execute(), strict=True):
            rest = k.decode().split("}:", 1)[1]
            head = rest.split(":", 1)[0]
            fam = head if head in (*PER_USER, *PER_ITEM) or rest == head else "tr:<category>"
            fam_bytes[fam] += int(size or 0)
            fam_keys[fam] += 1
    pipe = rc.pipeline(transaction=False)
    for shard in range(keys.shards):
        pipe.zcard(keys.users(shard))
    users = sum(pipe.execute())
    items = fam_keys["ic"]  # every item with an event has its counters hash
    rows = []
    for fam in sorted(fam_bytes, key=lambda f: -fam_bytes[f]):
        per = "user" if fam in PER_USER else "item" if fam in PER_ITEM else "shard"
        denom = users if per == "user" else items if per == "item" else 1
        rows.append(
            {
                "family": fam,
                "keys": fam_keys[fam],
                "bytes": fam_bytes[fam],
                "bytes_per_key": fam_bytes[fam] / fam_keys[fam],
                "per": per,
                "bytes_per": fam_bytes[fam] / max(1, denom),
            }
        )
    per_user = sum(fam_bytes[f] for f in PER_USER) / max(1, users)
    per_item = sum(fam_bytes[f] for f in PER_ITEM) / max(1, items)
    return {
        "users": users,
        "items": items,
        "keys": len(names),
        "total_bytes": sum(fam_bytes.values()),
        "bytes_per_user": per_user,
        "bytes_per_item": per_item,
        "shard_level_bytes": sum(r["bytes"] for r in rows if r["per"] == "shard"),
        "families": rows,
    }


# -- 3. freshness ----------------------------------------------------------------------------
def background_load(
    s: Settings, n: int, seed: int, start: Any, stop: Any, ready: Any, sent: Any, rate: int
) -> None:
    """The paced background producer (its own process: it must not take the poller's GIL).
    Sends SYNTHETIC events at ``rate``/s with ts = send time once ``start`` is set."""
    cat = Catalogue(N_ITEMS, N_USERS, SEED)
    events, _ = stream(cat, n, seed)
    producer = make_producer(s)
    topic = s.kafka.behaviors_topic
    first: dict[int, bytes] = {}
    ready.set()
    start.wait()
    t0 = time.perf_counter()
    for i, e in enumerate(events):
        if stop.is_set():
            break
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        raw = first.get(id(e))
        if raw is None:  # a re-sent duplicate goes out with its first bytes
            raw = first[id(e)] = orjson.dumps({**e, "ts": now_ms()})
        producer.send(topic, raw, key=e["user_id"].encode())
        sent.value = i + 1
    producer.flush()
    producer.close()


def freshness(
    kafka: Any, red: Any, s: Settings, cat: Catalogue, seconds: float, rate: int = BG_RATE
) -> dict[str, Any]:
    """Probes A -> B over the background load; the consumer in its own process."""
    ensure_topics(s, partitions=3)
    rc = redis.Redis.from_url(s.redis.url)
    n_probes = int(seconds / PROBE_EVERY_S)
    probe_docs = [
        cat.doc(random.Random(SEED + k).randrange(len(cat.items)), f"p{side}-{k:05d}")
        for k in range(n_probes + 1)
        for side in "ab"
    ]
    index_items(rc, s, probe_docs)
    ctx = mp.get_context("spawn")
    start, stop, ready, sent = ctx.Event(), ctx.Event(), ctx.Event(), ctx.Value("q", 0)
    n_bg = int(rate * (seconds + 10))
    loader = ctx.Process(
        target=background_load,
        args=(s, n_bg, SEED + 2, start, stop, ready, sent, rate),
        daemon=True,
    )
    loader.start()
    env = {
        **settings_env(s),
        "RTINDEX_KAFKA__BEHAVIORS_TOPIC": s.kafka.behaviors_topic,
        "RTINDEX_KAFKA__BEHAVIORS_GROUP": s.kafka.behaviors_group,
        "RTINDEX_LOG_LEVEL": "INFO",  # one line per batch: its size and time
    }
    log_path = Path("/tmp/rtindex-bench-behavior-consumer.log")
    log_path.unlink(missing_ok=True)
    consumer = ManagedProcess(
        [sys.executable, "-m", "rtindex", "consume", "behaviors", "--metrics-port", "0"],
        log_path,
        env=env,
    )
    keys = BehaviorKeys(s.redis.namespace, s.behavior.shards)
    recaller = Recaller(redis.Redis.from_url(s.redis.url), s)
    producer = make_producer(s)
    topic = s.kafka.behaviors_topic

    def send_probe(k: int) -> dict[str, Any]:
        user = f"probe-{k:05d}"
        p: dict[str, Any] = {"a": f"pa-{k:05d}", "b": f"pb-{k:05d}", "acked": 0.0}
        p |= {"zscore": 0.0, "similar": 0.0}
        for item in (p["a"], p["b"]):
            p["ts"] = now_ms()
            e = {"event_id": f"{item}-c", "user_id": user, "item_id": item}
            e |= {"action": "click", "ts": p["ts"]}
            future = producer.send(topic, orjson.dumps(e), key=user.encode())
        future.add_callback(lambda _md: p.__setitem__("acked", time.time() * 1000))
        return p

    def visible(pending: list[dict[str, Any]]) -> list[bool]:
        pipe = rc.pipeline(transaction=False)
        for p in pending:
            for shard in range(keys.shards):
                pipe.zscore(keys.neighbours(shard, p["a"]), p["b"])
        got, sh = pipe.execute(), keys.shards
        return [any(v is not None for v in got[j * sh : (j + 1) * sh]) for j in range(len(pending))]

    try:
        warm = send_probe(n_probes)  # the warm-up probe: group join, first fetches
        producer.flush()
        deadline = time.monotonic() + 90
        while not visible([warm])[0] or not ready.is_set():
            if time.monotonic() > deadline or consumer.poll() is not None:
                raise RuntimeError("the behavior consumer did not apply the warm-up probe")
            time.sleep(0.05)
        log("freshness: warm-up probe visible; starting the load and the probes")
        pids = {
            "consumer process": consumer.pid,
            "Valkey": red.pid,
            "Tansu": kafka.pid,
            "load producer process": loader.pid,
            "this process (poller, probes)": os.getpid(),
        }
        c0, cpu0 = behavior_counters(rc, keys), {k: proc_cpu_s(v) for k, v in pids.items()}
        busy0 = _busy_cpu_s()
        t_start = time.perf_counter()
        log_from = log_path.stat().st_size
        start.set()
        probes: list[dict[str, Any]] = []
        pending: list[dict[str, Any]] = []
        sim_ms: list[float] = []
        loops = sims = 0
        next_probe = t_start + 0.5  # the load runs half a second before the first probe
        end_probes = next_probe + seconds
        while True:
            loops += 1
            now = time.perf_counter()
            if now >= next_probe and len(probes) < n_probes:
                probes.append(send_probe(len(probes)))
                pending.append(probes[-1])
                next_probe += PROBE_EVERY_S
            if pending:
                seen = visible(pending)
                t_seen = time.time() * 1000
                for p, ok in zip(list(pending), seen, strict=True):
                    if not ok:
                        continue
                    p["zscore"] = p["zscore"] or t_seen
                    sims += 1
                    t_q = time.perf_counter()
                    items = recaller.similar(p["a"], k=50)["items"]
                    sim_ms.append((time.perf_counter() - t_q) * 1e3)
                    if any(it["id"] == p["b"] for it in items):
                        p["similar"] = time.time() * 1000
                        pending.remove(p)
            if now >= end_probes and not pending:
                break
            if now > end_probes + 30:
                log(f"freshness: {len(pending)} probes still not visible after 30 s")
                break
            time.sleep(POLL_S)
        t_end = time.perf_counter()
        time.sleep(0.2)  # the batch holding the last probe logs after its commit
        log_to = log_path.stat().st_size
        c1, cpu1 = behavior_counters(rc, keys), {k: proc_cpu_s(v) for k, v in pids.items()}
        busy1 = _busy_cpu_s()
        bg_sent = sent.value
    finally:
        stop.set()
        start.set()
        loader.join(timeout=30)
        producer.close()
        consumer.stop()
        recaller.client.close()
        rc.close()
    wall = t_end - t_start
    lat_s = [p["similar"] - p["ts"] for p in probes if p["similar"]]
    applied = (c1["applied"] + c1["duplicate"]) - (c0["applied"] + c0["duplicate"])
    return {
        "seconds": seconds,
        "background_rate": rate,
        "background_sent": bg_sent,
        "background_sent_per_s": bg_sent / wall,
        "applied_during_window": applied,
        "applied_per_s": applied / wall,
        "cpu_per_s": {k: (cpu1[k] - cpu0[k]) / wall for k in cpu0},
        "machine_busy_cpus": (busy1 - busy0) / wall,
        "probes": len(probes),
        "not_found": len(probes) - len(lat_s),
        "acked": summary_ms([p["acked"] - p["ts"] for p in probes if p["acked"]]),
        "zscore": summary_ms([p["zscore"] - p["ts"] for p in probes if p["zscore"]]),
        "similar": summary_ms(lat_s),
        "similar_first_fifth_p50": summary_ms(lat_s[: len(lat_s) // 5])["p50"],
        "similar_last_fifth_p50": summary_ms(lat_s[-len(lat_s) // 5 :])["p50"],
        "similar_calls": sims,
        "similar_call_ms": summary_ms(sim_ms),
        "poll_loop_ms": wall / loops * 1e3,
        "consumer_batches": batch_log(log_path, log_from, log_to),
        # every probe's latency (ms) in send order: where a spike sits in the run
        "similar_ms_series": [
            round(p["similar"] - p["ts"]) if p["similar"] else None for p in probes
        ],
    }


_BATCH_LINE = re.compile(r"behavior batch: (\d+) records.* ([\d.]+) ms$")


def batch_log(path: Path, start: int, end: int) -> dict[str, Any]:
    """The consumer's log between two offsets: batch sizes and times (submitted to the
    writer -> committed), and any warning or group coordination (a rebalance, a retry)."""
    with path.open("rb") as fh:
        fh.seek(start)
        lines = fh.read(end - start).decode("utf-8", "replace").splitlines()
    sizes, ms = [], []
    for line in lines:
        m = _BATCH_LINE.search(line)
        if m:
            sizes.append(float(m.group(1)))
            ms.append(float(m.group(2)))
    warnings = [
        line[:300]
        for line in lines
        if " WARNING " in line or " ERROR " in line or "kafka.coordinator" in line
    ]
    return {
        "batches": len(sizes),
        "records": summary_ms(sizes),
        "ms": summary_ms(ms),
        "warnings": warnings[:20],
    }


def clear_behaviors(rc: redis.Redis, keys: BehaviorKeys) -> int:
    """Delete every behavior key of the namespace (the documents stay): a fresh start."""
    n = 0
    for shard in range(keys.shards):
        pattern = keys.prefix(shard).replace("{", "\\{") + "*"
        batch = list(rc.scan_iter(match=pattern, count=5000))
        for i in range(0, len(batch), 5000):
            n += rc.unlink(*batch[i : i + 5000])
    return n


# -- the run ---------------------------------------------------------------------------------
def run(quick: bool, n: int | None, seconds: float | None) -> dict[str, Any]:
    n = n or (20_000 if quick else 200_000)
    seconds = seconds or (15 if quick else 60)
    load = os.getloadavg()
    t0 = time.perf_counter()
    cat = Catalogue(N_ITEMS, N_USERS, SEED)
    events, dups = stream(cat, n, SEED + 1)
    values = [orjson.dumps(e) for e in events]
    keys = [e["user_id"].encode() for e in events]
    docs = [cat.doc(j) for j in range(N_ITEMS)]
    work = workload_stats(events, dups)
    log(f"built {n:,} events ({len(dups):,} re-sent) in {time.perf_counter() - t0:.1f} s")
    gc.collect()
    gc.freeze()  # the benchmark's own objects stay out of the consumer's GC passes
    with servers() as (kafka, red):
        assert red.pid is not None and kafka is not None and kafka.pid is not None
        s1 = settings_for(kafka, red, "bt", behaviors_topic=TOPIC, behaviors_group="bench-bt")
        ensure_topics(s1, partitions=3)
        rc = redis.Redis.from_url(red.url)
        docs_s = index_items(rc, s1, docs)
        log(f"indexed {len(docs):,} item documents in {docs_s:.1f} s")
        pub_s = publish(s1, values, keys)
        log(f"published {n:,} events in {pub_s:.1f} s")
        mem0 = rc.info("memory")["used_memory"]
        pids = {"valkey": red.pid, "tansu": kafka.pid}
        plain = consume(s1, "bench-bt", n, pids, profile=False)
        mem1 = rc.info("memory")["used_memory"]
        log(f"run 1: {plain['events_per_s']:,.0f} events/s")
        memory = memory_by_family(rc, BehaviorKeys("bt", s1.behavior.shards))
        memory["used_memory_before"] = mem0
        memory["used_memory_after"] = mem1
        memory["used_memory_delta"] = mem1 - mem0
        per_user, per_item = memory["bytes_per_user"], memory["bytes_per_item"]
        log(f"memory: {per_user:,.0f} B/user, {per_item:,.0f} B/item")
        cleared = clear_behaviors(rc, BehaviorKeys("bt", s1.behavior.shards))
        log(f"cleared {cleared:,} behavior keys (the documents stay) for run 2")
        n_prof = min(n, PROFILE_N)
        profiled = consume(s1, "bench-bp", n_prof, pids, profile=True)
        log(f"run 2 (cProfile, {n_prof:,} events): {profiled['events_per_s']:,.0f} events/s")
        clear_behaviors(rc, BehaviorKeys("bt", s1.behavior.shards))
        rc.close()
        s3 = settings_for(
            kafka,
            red,
            "bt",
            behaviors_topic="fresh.behaviors",
            behaviors_group="bench-fresh",
            dlq_topic="fresh.dlq",
        )
        fresh = freshness(kafka, red, s3, cat, seconds)
        log(
            f"freshness: similar p50 {fresh['similar']['p50']:.0f} "
            f"p99 {fresh['similar']['p99']:.0f} ms"
        )
        s4 = settings_for(
            kafka,
            red,
            "bl",
            behaviors_topic="light.behaviors",
            behaviors_group="bench-light",
            dlq_topic="light.dlq",
        )
        light = freshness(kafka, red, s4, cat, seconds, LIGHT_RATE)
        log(
            f"freshness at {LIGHT_RATE}/s: similar p50 {light['similar']['p50']:.0f} "
            f"p99 {light['similar']['p99']:.0f} ms"
        )
    b = s1.behavior
    return {
        "load_avg_at_start": [round(x, 2) for x in load],
        "n": n,
        "workload": "SYNTHETIC (seeded): see bench_behaviors.py",
        "workload_stats": work,
        "settings": {
            "behavior_shards": b.shards,
            "apply_chunk": b.apply_chunk,
            "window_items": b.window_items,
            "window_s": b.window_s,
            "neighbours_cap": b.neighbours_cap,
            "recent_cap": b.recent_cap,
            "max_batch": s1.kafka.max_batch,
            "fetch_max_wait_ms": s1.kafka.fetch_max_wait_ms,
            "poll_timeout_ms": s1.kafka.poll_timeout_ms,
        },
        "mean_event_bytes": sum(map(len, values)) / n,
        "docs_index_s": docs_s,
        "publish_s": pub_s,
        "run": plain,
        "profiled": profiled,
        "memory": memory,
        "freshness": fresh,
        "freshness_light": light,
    }


def render(r: dict[str, Any]) -> str:
    p, q, m, f, w = r["run"], r["profiled"], r["memory"], r["freshness"], r["workload_stats"]
    ev = p["events"]
    target = "met" if p["events_per_s"] >= 10_000 else f"MISSED ({p['events_per_s'] / 1e4:.0%})"
    stages = [[k, v, 100 * v / p["seconds"]] for k, v in sorted(p["stages_s"].items())]
    inner, other = p["evalsha_inner_commands_s"], p["redis_other_commands_s"]
    lua = p["evalsha_s"] - inner
    per_event = [
        ["consumer process CPU (all threads)", p["consumer_cpu_s"], 1e6 * p["consumer_cpu_s"] / ev],
        ["Valkey server process CPU", p["valkey_cpu_s"], 1e6 * p["valkey_cpu_s"] / ev],
        ["Tansu broker process CPU", p["tansu_cpu_s"], 1e6 * p["tansu_cpu_s"] / ev],
        ["Redis: EVALSHA (commandstats)", p["evalsha_s"], 1e6 * p["evalsha_s"] / ev],
        ["  of which the commands it calls", inner, 1e6 * inner / ev],
        ["  of which Lua + cjson + call overhead", lua, 1e6 * lua / ev],
        ["Redis: commands outside scripts", other, 1e6 * other / ev],
        ["wall", p["seconds"], 1e6 * p["seconds"] / ev],
    ]
    fr, cb = f["similar"], f["consumer_batches"]
    f_ok = "met" if fr["p99"] <= 250 and not f["not_found"] else "MISSED"
    mem_rows = [
        [
            x["family"],
            x["keys"],
            x["bytes"],
            x["bytes_per_key"],
            f"{x['bytes_per']:,.0f} / {x['per']}",
        ]
        for x in m["families"]
    ]
    return "\n\n".join(
        [
            f"SYNTHETIC workload (seeded): {w['events']:,} behavior events "
            f"({w['resent_duplicates']:,} re-sent duplicates), {w['distinct_users']:,} users, "
            f"{w['distinct_items']:,} items (top 1% of items: {w['top_1pct_items_share']:.0%} "
            f"of events), actions {w['actions_pct']}, mean {r['mean_event_bytes']:.0f} bytes; "
            f"3 partitions keyed by user; load average at start {r['load_avg_at_start']}.",
            "1. Throughput: one BehaviorConsumer in this process (its own run loop), from "
            "the first poll that returned records to the commit of the last batch:",
            table(
                ["events", "applied", "duplicate", "batches", "seconds", "events/s", ">= 10,000"],
                [
                    [
                        ev,
                        p["outcomes"]["applied"],
                        p["outcomes"]["duplicate"],
                        p["batches"],
                        p["seconds"],
                        p["events_per_s"],
                        target,
                    ]
                ],
            ),
            "Stage split (wall time inside each call; the writer thread overlaps the main "
            "thread, so the shares can add up to more than 100%):",
            table(["stage", "s", "% of wall"], stages),
            f"CPU per event ({p['evalsha_calls']:,} EVALSHA calls, "
            f"{p['evalsha_usec_per_call']:,.0f} µs each):",
            table(["who", "s", "µs per event"], per_event),
            "Commands behavior.lua ran, per event: "
            + ", ".join(f"{k} {v:.2f}" for k, v in p["script_calls_per_event"].items()),
            f"cProfile of a second run over the first {q['events']:,} events (behavior keys "
            f"deleted first; one thread; profiled rate {q['events_per_s']:,.0f} events/s; "
            f"shares of {q['profile']['total_s']:.1f} s profiled):",
            table(["where", "cum s", "%"], q["profile"]["buckets"]),
            "Top 15 functions by own time:",
            table(
                ["function", "calls", "tottime s", "% of profiled", "cumtime s"],
                q["profile"]["top_tottime"],
            ),
            f"2. Memory after run 1: {m['users']:,} users, {m['items']:,} items, {m['keys']:,} "
            f"keys; {m['bytes_per_user']:,.0f} bytes per user (u+ur+ux+up), "
            f"{m['bytes_per_item']:,.0f} bytes per item (nb+ic), shard-level "
            f"{m['shard_level_bytes']:,} bytes; MEMORY USAGE total {m['total_bytes']:,}, "
            f"used_memory delta {m['used_memory_delta']:,}.",
            table(["family", "keys", "bytes", "bytes/key", "bytes per"], mem_rows),
            f"3. Freshness: {f['seconds']:.0f} s of probes (one every {PROBE_EVERY_S * 1e3:.0f} "
            f"ms) over a background load of {f['background_rate']:,}/s from another process "
            f"(sent {f['background_sent_per_s']:,.0f}/s, applied {f['applied_per_s']:,.0f}/s); "
            f"CPUs used meanwhile: "
            + ", ".join(f"{k} {v:.2f}" for k, v in f["cpu_per_s"].items())
            + f"; the whole machine {f['machine_busy_cpus']:.2f} of {os.cpu_count()}; "
            f"latency = seen - ts of the click on B, ms; poller round "
            f"{f['poll_loop_ms']:.1f} ms.",
            table(
                ["seen by", "probes", "p50", "p90", "p99", "max", "p99 <= 250"],
                [
                    [
                        "producer ack (broker has B)",
                        *[f["acked"][k] for k in ("n", "p50", "p90", "p99", "max")],
                        "",
                    ],
                    [
                        "ZSCORE nb:A B",
                        *[f["zscore"][k] for k in ("n", "p50", "p90", "p99", "max")],
                        "",
                    ],
                    [
                        "Recaller.similar(A, 50)",
                        *[fr[k] for k in ("n", "p50", "p90", "p99", "max")],
                        f_ok,
                    ],
                ],
            ),
            f"similar() p50 first fifth {f['similar_first_fifth_p50']:.0f} ms, last fifth "
            f"{f['similar_last_fifth_p50']:.0f} ms; similar() call p50 "
            f"{f['similar_call_ms']['p50']:.1f} ms p99 {f['similar_call_ms']['p99']:.1f} ms; "
            f"not found: {f['not_found']}. The consumer's batches meanwhile "
            f"({cb['batches']:,}; submitted to the writer thread -> committed): records p50 "
            f"{cb['records']['p50']:.0f} p99 {cb['records']['p99']:.0f} max "
            f"{cb['records']['max']:.0f}; ms p50 {cb['ms']['p50']:.0f} p99 {cb['ms']['p99']:.0f} "
            f"max {cb['ms']['max']:.0f}; warnings / group events logged: {len(cb['warnings'])}.",
            *_light(r),
        ]
    )


def _light(r: dict[str, Any]) -> list[str]:
    """The same probes over a lighter background load."""
    lf = r.get("freshness_light")
    if not lf:
        return []
    s = lf["similar"]
    ok = "met" if s["p99"] <= 250 and not lf["not_found"] else "MISSED"
    return [
        f"The same probes over {lf['background_rate']:,}/s (sent "
        f"{lf['background_sent_per_s']:,.0f}/s): Recaller.similar(A, 50) seen after "
        f"p50 {s['p50']:.1f}, "
        f"p90 {s['p90']:.1f}, p99 {s['p99']:.1f}, max {s['max']:.1f} ms over {s['n']} probes "
        f"(p99 <= 250: {ok}); not found: {lf['not_found']}."
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20,000 events, 15 s of probes")
    ap.add_argument("--n", type=int, default=None, help="events (default 200,000)")
    ap.add_argument("--seconds", type=float, default=None, help="of probes (default 60)")
    args = ap.parse_args()
    result = run(args.quick, args.n, args.seconds)
    save("behaviors", {"quick": args.quick, **result})
    print(render(result))


if __name__ == "__main__":
    main()
