"""Redis connections, built from the settings: URL (password and ACL user included), TLS
for rediss:// URLs with the CA, client certificate and key named in the settings."""

from __future__ import annotations

from typing import Any

import redis

from rtindex.settings import Settings


def tls_options(settings: Settings) -> dict[str, Any]:
    r = settings.redis
    if not r.url.startswith("rediss://"):
        return {}
    options: dict[str, Any] = {"ssl_check_hostname": r.tls_check_hostname}
    if r.tls_ca_file is not None:
        options["ssl_ca_certs"] = str(r.tls_ca_file)
    if r.tls_cert_file is not None:
        options["ssl_certfile"] = str(r.tls_cert_file)
    if r.tls_key_file is not None:
        options["ssl_keyfile"] = str(r.tls_key_file)
    return options


def connect(
    settings: Settings,
    *,
    pool_size: int = 32,
    connect_timeout_s: float = 5.0,
    timeout_s: float = 30.0,
) -> redis.Redis:
    return redis.Redis.from_url(
        settings.redis.url,
        max_connections=pool_size,
        socket_connect_timeout=connect_timeout_s,
        socket_timeout=timeout_s,
        health_check_interval=30,
        decode_responses=False,
        **tls_options(settings),
    )
