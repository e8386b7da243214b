"""Indexing throughput: one DocumentConsumer, topic -> Redis, on real Tansu and Valkey.

    python benchmarks/bench_indexing.py [--quick] [--n N]

N upsert events (see common.py for the documents) are published to a 3-partition topic
first. Then one rtindex.consumers.documents.DocumentConsumer (the code `rtindex consume
documents` runs, here in this process) indexes them. The clock starts when the first
poll returns records (the group join before it is excluded) and stops when the batch
holding the N-th applied event is committed.

Run 1 (the figure) carries only cheap stage timers (wrappers with perf_counter around
poll, decode, tokenize, store read/apply, commit) plus Redis's own command statistics.
Run 2 indexes the same topic again into a fresh namespace with another group, under
cProfile, for where the time goes by function (cProfile slows Python code down, so its
times are shares, not the throughput).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import threading
import time
from collections import Counter
from typing import Any

import orjson
import redis
from common import (
    doc_id,
    log,
    profile_buckets,
    save,
    servers,
    settings_for,
    table,
    texts,
    upsert,
)

from rtindex.consumers import documents as documents_mod
from rtindex.consumers.documents import DocumentConsumer
from rtindex.consumers.publish import make_producer
from rtindex.consumers.topics import ensure_topics
from rtindex.settings import Settings

TOPIC = "bench.documents"


def publish(settings: Settings, events: list[bytes], ids: list[str]) -> float:
    producer = make_producer(settings, linger_ms=20, batch_size=256 * 1024)
    t0 = time.perf_counter()
    for value, key in zip(events, ids, strict=True):
        producer.send(TOPIC, value=value, key=key.encode())
    producer.flush()
    producer.close()
    return time.perf_counter() - t0


class Timers:
    """Wall time spent inside wrapped callables, by name."""

    def __init__(self) -> None:
        self.s: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def wrap(self, name: str, fn: Any) -> Any:
        def timed(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.s[name] += time.perf_counter() - t0
                self.calls[name] += 1

        return timed


def consume(settings: Settings, group: str, n: int, profile: bool) -> dict[str, Any]:
    """Index the topic with one consumer until n events are applied; time it.

    Unprofiled: the consumer's own run loop (whatever it overlaps). Profiled: a plain
    poll -> process -> commit loop in this thread, since cProfile sees one thread only.
    """
    c = DocumentConsumer(settings, group=group)
    stop, timers = threading.Event(), Timers()
    state: dict[str, Any] = {"first": None, "end": None, "last_commit": None}
    prof = cProfile.Profile() if profile else None
    poll = c.consumer.poll

    def timed_poll(*a: Any, **kw: Any) -> Any:
        if c.totals.events["applied"] >= n:  # the totals follow each batch's commit
            state["end"] = state["last_commit"]
            state["cpu_end"] = time.process_time()
            stop.set()
            return {}
        got = timers.wrap("kafka poll", poll)(*a, **kw)
        if got and state["first"] is None:
            state["first"] = time.perf_counter()
            state["cpu_first"] = time.process_time()
            timers.s.clear()  # the stage split covers the measured span only
            if prof:
                prof.enable()  # the profile too: the group join is not in it
        return got

    c.consumer.poll = timed_poll
    c.analyzer.tokens = timers.wrap("tokenize (Analyzer.tokens)", c.analyzer.tokens)
    c.store.read = timers.wrap("store.read (HMGET pipeline)", c.store.read)
    c.store.apply = timers.wrap("store.apply (Lua script)", c.store.apply)
    commit = timers.wrap("kafka commit", c.commit)

    def timed_commit(records: list[Any], stop_: threading.Event) -> None:
        commit(records, stop_)
        state["last_commit"] = time.perf_counter()

    c.commit = timed_commit
    original_decode = documents_mod.decode_batch
    documents_mod.decode_batch = timers.wrap("decode (orjson + pydantic)", original_decode)
    rc = redis.Redis.from_url(settings.redis.url)
    rc.config_resetstat()
    try:
        c.store.ensure_layout()
        if prof is None:
            c.run(stop)
        else:
            while not stop.is_set():
                polled = c.consumer.poll(timeout_ms=100)
                records = [r for tp in sorted(polled) for r in polled[tp]]
                if records:
                    counts = c.process(records, stop)
                    c.commit(records, stop)
                    c.totals.batches += 1
                    c.totals.events["applied"] += counts.get("applied", 0)
    finally:
        if prof:
            prof.disable()
        documents_mod.decode_batch = original_decode
        c.close()
    elapsed = state["end"] - state["first"]
    cmd = rc.info("commandstats")
    script_s = sum(v["usec"] for k, v in cmd.items() if k.startswith("cmdstat_evalsha")) / 1e6
    redis_s = sum(v["usec"] for v in cmd.values()) / 1e6
    rc.close()
    applied = c.totals.events["applied"]
    out: dict[str, Any] = {
        "applied": applied,
        "batches": c.totals.batches,
        "seconds": elapsed,
        "docs_per_s": applied / elapsed,
        "stages_s": dict(timers.s),
        # CPU of this process (the consumer, all its threads) over the measured span
        "consumer_cpu_s": state["cpu_end"] - state["cpu_first"],
        "redis_server_script_s": script_s,
        "redis_server_all_s": redis_s,
    }
    if prof:
        out["profile"] = profile_summary(prof)
    return out


# Functions whose cumulative time answers "where does the time go" (matched by name).
_BUCKETS = [
    ("kafka-python poll (fetch + record parsing)", "group.py", "poll"),
    ("decode: orjson + pydantic", "documents.py", "decode_batch"),
    ("  of which pydantic model_validate", "main.py", "model_validate"),
    ("tokenize: Analyzer.tokens", "analysis.py", "tokens"),
    (
        "  of which rjieba cut_for_search",
        "~",
        "<method 'cut_for_search' of 'builtins.Jieba' objects>",
    ),
    ("  of which unicodedata.normalize", "~", "<built-in method unicodedata.normalize>"),
    ("plan_document: views + diffs (+ tokenize if done there)", "plan.py", "plan_document"),
    ("store.read (HMGET pipeline)", "store.py", "read"),
    ("store.apply (args + Lua script round trip)", "store.py", "apply"),
    ("  of which building script args (_op)", "store.py", "_op"),
    (
        "  of which waiting on Redis (socket recv)",
        "~",
        "<method 'recv_into' of '_socket.socket' objects>",
    ),
    ("kafka commit", "documents.py", "commit"),
]


def profile_summary(prof: cProfile.Profile) -> dict[str, Any]:
    total, buckets, top = profile_buckets(prof, _BUCKETS)
    return {"total_s": total, "buckets": buckets, "top_tottime": top}


def run(quick: bool, n: int | None = None) -> dict[str, Any]:
    n = n or (5_000 if quick else 20_000)
    t0 = time.perf_counter()
    docs, n_real = texts(n)
    values = [orjson.dumps(upsert(i, t)) for i, t in enumerate(docs)]
    ids = [doc_id(i) for i in range(n)]
    took = time.perf_counter() - t0
    log(f"built {n} events ({n_real} real, {n - n_real} synthetic) in {took:.1f} s")
    gc.collect()
    gc.freeze()  # the benchmark's own objects stay out of the consumer's GC passes
    with servers() as (kafka, red):
        s1 = settings_for(kafka, red, "idx1", documents_topic=TOPIC)
        ensure_topics(s1, partitions=3)
        pub_s = publish(s1, values, ids)
        log(f"published in {pub_s:.1f} s")
        plain = consume(s1, "bench-idx-1", n, profile=False)
        log(f"run 1: {plain['docs_per_s']:,.0f} docs/s")
        s2 = settings_for(kafka, red, "idx2", documents_topic=TOPIC)
        profiled = consume(s2, "bench-idx-2", n, profile=True)
        log(f"run 2 (cProfile): {profiled['docs_per_s']:,.0f} docs/s")
    return {
        "n": n,
        "n_real": n_real,
        "mean_event_bytes": sum(map(len, values)) / n,
        "publish_s": pub_s,
        "run": plain,
        "profiled": profiled,
    }


def render(r: dict[str, Any]) -> str:
    p, q = r["run"], r["profiled"]
    stages = [[k, v, 100 * v / p["seconds"]] for k, v in sorted(p["stages_s"].items())]
    stages.append(
        [
            "Redis server: EVALSHA (from INFO commandstats)",
            p["redis_server_script_s"],
            100 * p["redis_server_script_s"] / p["seconds"],
        ]
    )
    per_doc = [
        [
            "consumer process CPU (all threads)",
            p["consumer_cpu_s"],
            1e6 * p["consumer_cpu_s"] / p["applied"],
        ],
        [
            "Redis server: EVALSHA",
            p["redis_server_script_s"],
            1e6 * p["redis_server_script_s"] / p["applied"],
        ],
        [
            "Redis server: all commands",
            p["redis_server_all_s"],
            1e6 * p["redis_server_all_s"] / p["applied"],
        ],
        ["wall", p["seconds"], 1e6 * p["seconds"] / p["applied"]],
    ]
    target = (
        "met" if p["docs_per_s"] >= 3000 else f"MISSED ({p['docs_per_s'] / 3000:.0%} of target)"
    )
    return "\n\n".join(
        [
            f"{r['n']:,} upsert events ({r['n_real']:,} real People's Daily documents, "
            f"{r['n'] - r['n_real']:,} synthetic), mean {r['mean_event_bytes']:,.0f} bytes, "
            f"3 partitions, one consumer, batches of up to 1,000; clock from the first poll "
            f"that returned records (group join excluded) to the commit of the last batch.",
            table(
                ["documents", "batches", "seconds", "docs/s", "target >= 3,000"],
                [[p["applied"], p["batches"], p["seconds"], p["docs_per_s"], target]],
            ),
            "Stage split of that run (wall time inside each call, summed; a consumer that "
            "applies one batch in a writer thread while it prepares the next overlaps these, "
            "so they can add up to more than 100%):",
            table(["stage", "s", "% of wall"], stages),
            "CPU per document over the same span: the consumer (one Python process, so one "
            "core at most for Python code) and the Redis server (one core):",
            table(["who", "CPU s", "µs per document"], per_doc),
            f"cProfile of a second run over the same events (fresh namespace; a plain poll, "
            f"process, commit loop in one thread, so nothing overlaps; profiled rate "
            f"{q['docs_per_s']:,.0f} docs/s; shares of {q['profile']['total_s']:.1f} s profiled):",
            table(["where", "cum s", "%"], q["profile"]["buckets"]),
            "Top functions by own time (cProfile):\n\n```\n"
            + "\n".join(q["profile"]["top_tottime"])
            + "\n```",
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5,000 events (< 60 s)")
    ap.add_argument("--n", type=int, default=None)
    args = ap.parse_args()
    result = run(args.quick, args.n)
    save("indexing", {"quick": args.quick, **result})
    print(render(result))


if __name__ == "__main__":
    main()
