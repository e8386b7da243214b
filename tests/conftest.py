"""Shared fixtures: real Kafka-protocol (Tansu) and Redis-protocol (Valkey) servers.

The servers start once per test session on free loopback ports; each test gets its own
namespace, topic names and consumer groups, so tests never see each other's data.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from rtindex.consumers.topics import ensure_topics
from rtindex.query.server import create_app
from rtindex.runtime.servers import KafkaServer, RedisServer
from rtindex.settings import Settings

# Make `from helpers import wait_until` work from every test directory.
sys.path.insert(0, str(Path(__file__).parent))
from helpers import serving


@pytest.fixture(scope="session")
def kafka_server() -> Iterator[KafkaServer]:
    with KafkaServer.start() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer.start() as server:
        yield server


@pytest.fixture
def unique_id() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def settings(kafka_server: KafkaServer, redis_server: RedisServer, unique_id: str) -> Settings:
    """Settings pointed at the session's servers, with names no other test uses."""
    return Settings().with_overrides(
        {
            "kafka": {
                "bootstrap": kafka_server.bootstrap,
                "documents_topic": f"rtindex.documents.{unique_id}",
                "behaviors_topic": f"rtindex.behaviors.{unique_id}",
                "dlq_topic": f"rtindex.dlq.{unique_id}",
                "documents_group": f"rtindex-documents-{unique_id}",
                "behaviors_group": f"rtindex-behaviors-{unique_id}",
                "client_id": f"rtindex-test-{unique_id}",
            },
            "redis": {"url": redis_server.url, "namespace": f"t{unique_id}"},
        }
    )


@pytest.fixture
def redis_client(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis.url, decode_responses=False)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def topics(settings: Settings) -> Settings:
    ensure_topics(settings, partitions=3)
    return settings


@pytest.fixture
def api(settings: Settings) -> Iterator[httpx.Client]:
    """The query service on a free loopback port, over real HTTP."""
    with (
        serving(create_app(settings)) as base_url,
        httpx.Client(base_url=base_url, timeout=10) as c,
    ):
        yield c
