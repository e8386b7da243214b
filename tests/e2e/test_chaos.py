"""Chaos on the real local stack: crashes, a Redis outage and group changes mid-stream
must leave exactly the state of one clean pass over the same stream.

Short variants of ``benchmarks/bench_chaos.py``; the workload, the fault driver and the
comparison rules (exact for documents and per-user state, ``ic:`` counters exact,
decayed log2 sums within a relative 1e-9) are in ``benchmarks/chaos.py``.

1. Two ``rtindex consume documents`` and two ``rtindex consume behaviors`` processes
   (one group per stream) consume 3,500 mixed events (upserts, patches, deletes,
   duplicates, out-of-order versions, re-sent behavior events, a few invalid ones) on 4
   partitions while members are SIGKILLed four times (once during the outage) and
   restarted, and Redis, with AOF, is stopped for 3-4 s. A member that exits on its own
   (e.g. a survivor crashing in the rebalance a kill causes) fails the test.
2. Two members per stream; one leaves with SIGTERM, one joins, one is SIGKILLed, one
   joins, each step while events are being published and consumed.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from helpers import load_benchmark

from rtindex.runtime.servers import KafkaServer, RedisServer

pytestmark = pytest.mark.e2e
SEED = 20261123


chaos = load_benchmark("chaos")


def assert_identical(result: dict[str, Any]) -> None:
    cmp = result["comparison"]
    figures = {k: cmp[k] for k in ("lost", "double_applied", "resurrected", "differences")}
    assert cmp["identical"], f"{figures}:\n" + "\n".join(cmp["first_differences"])
    assert figures == {"lost": 0, "double_applied": 0, "resurrected": 0, "differences": 0}
    # The stream exercised what it is meant to.
    assert cmp["documents_live"] > 0 and cmp["documents_deleted"] > 0
    assert cmp["behavior_events_applied"] > 0 and cmp["behavior_events_duplicate"] > 0
    assert cmp["behavior_neighbour_lists"] > 0 and cmp["float_scores_compared"] > 0


def test_kills_and_a_redis_outage_leave_the_state_of_a_clean_pass(
    kafka_server: KafkaServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    cfg = chaos.ChaosConfig(
        seed=SEED,
        document_events=1_500,
        behavior_events=2_000,
        documents=250,
        users=60,
        members=2,
        kills=4,
        kills_in_outages=1,
        outages=1,
        outage_s=(3.0, 4.0),
        publish_s=24.0,
        drain_timeout_s=90.0,
        max_postpone_s=15.0,
    )
    chaos_redis = RedisServer.start(data_dir=tmp_path / "redis")  # AOF: survives a stop
    try:
        result = chaos.run_chaos(
            cfg, kafka_server.bootstrap, chaos_redis, redis_server.url, tmp_path, print
        )
    finally:
        chaos_redis.stop()
    assert_identical(result)
    kills = result["kills"]
    assert len(kills) == 4 and all(k["exit"] == -signal.SIGKILL for k in kills)
    assert any(k["during_outage"] for k in kills), kills
    # Kills are aimed at members at work (owning partitions), waiting a while for one
    # (a restarted member spends seconds rejoining): most must have found one.
    assert sum(bool(k["held_partitions"]) for k in kills) >= 3, kills
    # A behavior kill is aimed at a member with applied, uncommitted events: at least one
    # left Kafka something to deliver again (measured once the member was dead).
    assert any(k.get("applied_uncommitted") for k in kills), kills
    assert len(result["outages"]) == 1 and result["outages"][0]["down_s"] >= 3.0
    assert result["retry_warnings_logged"] > 0, "the outage must have been waited out"


def test_members_leave_and_join_mid_stream(
    kafka_server: KafkaServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    cfg = chaos.RunConfig(
        seed=SEED + 1,
        document_events=1_800,
        behavior_events=1_800,
        documents=200,
        users=50,
        drain_timeout_s=90.0,
    )
    result = chaos.run_group(
        cfg, kafka_server.bootstrap, redis_server.url, redis_server.url, tmp_path, print
    )
    assert_identical(result)
    steps = [s["step"] for s in result["steps"]]
    assert len(steps) == 5, steps
    published = [s["published"] for s in result["steps"]]
    assert published[-1] < result["events"]["total"], "every step happens mid-stream"
