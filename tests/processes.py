"""Consumer processes for crash tests: start one as `rtindex consume`, drain a topic."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from helpers import wait_until
from kafka.admin import KafkaAdminClient

from rtindex.consumers.kafka_config import kafka_client_config
from rtindex.consumers.publish import make_producer
from rtindex.settings import Settings


def publish(
    settings: Settings, topic: str, values: list[bytes], key_field: str | None = None
) -> dict[int, int]:
    """Publish ``values`` (keyed by their JSON ``key_field``, when they have one); return
    the end offset of every partition written."""
    producer = make_producer(settings)
    ends: dict[int, int] = {}
    try:
        futures = []
        for v in values:
            key = None
            if key_field is not None:
                try:
                    key = str(json.loads(v)[key_field]).encode()
                except (ValueError, KeyError, TypeError):
                    key = None  # a bad message has no key: it must still reach the DLQ
            futures.append(producer.send(topic, key=key, value=v))
        producer.flush()
        for f in futures:
            md = f.get(timeout=10)
            ends[md.partition] = max(ends.get(md.partition, 0), md.offset + 1)
    finally:
        producer.close()
    return ends


def committed(settings: Settings, group: str) -> dict[int, int]:
    """The group's committed offset per partition (what a restart resumes from)."""
    admin = KafkaAdminClient(**kafka_client_config(settings))
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    return {tp.partition: om.offset for tp, om in offsets.items() if om.offset >= 0}


def process_env(settings: Settings, namespace: str) -> dict[str, str]:
    """The environment of an `rtindex` process on the test's servers, topics and namespace
    (nothing of the caller's own RTINDEX_* settings leaks in)."""
    k = settings.kafka
    env = {name: v for name, v in os.environ.items() if not name.startswith("RTINDEX_")}
    return env | {
        "RTINDEX_KAFKA_BOOTSTRAP": k.bootstrap,
        "RTINDEX_REDIS_URL": settings.redis.url,
        "RTINDEX_NAMESPACE": namespace,
        "RTINDEX_KAFKA__DOCUMENTS_TOPIC": k.documents_topic,
        "RTINDEX_KAFKA__BEHAVIORS_TOPIC": k.behaviors_topic,
        "RTINDEX_KAFKA__DLQ_TOPIC": k.dlq_topic,
        "RTINDEX_LOG_LEVEL": "WARNING",
    }


def consumer_process(
    settings: Settings,
    namespace: str,
    group: str,
    failpoints: str = "",
    *,
    stream: str = "documents",
    max_batch: int = 40,
    metrics_port: int = 0,
    env_extra: dict[str, str] | None = None,
    capture_stderr: bool = False,
) -> subprocess.Popen[bytes]:
    """`rtindex consume <stream>` against the test's servers and topics (its /metrics on
    ``metrics_port``; 0: any free port, so that parallel consumers never collide)."""
    env = process_env(settings, namespace)
    env |= {
        f"RTINDEX_KAFKA__{stream.upper()}_GROUP": group,
        "RTINDEX_KAFKA__MAX_BATCH": str(max_batch),
    }
    if failpoints:
        env["RTINDEX_FAILPOINTS"] = failpoints
    env |= env_extra or {}
    argv = [sys.executable, "-m", "rtindex", "consume", stream, "--metrics-port", str(metrics_port)]
    # A captured stderr must be read (communicate()), or a chatty consumer blocks on it.
    return subprocess.Popen(argv, env=env, stderr=subprocess.PIPE if capture_stderr else None)


def drain(
    settings: Settings,
    namespace: str,
    group: str,
    ends: dict[int, int],
    *,
    stream: str = "documents",
) -> None:
    """Run a consumer until its group has committed every partition's end, then SIGTERM it."""
    proc = consumer_process(settings, namespace, group, stream=stream)
    try:
        wait_until(
            lambda: committed(settings, group) == ends,
            timeout=120,
            interval=0.2,
            message=lambda: f"committed {committed(settings, group)} of {ends}",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, "the consumer did not stop cleanly on SIGTERM"
