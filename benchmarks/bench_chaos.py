"""Chaos: exactly once in effect under SIGKILLed consumers, Redis outages and group changes.

    python benchmarks/bench_chaos.py [--quick] [--seed N] [--only chaos,group]

On a fresh Tansu broker, a Valkey server with AOF (the one that fails) and a second
Valkey for the clean pass, all on free loopback ports (benchmarks/chaos.py has the
workload, the fault driver and the comparison rules):

1. Chaos: the full run publishes 50,000 events (25,000 document events on 3,000 ids,
   25,000 behavior events of 600 users on 90 items; duplicates, stale and out-of-order
   versions, re-sent event ids, a few invalid messages) over 120 s to 4-partition topics
   consumed by two ``rtindex consume documents`` and two ``rtindex consume behaviors``
   processes (one group per stream), while members are SIGKILLed 12 times at random
   moments (and restarted) and Redis is stopped and restarted 3 times for 3-6 s. Then
   the state must equal a clean pass's.
2. Group: 12,000 events; two members per stream, one leaves with SIGTERM, one joins, one
   is SIGKILLed, one joins; the state must equal a clean pass's.

``--quick`` (about a minute): 5,000 events, one consumer process per stream, 3 kills, 1
outage; the group run with 3,000 events at the same time (in a thread, on the Redis
server that does not fail).
A fixed ``--seed`` reproduces the stream and the fault schedule.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import SEED, log, save, table  # first: it puts this checkout's rtindex first

# isort: split
import chaos

from rtindex.runtime.servers import KafkaServer, RedisServer

NAME = "chaos"


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--only", default="chaos,group")
    args = ap.parse_args()
    chaos_cfg, group_cfg = chaos.bench_configs(args.seed, args.quick)
    only = set(args.only.split(","))
    result: dict[str, Any] = {"quick": args.quick, "seed": args.seed, "load_before": loadavg()}
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rtindex-chaos-") as tmp:
        work = Path(tmp)
        with (
            KafkaServer.start() as kafka,
            RedisServer.start(data_dir=work / "redis-chaos") as chaos_redis,
            RedisServer.start() as clean_redis,
        ):

            def group() -> dict[str, Any]:
                # On the Redis server that never fails (so it can run alongside the chaos).
                return chaos.run_group(
                    group_cfg,
                    kafka.bootstrap,
                    clean_redis.url,
                    clean_redis.url,
                    work / "g",
                    lambda m: log(f"[group] {m}"),
                )

            with ThreadPoolExecutor(max_workers=1) as pool:
                # --quick: both scenarios at once (under a minute); else one after the other.
                parallel = pool.submit(group) if args.quick and "group" in only else None
                if "chaos" in only:
                    log(f"chaos run: seed {args.seed}")
                    result["chaos"] = chaos.run_chaos(
                        chaos_cfg,
                        kafka.bootstrap,
                        chaos_redis,
                        clean_redis.url,
                        work / "c",
                        lambda m: log(f"[chaos] {m}"),
                    )
                    result["load_after_chaos"] = loadavg()
                if parallel is not None:
                    result["group"] = parallel.result()
                elif "group" in only:
                    result["group"] = group()
    result["load_after"] = loadavg()
    result["seconds"] = round(time.monotonic() - t0, 1)
    path = save(NAME, result)
    print(render(result))
    log(f"wrote {path}")
    failed = [k for k in ("chaos", "group") if k in result and not _identical(result[k])]
    if failed:
        raise SystemExit(f"state differs from the clean pass: {', '.join(failed)}")


def _identical(r: dict[str, Any]) -> bool:
    return bool(r["comparison"]["identical"])


def render(r: dict[str, Any]) -> str:
    parts = []
    if "chaos" in r:
        c = r["chaos"]
        cmp, ev = c["comparison"], c["events"]
        kills = c["kills"]
        busy = sum(1 for k in kills if k["held_partitions"])
        beh = [k for k in kills if k["stream"] == "behaviors"]
        left = [k["applied_uncommitted"] for k in beh if k.get("applied_uncommitted")]
        behind = sum(1 for k in kills if k["behind"])
        down = sum(o["down_s"] for o in c["outages"])
        restart = sum(o.get("restart_s", 0.0) for o in c["outages"])
        digest = c.get("workload_sha256")
        seeded = (
            f" (stream sha256 {digest[:16]}; it and the schedule of "
            f"{len(c['fault_plan'])} planned faults are a function of the seed, "
            "tests/unit/test_chaos_seed.py)"
            if digest
            else ""
        )
        parts.append(
            f"Seed {r['seed']}{seeded}. {ev['total']:,} events "
            f"({ev['documents']:,} document events, "
            f"{ev['behaviors']:,} behavior events: "
            + ", ".join(f"{k} {v:,}" for k, v in ev["by_kind"].items())
            + f") published over {c['publish_s']} s to {c['config']['partitions']}-partition "
            f"topics, {c['config']['members']} consumer process(es) per stream; "
            f"index.shards = behavior.shards = 2. Load average before / after: "
            f"{r['load_before']} / {r.get('load_after_chaos', r['load_after'])}."
        )
        parts.append(
            table(
                ["measure", "value"],
                [
                    ["events", ev["total"]],
                    [
                        "SIGKILLs (victim owned partitions / was behind, by its last report)",
                        f"{len(kills)} ({busy} / {behind})",
                    ],
                    ["kills during a Redis outage", sum(1 for k in kills if k["during_outage"])],
                    [
                        "behavior kills that left applied, uncommitted events (events)",
                        f"{len(left)} of {len(beh)} ({sum(left)})",
                    ],
                    [
                        "Redis outages (total down, of which restarting: loading the AOF)",
                        f"{len(c['outages'])} ({down:.1f} s, {restart:.1f} s)",
                    ],
                    ["consumer processes started", sum(c["processes_started"].values())],
                    ["retries logged by consumers", c["retry_warnings_logged"]],
                    ["behavior redeliveries skipped (seen, lower bound)", c["redelivered_seen"]],
                    ["lost", cmp["lost"]],
                    ["double-applied", cmp["double_applied"]],
                    ["resurrected deletes", cmp["resurrected"]],
                    ["other differences", cmp["other_differences"]],
                    ["identical to the clean pass", "yes" if cmp["identical"] else "NO"],
                    [
                        "largest log2 score difference (tolerance 1.4e-9)",
                        f"{cmp['max_log2_diff']:.2g}",
                    ],
                    ["seconds: publish start -> chaos group caught up", c["chaos_caught_up_s"]],
                    ["seconds: the clean pass, run alongside", c["clean_caught_up_s"]],
                ],
            )
        )
        parts.append(
            f"Final state compared: {cmp['documents_live']:,} live documents, "
            f"{cmp['documents_deleted']:,} tombstones, {cmp['behavior_events_applied']:,} behavior "
            f"events applied and {cmp['behavior_events_duplicate']:,} duplicates, "
            f"{cmp['behavior_users']:,} users, {cmp['behavior_neighbour_lists']:,} neighbour "
            f"lists, {cmp['keys_compared']:,} keys; {cmp['float_scores_compared']:,} decayed "
            "scores within tolerance."
        )
    if "group" in r:
        g = r["group"]
        cmp = g["comparison"]
        rows = [[s["step"], s["at_s"], s["settled_s"], s["published"]] for s in g["steps"]]
        parts.append(
            f"Consumer group, both streams at once: {g['events']['total']:,} events, "
            f"{g['config']['partitions']} partitions; each step waited on until the status "
            "reports show the expected members owning disjoint partitions covering the topic "
            "(session.timeout.ms 6000):"
        )
        parts.append(table(["step", "at s", "settled in s", "events published"], rows))
        parts.append(
            f"Identical to the clean pass: {'yes' if cmp['identical'] else 'NO'} (lost "
            f"{cmp['lost']}, double-applied {cmp['double_applied']}, resurrected "
            f"{cmp['resurrected']}, other differences {cmp['other_differences']}; "
            f"{cmp['keys_compared']:,} keys compared, largest log2 score difference "
            f"{cmp['max_log2_diff']:.2g}). Seconds from the first event to the group "
            f"caught up: {g['chaos_caught_up_s']}."
        )
    parts.append(f"Whole benchmark: {r['seconds']} s.")
    return "\n\n".join(parts)


if __name__ == "__main__":
    main()
