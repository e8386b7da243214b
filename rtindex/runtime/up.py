"""``rtindex up``: the whole system on one machine, in the foreground.

Order of start: embedded servers (unless RTINDEX_KAFKA_BOOTSTRAP / RTINDEX_REDIS_URL name
existing ones) -> topics -> the document and behavior consumers and the query service as
supervised child processes -> the demo corpus (once per data dir and namespace). Order of
stop, on Ctrl-C or SIGTERM: children first (so the consumers can finish their batch and
commit while Kafka and Redis are still there), then the servers.

The embedded Tansu broker keeps everything in memory, so restarting ``rtindex up`` loses
topics and committed offsets while Redis keeps the index. That is safe: events carry
versions and applying them is idempotent, so nothing already indexed is harmed and
nothing stale can come back; only events that were never consumed are gone. The behavior
consumer finds the Kafka offsets it recorded in Redis naming records that no longer exist
and drops them, so the new topic's events are not mistaken for redeliveries.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import quote, urlsplit, urlunsplit

import orjson
import redis
from kafka.errors import KafkaError

from rtindex.consumers.publish import make_producer, publish_lines
from rtindex.consumers.topics import ensure_topics
from rtindex.indexer.connection import connect
from rtindex.runtime.servers import (
    KafkaServer,
    ManagedProcess,
    RedisServer,
    ServerStartError,
    free_port,
    log_tail,
    port_in_use,
)
from rtindex.settings import KafkaSettings, RedisSettings, Settings

log = logging.getLogger("rtindex.up")

HOST = "127.0.0.1"
CHILD_STOP_GRACE_S = 20.0
DEMO_STOP_GRACE_S = 30.0
EXAMPLE_QUERY = "经济"  # frequent in the demo corpus (People's Daily, January 1998)
# A child that ran this long before dying counts as healthy: its backoff starts over.
HEALTHY_RUN_S = 30.0
MAX_BACKOFF_S = 30.0


def _external(env_name: str, value: str, default: str) -> bool:
    """An existing server is named by the contract's variable (or a config file's non-default)."""
    return bool(os.environ.get(env_name)) or value != default


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}"
    netloc += f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=netloc))


def _existing_redis_answers(settings: Settings) -> bool:
    client = connect(settings, pool_size=1, connect_timeout_s=5.0, timeout_s=5.0)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
        return False
    finally:
        client.close()


def _say(line: str) -> None:
    print(line, flush=True)


# ---------------------------------------------------------------------------------------
# supervised children


@dataclass
class Child:
    """One long-running child process, restarted with exponential backoff when it dies."""

    name: str
    argv: list[str]
    env: dict[str, str]
    proc: ManagedProcess | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    restarts: int = 0

    def start(self) -> None:
        # Output goes to our console: the foreground system shows all its logs, like compose.
        self.proc = ManagedProcess(self.argv, None, env=self.env)
        self.started_at = time.monotonic()
        self.restart_at = None
        log.info("started %s (pid %d)", self.name, self.proc.pid)

    def supervise(self, now: float) -> None:
        if self.proc is not None:
            code = self.proc.poll()
            if code is None:
                return
            self.proc.stop()  # reaps it (and anything left in its process group)
            self.proc = None
            if now - self.started_at >= HEALTHY_RUN_S:
                self.failures = 0
            delay = min(MAX_BACKOFF_S, 0.5 * 2**self.failures)
            self.failures += 1
            self.restart_at = now + delay
            log.error("%s exited with code %s; restarting in %.1f s", self.name, code, delay)
        if self.restart_at is not None and now >= self.restart_at:
            self.restarts += 1
            self.start()

    def terminate(self) -> None:
        if self.proc is not None:
            self.proc.terminate()

    def stop(self) -> None:
        if self.proc is not None:
            code = self.proc.stop(grace_s=CHILD_STOP_GRACE_S)
            log.info("%s stopped (exit code %s)", self.name, code)
            self.proc = None


def _children(settings: Settings, api_port: int, metrics_ports: tuple[int, int]) -> list[Child]:
    env = dict(os.environ)
    env.update(
        RTINDEX_KAFKA_BOOTSTRAP=settings.kafka.bootstrap,
        RTINDEX_REDIS_URL=settings.redis.url,
        PYTHONUNBUFFERED="1",
    )
    py = [sys.executable, "-m", "rtindex"]
    docs, behaviors = (["--metrics-port", str(p)] for p in metrics_ports)
    return [
        Child("document consumer", [*py, "consume", "documents", *docs], env),
        Child("behavior consumer", [*py, "consume", "behaviors", *behaviors], env),
        Child("query service", [*py, "serve", "--host", HOST, "--port", str(api_port)], env),
    ]


def _metrics_ports(settings: Settings) -> tuple[int, int]:
    """The settings' consumer metrics ports, or free ones where those are taken."""

    def pick(port: int) -> int:
        return port if port and not port_in_use(port, HOST) else free_port()

    return pick(settings.ops.metrics_port_documents), pick(settings.ops.metrics_port_behaviors)


# ---------------------------------------------------------------------------------------
# demo corpus


def _demo_marker(data_dir: Path, settings: Settings) -> Path:
    # Per namespace: another namespace is another index that has not seen the demo.
    return data_dir / f"demo-loaded.{settings.redis.namespace}.json"


class DemoLoader(threading.Thread):
    """Publishes the demo events in the background (the corpus takes seconds to prepare and
    the supervisor must keep watching the children meanwhile), once per data dir and
    namespace: a marker file, written only after a complete load, records it."""

    def __init__(
        self, settings: Settings, data_dir: Path, limit: int, stop: threading.Event
    ) -> None:
        super().__init__(name="demo-loader", daemon=True)
        self.settings = settings
        self.marker = _demo_marker(data_dir, settings)
        self.limit = limit
        self.stop = stop

    def run(self) -> None:
        try:
            self._load()
        except Exception:
            # The system runs fine without the demo: report it loudly and carry on.
            log.exception("loading the demo corpus failed (no marker written; retried next start)")

    def _load(self) -> None:
        from rtindex.demo import demo_events

        topic = self.settings.kafka.documents_topic
        interrupted = False

        def lines() -> Iterator[bytes]:
            nonlocal interrupted
            for event in demo_events(self.limit):
                if self.stop.is_set():
                    interrupted = True
                    return
                yield orjson.dumps(event)

        producer = make_producer(self.settings)
        try:
            count = publish_lines(producer, topic, lines(), key_field="id")
        finally:
            producer.close()
        if interrupted:
            log.warning("stopped while loading the demo: %d events published, no marker", count)
            return
        at_ms = time.time_ns() // 1_000_000
        record = {"events": count, "limit": self.limit, "topic": topic, "at_ms": at_ms}
        self.marker.write_text(json.dumps(record))
        _say(f"  demo       {count} People's Daily (1998) documents published to {topic}")


# ---------------------------------------------------------------------------------------
# the run


def _api_ready(api_port: int) -> bool:
    # /healthz, not /readyz: while the demo corpus is being indexed the consumers lag and
    # /readyz rightly answers 503, but the operator can already use the service.
    try:
        with urllib.request.urlopen(f"http://{HOST}:{api_port}/healthz", timeout=0.5) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False  # not listening yet, or not ready (readyz answers 503)


def _ports_taken(checks: Iterable[tuple[str, int, str]]) -> str | None:
    for what, port, flag in checks:
        if port_in_use(port, HOST):
            return (
                f"rtindex up: {what} port {port} on {HOST} is already in use"
                f" (choose another with {flag})"
            )
    return None


def _install_signals(stop: threading.Event) -> Callable[[], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for s, h in previous.items():
            signal.signal(s, h)

    return restore


def run_up(
    settings: Settings,
    data_dir: Path,
    api_port: int,
    kafka_port: int,
    redis_port: int,
    demo: bool,
    demo_limit: int,
) -> int:
    data_dir = data_dir.resolve()
    embed_kafka = not _external(
        "RTINDEX_KAFKA_BOOTSTRAP", settings.kafka.bootstrap, KafkaSettings().bootstrap
    )
    embed_redis = not _external("RTINDEX_REDIS_URL", settings.redis.url, RedisSettings().url)

    checks = [("HTTP API", api_port, "--api-port")]
    if embed_kafka:
        checks.append(("Kafka", kafka_port, "--kafka-port"))
    if embed_redis:
        checks.append(("Redis", redis_port, "--redis-port"))
    problem = _ports_taken(checks)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    data_dir.mkdir(parents=True, exist_ok=True)

    stop = threading.Event()
    restore_signals = _install_signals(stop)
    kafka: KafkaServer | None = None
    redis_server: RedisServer | None = None
    children: list[Child] = []
    demo_loader: DemoLoader | None = None
    try:
        # -- servers ---------------------------------------------------------------------
        if embed_kafka:
            kafka = KafkaServer.start(kafka_port, log_dir=data_dir / "logs")
            settings = settings.with_overrides({"kafka": {"bootstrap": kafka.bootstrap}})
            _say(
                f"  Kafka      {kafka.bootstrap}  (embedded Tansu, in memory; log {kafka.log_path})"
            )
        else:
            _say(f"  Kafka      {settings.kafka.bootstrap}  (existing)")
        if embed_redis:
            redis_server = RedisServer.start(redis_port, data_dir=data_dir / "redis")
            settings = settings.with_overrides({"redis": {"url": redis_server.url}})
            _say(
                f"  Redis      {redis_server.url}  (embedded Valkey, data in {data_dir / 'redis'})"
            )
        else:
            if not _existing_redis_answers(settings):
                print(
                    f"rtindex up: no answer from Redis at {_redact(settings.redis.url)}",
                    file=sys.stderr,
                )
                return 1
            _say(f"  Redis      {_redact(settings.redis.url)}  (existing)")
        ensure_topics(settings)
        if stop.is_set():
            return 0

        # -- children --------------------------------------------------------------------
        metrics_ports = _metrics_ports(settings)
        children = _children(settings, api_port, metrics_ports)
        for child in children:
            child.start()
        if demo:
            marker = _demo_marker(data_dir, settings)
            if marker.exists():
                _say(f"  demo       already loaded (delete {marker} to load it again)")
            else:
                demo_loader = DemoLoader(settings, data_dir, demo_limit, stop)
                demo_loader.start()
        return _supervise(
            children, [s for s in (kafka, redis_server) if s], api_port, metrics_ports, stop
        )
    except (ServerStartError, KafkaError, redis.RedisError) as e:
        print(f"rtindex up: {e}", file=sys.stderr)
        return 1
    finally:
        stop.set()
        if demo_loader is not None:
            # It stops at the next event and flushes what it sent: it needs Kafka, so first.
            demo_loader.join(timeout=DEMO_STOP_GRACE_S)
            if demo_loader.is_alive():
                log.warning("the demo loader did not stop within %.0f s", DEMO_STOP_GRACE_S)
        for child in children:
            child.terminate()  # all at once: they shut down in parallel
        for child in children:
            child.stop()
        for server in (redis_server, kafka):
            if server is not None:
                server.stop()
        restore_signals()
        log.info("stopped")


def _supervise(
    children: list[Child],
    servers: list[KafkaServer | RedisServer],
    api_port: int,
    metrics_ports: tuple[int, int],
    stop: threading.Event,
) -> int:
    """Keep the children running until a signal; a dead embedded server ends the run (code 1)."""
    announced = False
    while not stop.wait(0.2):
        for server in servers:
            if not server.running():
                # Not restarted: a dying server is a bug or a resource problem to look at, and
                # a restarted in-memory broker would silently have lost its events.
                log.error(
                    "embedded %s exited; stopping. Log %s:\n%s",
                    server.what,
                    server.log_path,
                    log_tail(server.log_path),
                )
                return 1
        now = time.monotonic()
        for child in children:
            child.supervise(now)
        if not announced and _api_ready(api_port):
            announced = True
            base = f"http://{HOST}:{api_port}"
            _say(f"  HTTP API   {base}")
            # URLs must be percent-encoded: raw UTF-8 in a request line is a 400.
            _say(f"  try        curl -G {base}/search --data-urlencode 'q={EXAMPLE_QUERY}' -d k=5")
            _say(f"             {base}/search?q={quote(EXAMPLE_QUERY)}&k=5")
            _say(f"  behaviors  rtindex produce behaviors FILE, then {base}/similar?item_id=…,")
            _say(f"             {base}/recommend?user_id=…, {base}/trending")
            _say(f"  dashboard  {base}/dashboard  (numbers as JSON: {base}/stats)")
            _say(
                f"  metrics    {base}/metrics, consumers http://{HOST}:{metrics_ports[0]}/metrics"
                f" and http://{HOST}:{metrics_ports[1]}/metrics"
            )
            _say("  Ctrl-C to stop.")
    log.info("stopping")
    return 0
