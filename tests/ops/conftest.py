"""A running local stack for the compose checks: the real processes the compose file runs
(`rtindex topics`, both consumers, `rtindex serve`), on the session's servers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from helpers import wait_until
from processes import consumer_process, process_env, publish

from rtindex.runtime.servers import free_port
from rtindex.settings import Settings


def _events(now: int) -> tuple[list[bytes], list[bytes]]:
    docs = [
        {
            "op": "upsert",
            "id": f"d{i}",
            "version": 1,
            "ts": now,
            "doc": {"title": f"北京 烤鸭 {i}", "body": "测试 文档", "category": "餐饮"},
        }
        for i in range(20)
    ]
    docs += [docs[0], {"op": "delete", "id": "d1", "version": 0, "ts": now}]  # duplicate, stale
    clicks = [
        {"event_id": f"e{i}", "user_id": f"u{i % 3}", "item_id": f"d{i % 5}", "action": "click"}
        | {"ts": now + i}
        for i in range(30)
    ]
    return (
        [json.dumps(d, ensure_ascii=False).encode() for d in docs] + [b"not json"],
        [json.dumps(c).encode() for c in clicks] + [b'{"bad": 1}'],
    )


def _metrics(port: int) -> str:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return ""


@pytest.fixture
def live_metrics_text(settings: Settings) -> Iterator[str]:
    """The /metrics text of the query service and both consumers, concatenated, after
    good, duplicate, stale and invalid events went through and every endpoint was called."""
    env = process_env(settings, settings.redis.namespace)
    rt = [sys.executable, "-m", "rtindex"]
    subprocess.run([*rt, "topics", "--partitions", "2"], env=env, check=True, timeout=120)
    ports = {"documents": free_port(), "behaviors": free_port()}
    api_port = free_port()
    ns, k = settings.redis.namespace, settings.kafka
    procs = [
        consumer_process(settings, ns, k.documents_group, metrics_port=ports["documents"]),
        consumer_process(
            settings, ns, k.behaviors_group, stream="behaviors", metrics_port=ports["behaviors"]
        ),
        subprocess.Popen([*rt, "serve", "--host", "127.0.0.1", "--port", str(api_port)], env=env),
    ]
    try:
        docs, clicks = _events(int(time.time() * 1000))
        publish(settings, k.documents_topic, docs, key_field="id")
        publish(settings, k.behaviors_topic, clicks, key_field="user_id")
        # Each consumer counted every message it was sent (applied, stale, duplicate, invalid).
        for stream, n in (("documents", len(docs)), ("behaviors", len(clicks))):
            topic = getattr(k, f"{stream}_topic")
            wait_until(
                lambda port=ports[stream], topic=topic, n=n: _counted(_metrics(port), topic) >= n,
                timeout=90,
                interval=0.2,
                message=f"the {stream} consumer did not count {n} events",
            )
        base = f"http://127.0.0.1:{api_port}"
        with httpx.Client(base_url=base, timeout=10) as api:
            wait_until(lambda: _ok(api, "/healthz"), timeout=60, message="no query service")
            for path, params in [
                ("/search", {"q": "北京", "k": "3"}),
                ("/search", {"q": ""}),  # a 422
                ("/similar", {"item_id": "d1"}),
                ("/recommend", {"user_id": "u1"}),
                ("/trending", {}),
            ]:
                api.get(path, params=params)
            yield "\n".join(
                [_metrics(ports["documents"]), _metrics(ports["behaviors"]), _metrics(api_port)]
            )
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _ok(api: httpx.Client, path: str) -> bool:
    try:
        return api.get(path).status_code == 200
    except httpx.HTTPError:
        return False


def _counted(text: str, topic: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("rtindex_consumer_events_total{") and f'topic="{topic}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total
