"""Redis connections, built from the settings' URL (passwords, ACL users, TLS via rediss://)."""

from __future__ import annotations

import redis

from rtindex.settings import Settings


def connect(settings: Settings, *, pool_size: int = 32) -> redis.Redis:
    return redis.Redis.from_url(
        settings.redis.url,
        max_connections=pool_size,
        socket_connect_timeout=5.0,
        socket_timeout=30.0,
        health_check_interval=30,
        decode_responses=False,
    )
