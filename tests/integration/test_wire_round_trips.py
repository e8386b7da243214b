"""The query path's round trips on a real server: replies as redis-py gives them, an
error reply or a Redis restart leaves no connection out of step."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import redis
import redis.exceptions as rx

from rtindex.query.wire import Wire
from rtindex.runtime.servers import RedisServer

pytestmark = pytest.mark.integration


def test_replies_match_redis_py(redis_client: redis.Redis, unique_id: str) -> None:
    k = f"wire:{unique_id}"
    redis_client.set(f"{k}:s", b"\x00\x01binary\r\n")
    redis_client.hset(f"{k}:h", mapping={"a": "1", "b": "2"})
    wire = Wire(redis_client)
    cmds = [
        ("GET", f"{k}:s"),
        ("GET", f"{k}:missing"),
        ("HMGET", f"{k}:h", "a", "zz", "b"),
        ("HGET", f"{k}:h", "b"),
    ]
    pipe = redis_client.pipeline(transaction=False)
    pipe.get(f"{k}:s").get(f"{k}:missing").hmget(f"{k}:h", ["a", "zz", "b"]).hget(f"{k}:h", "b")
    assert (
        wire.run(cmds) == pipe.execute() == [b"\x00\x01binary\r\n", None, [b"1", None, b"2"], b"2"]
    )
    assert wire.run([]) == []
    wire.close()


def test_an_error_reply_raises_and_the_next_batch_reads_its_own_replies(
    redis_client: redis.Redis, unique_id: str
) -> None:
    k = f"wire:{unique_id}"
    redis_client.set(f"{k}:s", b"v")
    redis_client.hset(f"{k}:h", "a", "1")
    wire = Wire(redis_client)
    # GET on a hash is an error reply, with more replies behind it on the connection.
    with pytest.raises(rx.ResponseError, match="WRONGTYPE"):
        wire.run([("GET", f"{k}:s"), ("GET", f"{k}:h"), ("GET", f"{k}:s")])
    for _ in range(3):
        assert wire.run([("GET", f"{k}:s")]) == [b"v"]


def test_a_restarted_redis_is_reconnected_to(tmp_path: Path) -> None:
    server = RedisServer.start(data_dir=tmp_path / "redis")
    try:
        client = redis.Redis.from_url(server.url)
        client.set("k", b"before")
        wire = Wire(client)
        assert wire.run([("GET", "k")]) == [b"before"]
        server.stop()
        with pytest.raises(rx.ConnectionError):
            wire.run([("GET", "k")])
        server.restart()
        client.set("k", b"after")
        assert wire.run([("GET", "k")]) == [b"after"]
        client.close()
        wire.close()
    finally:
        server.stop()


def test_all_idle_connections_broken_still_one_call_succeeds(tmp_path: Path) -> None:
    server = RedisServer.start(data_dir=tmp_path / "redis")
    try:
        client = redis.Redis.from_url(server.url)
        client.set("k", b"v")
        wire = Wire(client)
        # Three callers at once: three connections, idle afterwards in the free list.
        start = threading.Barrier(3)

        def hold() -> None:
            start.wait()
            wire.run([("BLPOP", "nothing", "0.3")])

        callers = [threading.Thread(target=hold) for _ in range(3)]
        for t in callers:
            t.start()
        for t in callers:
            t.join()
        assert len(wire._free) == 3
        # Redis closes every client connection (as on a restart or an idle timeout).
        client.client_kill_filter(_type="normal", skipme=True)
        assert wire.run([("GET", "k")]) == [b"v"]
        client.close()
        wire.close()
    finally:
        server.stop()
