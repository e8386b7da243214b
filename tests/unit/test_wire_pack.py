"""The query path's command packing equals redis-py's (the server must read the same)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from redis.connection import Connection

from rtindex.query.wire import pack

args = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=20),
    st.integers(min_value=-(2**40), max_value=2**40),
)


# A command name, then any arguments (redis-py splits a name with a space, "CONFIG GET").
command = st.tuples(st.sampled_from(["GET", "HGET", "HMGET"]), st.lists(args, max_size=5)).map(
    lambda c: [c[0], *c[1]]
)


@given(st.lists(command, max_size=5))
def test_pack_is_the_resp_redis_py_sends(commands: list[list[bytes | str | int]]) -> None:
    packer = Connection()  # not connected: packing only
    expected = b"".join(b"".join(packer.pack_command(*c)) for c in commands)
    assert pack(commands) == expected


def test_pack_examples() -> None:
    assert pack([("GET", "k")]) == b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
    assert pack([("HGET", b"h\r\n", 12)]) == b"*3\r\n$4\r\nHGET\r\n$3\r\nh\r\n\r\n$2\r\n12\r\n"
    assert pack([]) == b""
