"""The embedded servers: start, answer, stop; clear errors; Redis restarts keep data."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import redis

from rtindex.runtime.servers import (
    KafkaServer,
    PortInUseError,
    RedisServer,
    free_port,
    kafka_answers,
    port_in_use,
    redis_answers,
)

pytestmark = pytest.mark.integration


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_kafka_starts_answers_and_stops() -> None:
    server = KafkaServer.start()
    pid = server.pid
    assert pid is not None
    try:
        assert kafka_answers(server.bootstrap)
        assert server.bootstrap == f"127.0.0.1:{server.port}"
    finally:
        server.stop()
    assert not _pid_alive(pid)
    assert not port_in_use(server.port)


def test_redis_starts_answers_and_stops() -> None:
    with RedisServer.start() as server:
        pid = server.pid
        assert pid is not None
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        client.close()
    assert not _pid_alive(pid)
    assert not port_in_use(server.port)


def test_redis_password_is_required_and_in_the_url() -> None:
    with RedisServer.start(password="s3cret/with:odd@chars") as server:
        assert redis_answers(server.url)
        bare = redis.Redis(host=server.host, port=server.port)
        with pytest.raises(redis.AuthenticationError):
            bare.ping()
        bare.close()


def test_port_taken_is_a_clear_error() -> None:
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        with pytest.raises(PortInUseError, match=f"Redis: port {port} on 127.0.0.1 is already"):
            RedisServer.start(port)
        with pytest.raises(PortInUseError, match=f"Kafka: port {port} on 127.0.0.1 is already"):
            KafkaServer.start(port)


def test_redis_restart_keeps_data_with_a_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "redis"
    with RedisServer.start(data_dir=data_dir) as server:
        port, first_pid = server.port, server.pid
        client = redis.Redis.from_url(server.url)
        client.set(b"k", b"v")
        client.zadd(b"z", {b"a": 1.5})
        client.close()

        server.restart()

        assert server.port == port and server.pid != first_pid
        client = redis.Redis.from_url(server.url)
        assert client.get(b"k") == b"v"
        assert client.zscore(b"z", b"a") == 1.5
        client.close()
    assert (data_dir / "appendonlydir").is_dir()


def test_redis_without_data_dir_forgets_on_restart() -> None:
    with RedisServer.start() as server:
        client = redis.Redis.from_url(server.url)
        client.set(b"k", b"v")
        client.close()
        server.restart()
        client = redis.Redis.from_url(server.url)
        assert client.get(b"k") is None
        client.close()
