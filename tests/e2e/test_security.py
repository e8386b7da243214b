"""Security: Redis passwords, ACL users limited to the namespace, TLS (and mutual TLS);
the query service's bearer token, loopback default and read-only API; Kafka security
settings reaching every client."""

from __future__ import annotations

import ast
import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import redis
import trustme
from fastapi.testclient import TestClient
from helpers import running, wait_until
from processes import publish

from rtindex.consumers.behaviors import BehaviorConsumer
from rtindex.consumers.documents import DocumentConsumer
from rtindex.consumers.kafka_config import kafka_client_config
from rtindex.consumers.topics import ensure_topics
from rtindex.indexer.connection import connect
from rtindex.query.server import create_app
from rtindex.runtime.servers import RedisServer, free_port
from rtindex.settings import Settings, load_settings

TOKEN = "t0ken-for-the-tests-" + "x" * 12
DEBIAN_REDIS = "/usr/bin/redis-server"


def _events(n: int) -> tuple[list[bytes], list[bytes]]:
    now = int(time.time() * 1000)
    docs = [
        json.dumps(
            {"op": "upsert", "id": f"s{i}", "version": 1, "ts": now}
            | {"doc": {"title": f"安全 secure {i}", "category": "c"}},
            ensure_ascii=False,
        ).encode()
        for i in range(n)
    ]
    clicks = [
        json.dumps(
            {"event_id": f"e{i}", "user_id": f"u{i % 3}", "item_id": f"s{i % n}"}
            | {"action": "click", "ts": now + i}
        ).encode()
        for i in range(2 * n)
    ]
    return docs, clicks


def index_and_query(settings: Settings, n: int = 12) -> None:
    """The whole path on these Redis settings: both consumers write, the service reads."""
    ensure_topics(settings, partitions=2)
    docs, clicks = _events(n)
    k = settings.kafka
    with running(DocumentConsumer(settings)) as dc, running(BehaviorConsumer(settings)) as bc:
        publish(settings, k.documents_topic, docs, key_field="id")
        publish(settings, k.behaviors_topic, clicks, key_field="user_id")
        wait_until(lambda: dc.totals.events["applied"] == n, timeout=60)
        wait_until(lambda: bc.totals.events["applied"] == 2 * n, timeout=60)
        with TestClient(create_app(settings)) as api:
            assert api.get("/search", params={"q": "secure"}).json()["total"] == n
            assert api.get("/similar", params={"item_id": "s1"}).json()["items"]
            assert api.get("/recommend", params={"user_id": "u1"}).json()["items"]
            stats = api.get("/stats").json()
            assert stats["headline"]["documents"] == n and stats["redis"]["up"]
            assert set(stats["consumers"]) == {"documents", "behaviors"}
            assert api.get("/readyz").status_code == 200


# -- Redis: a plain password (requirepass), through RTINDEX_REDIS_URL --------------------

PASSWORD = "pl@in pass/wörd:%41"  # URL-special characters: quoted in the URL, sent as is


@pytest.fixture
def password_redis() -> Iterator[RedisServer]:
    with RedisServer.start(password=PASSWORD) as server:
        yield server


def settings_env(settings: Settings, redis_url: str) -> dict[str, str]:
    """``settings`` as the RTINDEX_* variables a deployment sets, with ``redis_url``."""
    k = settings.kafka
    return {
        "PATH": "/usr/bin:/bin",
        "RTINDEX_REDIS_URL": redis_url,
        "RTINDEX_NAMESPACE": settings.redis.namespace,
        "RTINDEX_KAFKA_BOOTSTRAP": k.bootstrap,
        "RTINDEX_KAFKA__DOCUMENTS_TOPIC": k.documents_topic,
        "RTINDEX_KAFKA__BEHAVIORS_TOPIC": k.behaviors_topic,
        "RTINDEX_KAFKA__DLQ_TOPIC": k.dlq_topic,
        "RTINDEX_KAFKA__DOCUMENTS_GROUP": k.documents_group,
        "RTINDEX_KAFKA__BEHAVIORS_GROUP": k.behaviors_group,
        "RTINDEX_KAFKA__CLIENT_ID": k.client_id,
        "RTINDEX_LOG_LEVEL": "WARNING",
    }


def test_requirepass_password_in_rtindex_redis_url(
    settings: Settings, password_redis: RedisServer
) -> None:
    """The server demands the password; rtindex, configured by RTINDEX_REDIS_URL alone
    (password in the URL, percent-encoded), connects, indexes, answers queries, and the
    query service started as ``rtindex serve`` with that environment is ready."""
    port = password_redis.port
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=port).ping()  # no password: refused
    url = f"redis://:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/0"
    env = settings_env(settings, url)
    loaded = load_settings(env)
    assert loaded.redis.url == url
    client = connect(loaded)
    try:
        assert client.ping()
        assert client.acl_whoami() in ("default", b"default")
    finally:
        client.close()
    index_and_query(loaded)  # both consumers and the query service (in process)
    api_port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtindex", "serve", "--port", str(api_port)], env=env
    )
    try:
        base = f"http://127.0.0.1:{api_port}"
        wait_until(lambda: _answers("127.0.0.1", api_port), timeout=30)
        assert httpx.get(f"{base}/readyz", timeout=10).status_code == 200
        found = httpx.get(f"{base}/search", params={"q": "secure"}, timeout=10).json()
        assert found["total"] == 12, found
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


# -- Redis: password and an ACL user confined to the namespace ---------------------------


@pytest.fixture
def acl_redis() -> Iterator[RedisServer]:
    with RedisServer.start(password="admin-secret") as server:
        yield server


def test_acl_user_limited_to_the_namespace(settings: Settings, acl_redis: RedisServer) -> None:
    ns = settings.redis.namespace
    admin = redis.Redis.from_url(acl_redis.url)
    # Every command but the administrative and dangerous ones (INFO back in: /stats reads
    # used_memory), on this namespace's keys only.
    admin.execute_command(
        "ACL", "SETUSER", "rti", "on", ">user-secret", "resetkeys", f"~{ns}:*",
        "resetchannels", "+@all", "-@admin", "-@dangerous", "+info",
    )  # fmt: skip
    url = f"redis://rti:user-secret@127.0.0.1:{acl_redis.port}/0"
    user = settings.with_overrides({"redis": {"url": url}})
    index_and_query(user)
    # Everything rtindex wrote is in its namespace (the ACL would have refused the rest).
    keys = [k.decode() for k in admin.scan_iter(count=1000)]
    assert keys and all(k.startswith(f"{ns}:") for k in keys), keys[:5]
    confined = redis.Redis.from_url(url)
    with pytest.raises(redis.exceptions.NoPermissionError):
        confined.set("elsewhere", 1)
    with pytest.raises(redis.exceptions.NoPermissionError):
        confined.flushall()
    admin.close()
    confined.close()


def test_wrong_or_missing_password_is_not_ready(settings: Settings, acl_redis: RedisServer) -> None:
    for url in (
        f"redis://127.0.0.1:{acl_redis.port}/0",
        f"redis://:wrong@127.0.0.1:{acl_redis.port}/0",
    ):
        bad = settings.with_overrides({"redis": {"url": url}})
        with TestClient(create_app(bad)) as api:
            r = api.get("/readyz")
            assert r.status_code == 503 and r.json()["reasons"][0].startswith("redis:"), r.text
            assert api.get("/search", params={"q": "x"}).status_code == 503


# -- Redis over TLS (Debian's Redis: the Valkey wheel has no TLS) -------------------------


@pytest.fixture
def tls_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, Path]]:
    if not Path(DEBIAN_REDIS).exists():
        pytest.fail(
            f"{DEBIAN_REDIS} is missing: run tests/install.sh (apt-get install redis-server)"
        )
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    client_cert = ca.issue_cert("rtindex-client")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server_cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    server_cert.cert_chain_pems[0].write_to_path(str(tmp_path / "server.crt"))
    client_cert.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    client_cert.cert_chain_pems[0].write_to_path(str(tmp_path / "client.crt"))
    tls_port = free_port()
    monkeypatch.setenv("REDIS_SERVER_BIN", DEBIAN_REDIS)
    # The plain port stays on loopback for the start-up probe; clients use the TLS port,
    # which requires a client certificate signed by the CA (mutual TLS).
    args = ["--tls-port", str(tls_port), "--tls-cert-file", str(tmp_path / "server.crt")]
    args += ["--tls-key-file", str(tmp_path / "server.key")]
    args += ["--tls-ca-cert-file", str(tmp_path / "ca.pem"), "--tls-auth-clients", "yes"]
    with RedisServer.start(extra_args=args):
        yield tls_port, tmp_path


def test_redis_over_mutual_tls(settings: Settings, tls_redis: tuple[int, Path]) -> None:
    port, certs = tls_redis
    tls = settings.with_overrides(
        {
            "redis": {
                "url": f"rediss://127.0.0.1:{port}/0",
                "tls_ca_file": str(certs / "ca.pem"),
                "tls_cert_file": str(certs / "client.crt"),
                "tls_key_file": str(certs / "client.key"),
            }
        }
    )
    index_and_query(tls)


def test_tls_refuses_an_unknown_server_or_a_client_without_certificate(
    settings: Settings, tls_redis: tuple[int, Path]
) -> None:
    port, certs = tls_redis
    url = f"rediss://127.0.0.1:{port}/0"
    untrusted = {"url": url}  # the system trust store does not know our CA
    no_client_cert = {"url": url, "tls_ca_file": str(certs / "ca.pem")}
    for override in (untrusted, no_client_cert):
        bad = settings.with_overrides({"redis": override})
        with TestClient(create_app(bad)) as api:
            r = api.get("/readyz")
            assert r.status_code == 503, r.text
    # And the TLS port speaks nothing but TLS.
    with pytest.raises((redis.exceptions.ConnectionError, ssl.SSLError)):
        redis.Redis(host="127.0.0.1", port=port, socket_timeout=2).ping()


# -- The query service -------------------------------------------------------------------


@pytest.fixture
def token_api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.with_overrides({"api": {"token": TOKEN}}))) as api:
        yield api


def test_bearer_token_guards_everything_but_the_probes(token_api: TestClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for path in ("/search?q=x", "/stats", "/metrics", "/trending", "/docs/x", "/openapi.json"):
        r = token_api.get(path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"].startswith("Bearer")
        wrong = token_api.get(path, headers={"Authorization": f"Bearer {TOKEN[:-1]}y"})
        assert wrong.status_code == 401, path
        assert token_api.get(path, headers={"Authorization": TOKEN}).status_code == 401
        assert token_api.get(path, headers=auth).status_code in (200, 404), path
    for open_path in ("/healthz", "/readyz", "/dashboard"):
        assert token_api.get(open_path).status_code == 200, open_path
    # Refusals are counted like any other error.
    metrics = token_api.get("/metrics", headers=auth).text
    assert 'rtindex_query_errors_total{endpoint="unmatched",status="401"}' in metrics


def test_the_token_must_be_long_enough(settings: Settings) -> None:
    with pytest.raises(ValueError, match="at least 16"):
        settings.with_overrides({"api": {"token": "short"}})


def test_the_api_is_read_only(settings: Settings) -> None:
    app = create_app(settings)
    methods = {m for route in app.routes for m in getattr(route, "methods", set())}
    assert methods <= {"GET", "HEAD"}, methods
    with TestClient(app) as api:
        for path in ("/search", "/docs/x", "/recommend", "/stats", "/metrics"):
            for method in ("POST", "PUT", "PATCH", "DELETE"):
                assert api.request(method, path).status_code == 405, (method, path)


def test_serve_binds_to_loopback_by_default(settings: Settings) -> None:
    assert Settings().api.host == "127.0.0.1"
    port = free_port()
    env = {"RTINDEX_REDIS_URL": settings.redis.url, "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtindex", "serve", "--port", str(port)], env=env
    )
    try:
        wait_until(lambda: _answers("127.0.0.1", port), timeout=30)
        assert _listening_addresses(port) == {"127.0.0.1"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _answers(host: str, port: int) -> bool:
    try:
        return httpx.get(f"http://{host}:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on ``port`` (from /proc/net/tcp{,6})."""
    found = set()
    for table, size in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(addr)
                if size == 4:
                    found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:
                    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                    found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


# -- Kafka security settings -------------------------------------------------------------

SECURITY = {
    "security_protocol": "SASL_SSL",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_plain_username": "rtindex",
    "sasl_plain_password": "kafka-secret",
    "ssl_cafile": "/etc/ssl/certs/ca-certificates.crt",
}


def test_kafka_security_settings_reach_the_client_config(settings: Settings) -> None:
    secured = settings.with_overrides({"kafka": {"security": SECURITY}})
    config = kafka_client_config(secured, group_id="g")
    assert {k: config[k] for k in SECURITY} == SECURITY
    # Per-call overrides never drop them.
    assert kafka_client_config(secured, client_id="x")["sasl_mechanism"] == "SCRAM-SHA-512"


def test_every_kafka_client_is_built_from_the_shared_config() -> None:
    """Each KafkaConsumer/KafkaProducer/KafkaAdminClient constructed in rtindex gets its
    arguments from ``kafka_client_config`` (so the security settings), by reading the code."""
    root = Path(__file__).resolve().parents[2] / "rtindex"
    clients = {"KafkaConsumer", "KafkaProducer", "KafkaAdminClient"}
    calls: list[str] = []
    for path in root.rglob("*.py"):
        if path.relative_to(root) == Path("runtime/servers.py"):
            continue  # the embedded broker's start-up probe: our own plaintext broker
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) in clients):
                continue
            where = f"{path.relative_to(root)}:{node.lineno}"
            calls.append(where)
            spread = [kw.value for kw in node.keywords if kw.arg is None]
            uses_config = any(
                isinstance(v, ast.Call) and getattr(v.func, "id", None) == "kafka_client_config"
                for v in spread
            )
            assert uses_config, f"{where} builds a Kafka client without kafka_client_config"
    assert len(calls) >= 5, calls  # consumers, DLQ producer, admin, publisher, readers
