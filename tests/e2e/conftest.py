"""Fixtures for end-to-end tests: a real document consumer and a real HTTP query service."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from helpers import wait_until

from rtindex.consumers.behaviors import BehaviorConsumer
from rtindex.consumers.documents import DocumentConsumer
from rtindex.consumers.pipeline import PipelinedConsumer
from rtindex.consumers.topics import ensure_topics
from rtindex.query.server import create_app
from rtindex.runtime.servers import free_port
from rtindex.settings import Settings


@pytest.fixture
def topics(settings: Settings) -> Settings:
    ensure_topics(settings, partitions=3)
    return settings


def running(c: PipelinedConsumer[Any]) -> Iterator[None]:
    """Run a consumer in a thread until the test ends; then it must stop cleanly."""
    stop = threading.Event()
    t = threading.Thread(target=c.run, args=(stop,), name=f"{c.kind}-consumer", daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(timeout=30)
        c.close()
        assert not t.is_alive(), "the consumer did not stop"


@pytest.fixture
def consumer(topics: Settings) -> Iterator[DocumentConsumer]:
    """The document consumer, running in a thread until the test ends."""
    c = DocumentConsumer(topics)
    for _ in running(c):
        yield c


@pytest.fixture
def behavior_consumer(topics: Settings) -> Iterator[BehaviorConsumer]:
    """The behavior consumer, running in a thread until the test ends."""
    c = BehaviorConsumer(topics)
    for _ in running(c):
        yield c


@pytest.fixture
def api(settings: Settings) -> Iterator[httpx.Client]:
    """The query service on a free loopback port, over real HTTP."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    t = threading.Thread(target=server.run, name="query-service", daemon=True)
    t.start()
    wait_until(lambda: server.started, timeout=20, message="query service did not start")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        yield client
    server.should_exit = True
    t.join(timeout=10)
