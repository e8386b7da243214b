"""The command line as a user runs it: schema, produce, search, and bad settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import wait_until

from rtindex.consumers.documents import DocumentConsumer
from rtindex.settings import Settings

pytestmark = pytest.mark.e2e


def rtindex(
    *args: str, settings: Settings | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RTINDEX_")}
    if settings is not None:
        base |= {
            "RTINDEX_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
            "RTINDEX_REDIS_URL": settings.redis.url,
            "RTINDEX_NAMESPACE": settings.redis.namespace,
            "RTINDEX_KAFKA__DOCUMENTS_TOPIC": settings.kafka.documents_topic,
        }
    return subprocess.run(
        [sys.executable, "-m", "rtindex", *args],
        env=base | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_schema_prints_the_event_json_schema() -> None:
    out = rtindex("schema")
    assert out.returncode == 0, out.stderr
    schema = json.loads(out.stdout)
    assert set(schema["discriminator"]["mapping"]) == {"upsert", "patch", "delete"}


def test_unknown_setting_is_rejected_at_start() -> None:
    out = rtindex("search", "x", RTINDEX_BM25__K2="1")
    assert out.returncode == 2
    assert "k2" in out.stderr and "invalid settings" in out.stderr


def test_produce_then_search(consumer: DocumentConsumer, tmp_path: Path) -> None:
    s = consumer.settings
    events = tmp_path / "events.jsonl"
    lines = [
        {
            "op": "upsert",
            "id": "c1",
            "version": 1,
            "ts": 1,
            "doc": {"title": "西湖醋鱼", "body": "杭州名菜"},
        },
        {
            "op": "upsert",
            "id": "c2",
            "version": 1,
            "ts": 1,
            "doc": {"title": "龙井虾仁", "body": "杭州名菜 龙井茶"},
        },
    ]
    events.write_text(
        "\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\nnot json\n", "utf-8"
    )
    out = rtindex("produce", "documents", str(events), settings=s)
    assert out.returncode == 0, out.stderr
    assert "published 3 events" in out.stderr
    wait_until(
        lambda: sum(consumer.totals.events.values()) >= 3, message=lambda: str(consumer.totals)
    )
    assert consumer.totals.events["invalid"] == 1

    out = rtindex("search", "龙井", "-k", "5", settings=s)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert [h["id"] for h in result["hits"]] == ["c2"]
    assert result["total"] == 1
