"""Kafka security settings given as environment variables (the way a deployment sets
them) reach the keyword arguments every Kafka client is built from
(``kafka_client_config``): one variable per setting (``RTINDEX_KAFKA__SECURITY__<KEY>``)
or the whole mapping as JSON (``RTINDEX_KAFKA__SECURITY``). The real TLS connection made
with such variables is tests/e2e/test_kafka_tls.py."""

from __future__ import annotations

import json

import pytest

from rtindex.consumers.kafka_config import kafka_client_config
from rtindex.settings import load_settings

SASL = {
    "security_protocol": "SASL_SSL",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_plain_username": "rtindex",
    "sasl_plain_password": "kafka-secret",
    "ssl_cafile": "/etc/ssl/certs/ca-certificates.crt",
    "ssl_check_hostname": True,
}
BASE = {"RTINDEX_KAFKA_BOOTSTRAP": "k1:9093,k2:9093"}


def per_key(security: dict[str, object]) -> dict[str, str]:
    return {
        f"RTINDEX_KAFKA__SECURITY__{k.upper()}": v if isinstance(v, str) else json.dumps(v)
        for k, v in security.items()
    }


@pytest.mark.parametrize(
    "env",
    [per_key(SASL), {"RTINDEX_KAFKA__SECURITY": json.dumps(SASL)}],
    ids=["one-variable-per-key", "json-object"],
)
def test_security_variables_reach_every_client_config(env: dict[str, str]) -> None:
    settings = load_settings(BASE | env)
    assert dict(settings.kafka.security) == SASL
    for overrides in ({}, {"group_id": "g", "enable_auto_commit": False}, {"client_id": "x"}):
        config = kafka_client_config(settings, **overrides)
        assert {k: config[k] for k in SASL} == SASL, overrides
        assert config["bootstrap_servers"] == ["k1:9093", "k2:9093"]


def test_ssl_variables_alone() -> None:
    env = per_key(
        {
            "security_protocol": "SSL",
            "ssl_cafile": "/run/secrets/ca.pem",
            "ssl_certfile": "/run/secrets/client.pem",
            "ssl_keyfile": "/run/secrets/client.key",
            "ssl_password": "key-pass",
        }
    )
    config = kafka_client_config(load_settings(BASE | env))
    assert config["security_protocol"] == "SSL"
    assert config["ssl_certfile"] == "/run/secrets/client.pem"
    assert config["ssl_keyfile"] == "/run/secrets/client.key"
    assert config["ssl_password"] == "key-pass"


def test_without_security_variables_the_clients_get_none() -> None:
    config = kafka_client_config(load_settings(BASE))
    assert not any(k.startswith(("security_", "sasl_", "ssl_")) for k in config), config


@pytest.mark.parametrize("secret", ["123456", "1e3", "true", "null", '"quoted"'])
def test_text_settings_from_variables_stay_text(secret: str) -> None:
    """A password of digits, or one that reads as JSON, reaches the client as typed; the
    same for plain string settings (a namespace named 2024)."""
    settings = load_settings(
        BASE
        | {
            "RTINDEX_KAFKA__SECURITY__SASL_PLAIN_PASSWORD": secret,
            "RTINDEX_KAFKA__SECURITY__SSL_CHECK_HOSTNAME": "false",
            "RTINDEX_REDIS__NAMESPACE": "2024",
        }
    )
    config = kafka_client_config(settings)
    assert config["sasl_plain_password"] == secret
    assert config["ssl_check_hostname"] is False  # not a text option: JSON, a boolean
    assert settings.redis.namespace == "2024"
