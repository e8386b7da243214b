"""A thin path to Redis for the query's round trips: commands packed once, sent in one
write, replies read straight off the connection.

redis-py's pipeline costs ~150 µs of Python per round trip on top of the network (its
command stack, the pool's lock, a callback per reply); a query makes three, and that was
half of its time (BENCHMARKS.md §9). Here a round trip is a list of commands in, a list
of raw replies out (bytes, lists of bytes, None, ints: RESP2 without callbacks), on
connections made like the client's pool makes them (so the URL's password, ACL user, TLS
and database apply) but kept in a free list of their own: a thread takes one, uses it, puts
it back. Reads only: a batch that fails on its connection is retried once on a new one
(connections left broken by a Redis restart are all dropped), then the error goes up
(a 503).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
import redis.exceptions as rx

Arg = bytes | str | int
Command = Sequence[Arg]


def pack(commands: Sequence[Command]) -> bytes:
    """The RESP encoding of ``commands`` (arrays of bulk strings), in one buffer."""
    out: list[bytes] = []
    for command in commands:
        out.append(b"*%d\r\n" % len(command))
        for arg in command:
            b = arg if isinstance(arg, bytes) else str(arg).encode()
            out.append(b"$%d\r\n%b\r\n" % (len(b), b))
    return b"".join(out)


class Wire:
    """Round trips of read commands. Thread-safe: each call holds its own connection."""

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        # list.pop and list.append are atomic: a free list without a lock. (Any: redis-py
        # leaves the connection's methods untyped.)
        self._free: list[Any] = []

    def run(self, commands: Sequence[Command]) -> list[Any]:
        """The replies to ``commands``, sent in one write; an error reply raises. No
        commands, no round trip."""
        if not commands:
            return []
        payload = pack(commands)
        try:
            return self._round_trip(payload, len(commands))
        except (rx.ConnectionError, rx.TimeoutError):
            # The idle connections are likely as broken as this one (Redis restarted, or
            # closed them as idle): drop them all; once more, on a new connection.
            self.close()
            return self._round_trip(payload, len(commands))

    def _round_trip(self, payload: bytes, n: int) -> list[Any]:
        conn: Any
        try:
            conn = self._free.pop()
        except IndexError:
            # Made as the pool makes its own (URL options, credentials, TLS), but not
            # counted against its limit: the pool serves the other endpoints.
            conn = self._pool.connection_class(**self._pool.connection_kwargs)
        try:
            conn.send_packed_command([payload], check_health=False)
            replies = [conn.read_response() for _ in range(n)]
        except BaseException:
            # Replies may be left unread (an error reply mid-batch, a timeout): the
            # connection's stream is out of step, so it is closed, never reused.
            conn.disconnect()
            raise
        self._free.append(conn)
        return replies

    def close(self) -> None:
        while self._free:
            self._free.pop().disconnect()
