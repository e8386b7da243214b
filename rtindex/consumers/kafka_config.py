"""The one place Kafka client settings are assembled: every producer, consumer and admin
client in rtindex starts from :func:`kafka_client_config`, so security settings
(SASL/SSL) configured once reach all of them.
"""

from __future__ import annotations

from typing import Any

from rtindex.settings import Settings


def bootstrap_servers(settings: Settings) -> list[str]:
    """``"h1:9092, h2:9092"`` -> ``["h1:9092", "h2:9092"]``."""
    servers = [s.strip() for s in settings.kafka.bootstrap.split(",") if s.strip()]
    if not servers:
        raise ValueError("kafka.bootstrap names no server")
    return servers


def kafka_client_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for any kafka-python client: bootstrap, client id, security, overrides.

    ``settings.kafka.security`` passes through untouched (``security_protocol``,
    ``sasl_mechanism``, ``ssl_cafile``, ...); kafka-python itself rejects unknown keys.
    """
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers(settings),
        "client_id": settings.kafka.client_id,
    }
    config.update(settings.kafka.security)
    config.update(overrides)
    return config
