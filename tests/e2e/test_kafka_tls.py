"""Kafka security settings reach every client, proven over a real TLS connection.

Tansu (the embedded broker) speaks plaintext only, so a TLS terminator sits in front of
it: the broker advertises the terminator's address, and every rtindex client — the admin
that creates topics, the producer, the consumer, the DLQ producer — must use the
``kafka.security`` settings (SSL, the test CA, hostname check) to reach it at all: once
given as settings, once as environment variables to the ``rtindex`` commands.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import trustme
from helpers import running, wait_until
from kafka import KafkaConsumer
from processes import committed, process_env, publish

from rtindex.consumers.documents import DocumentConsumer
from rtindex.consumers.kafka_config import kafka_client_config
from rtindex.consumers.topics import ensure_topics
from rtindex.indexer.keys import Keys
from rtindex.runtime.servers import ManagedProcess, free_port, tansu_binary
from rtindex.settings import Settings


class TlsTerminator:
    """Accepts TLS on ``port`` and pipes each connection to a plaintext ``target``."""

    def __init__(self, port: int, target: int, context: ssl.SSLContext) -> None:
        self.port, self.target, self.context = port, target, context
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.connections = 0
        self.thread = threading.Thread(target=self._run, name="tls-terminator", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port, ssl=self.context)
        )
        self.ready.set()
        try:
            self.loop.run_forever()
        finally:
            server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, ssl.SSLError):
                pass  # the other side went away: close both
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def __enter__(self) -> TlsTerminator:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture
def tls_kafka(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    plain, tls = free_port(), free_port()
    argv = [tansu_binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{plain}"]
    argv += ["--advertised-listener-url", f"tcp://127.0.0.1:{tls}"]
    argv += ["--storage-engine", "memory://tansu/"]
    broker = ManagedProcess(argv, tmp_path / "tansu.log")
    try:
        with TlsTerminator(tls, plain, context) as terminator:
            wait_until(lambda: _probe(plain), timeout=30)
            yield f"127.0.0.1:{tls}", tmp_path / "ca.pem"
            # Admin, producers, consumers: every client made its own TLS connections.
            assert terminator.connections >= 4, terminator.connections
    finally:
        broker.stop()


def _probe(port: int) -> bool:
    # The plaintext listener accepting connections means the broker is up (a Kafka-level
    # probe would follow the advertised TLS address in plaintext, and fail).
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_every_client_goes_through_tls(settings: Settings, tls_kafka: tuple[str, Path]) -> None:
    bootstrap, ca = tls_kafka
    security = {"security_protocol": "SSL", "ssl_cafile": str(ca), "ssl_check_hostname": True}
    tls = settings.with_overrides({"kafka": {"bootstrap": bootstrap, "security": security}})
    ensure_topics(tls, partitions=2)  # the admin client
    now = int(time.time() * 1000)
    docs = [
        json.dumps(
            {"op": "upsert", "id": f"t{i}", "version": 1, "ts": now, "doc": {"title": "x"}}
        ).encode()
        for i in range(10)
    ]
    publish(tls, tls.kafka.documents_topic, [*docs, b"not json"], key_field="id")  # producer
    with running(DocumentConsumer(tls)) as consumer:  # consumer + DLQ producer
        wait_until(lambda: sum(consumer.totals.events.values()) == 11, timeout=60)
        assert consumer.totals.events["applied"] == 10
        assert consumer.totals.events["invalid"] == 1
    dlq = KafkaConsumer(
        tls.kafka.dlq_topic,
        **kafka_client_config(tls, auto_offset_reset="earliest", consumer_timeout_ms=10_000),
    )
    try:
        dead = list(dlq)
    finally:
        dlq.close()
    assert [r.value for r in dead] == [b"not json"]


def test_security_from_environment_variables_alone(
    settings: Settings, tls_kafka: tuple[str, Path], tmp_path: Path
) -> None:
    """``rtindex topics``, ``rtindex produce`` and ``rtindex consume documents`` with the
    Kafka security settings in RTINDEX_KAFKA__SECURITY__* variables and nowhere else:
    the admin, the producer, the consumer and the DLQ producer all get through TLS."""
    bootstrap, ca = tls_kafka
    ns = settings.redis.namespace
    env = process_env(settings, ns) | {
        "RTINDEX_KAFKA_BOOTSTRAP": bootstrap,
        "RTINDEX_KAFKA__DOCUMENTS_GROUP": settings.kafka.documents_group,
        "RTINDEX_KAFKA__SECURITY__SECURITY_PROTOCOL": "SSL",
        "RTINDEX_KAFKA__SECURITY__SSL_CAFILE": str(ca),
        "RTINDEX_KAFKA__SECURITY__SSL_CHECK_HOSTNAME": "true",
    }
    rtindex = [sys.executable, "-m", "rtindex"]

    def run(*args: str) -> None:
        done = subprocess.run([*rtindex, *args], env=env, capture_output=True, timeout=120)
        assert done.returncode == 0, (args, done.stderr.decode(errors="replace")[-2000:])

    run("topics", "--partitions", "2")  # the admin client
    now = int(time.time() * 1000)
    lines = [
        json.dumps({"op": "upsert", "id": f"v{i}", "version": 1, "ts": now, "doc": {"title": "x"}})
        for i in range(8)
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join([*lines, "not json"]) + "\n")
    run("produce", "documents", str(events))  # the producer
    # The test reads back with the same settings, built the same way.
    tls = settings.with_overrides(
        {
            "kafka": {
                "bootstrap": bootstrap,
                "security": {"security_protocol": "SSL", "ssl_cafile": str(ca)},
            }
        }
    )
    argv = [*rtindex, "consume", "documents", "--metrics-port", "0"]
    consumer = subprocess.Popen(argv, env=env)  # the consumer and its DLQ producer
    client = redis.Redis.from_url(settings.redis.url)
    keys = Keys(ns, settings.index.shards)
    try:
        wait_until(
            lambda: sum(committed(tls, settings.kafka.documents_group).values()) == 9,
            timeout=90,
            message=lambda: f"committed {committed(tls, settings.kafka.documents_group)}",
        )
        live = sum(int(client.hget(keys.stats(s), "N") or 0) for s in range(keys.shards))
        assert live == 8
    finally:
        consumer.send_signal(signal.SIGTERM)
        assert consumer.wait(timeout=30) == 0
        client.close()
    dlq = KafkaConsumer(
        tls.kafka.dlq_topic,
        **kafka_client_config(tls, auto_offset_reset="earliest", consumer_timeout_ms=10_000),
    )
    try:
        assert [r.value for r in dlq] == [b"not json"]
    finally:
        dlq.close()
