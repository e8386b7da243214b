"""The production compose stack (compose/), checked without Docker.

Docker does not run where these tests run, so they check what can be checked here:
the compose file against the Compose Specification's JSON schema (fetched from the
package index by tests/install.sh: compose_spec.py), the stack's structure (KRaft Kafka,
persistent Redis, the topic initializer, scalable consumers, Prometheus and Grafana
wiring), every rtindex command against the real CLI parser and every rtindex environment
against the real settings loader, the Prometheus config and every PromQL expression with
``promtool``, and that every metric the dashboard and the alerts name is in the real
``/metrics`` of a running stack (the ``live_metrics_text`` fixture, tests/ops/conftest.py).
"""

from __future__ import annotations

import fnmatch
import glob
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import compose_spec as spec
import jsonschema
import pytest
import yaml

from rtindex.cli import build_parser
from rtindex.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
DOCKERFILE = COMPOSE_DIR / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS_FILE = COMPOSE_DIR / "prometheus" / "prometheus.yml"
GRAFANA_DIR = COMPOSE_DIR / "grafana"
DATASOURCES_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS_FILE = GRAFANA_DIR / "provisioning" / "dashboards" / "rtindex.yml"
DASHBOARD_FILE = GRAFANA_DIR / "dashboards" / "rtindex.json"

# Services Prometheus must scrape, with the job named after the service.
SCRAPED_SERVICES = ("query", "consumer-documents", "consumer-behaviors")
CONSUMERS = {"consumer-documents": "documents", "consumer-behaviors": "behaviors"}
# Series Prometheus makes itself: not in any /metrics exposition.
PROMETHEUS_BUILTINS = frozenset(
    {
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
        "ALERTS",
        "ALERTS_FOR_STATE",
    }
)
# What /dashboard shows, which the Grafana dashboard must show too.
HEADLINE_METRICS = frozenset(
    {
        "rtindex_consumer_events_total",
        "rtindex_consumer_lag_messages",
        "rtindex_consumer_lag_seconds",
        "rtindex_consumer_freshness_seconds_bucket",
        "rtindex_query_seconds_bucket",
        "rtindex_query_errors_total",
        "rtindex_index_documents",
        "rtindex_index_postings",
        "rtindex_behavior_users",
        "rtindex_behavior_items",
        "rtindex_consumer_dlq_total",
        "rtindex_dlq_messages_total",
        "rtindex_redis_memory_bytes",
    }
)


# ---------------------------------------------------------------------------------------
# Compose variable interpolation (${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, $$)
# ---------------------------------------------------------------------------------------

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """The compose file as `docker compose` sees it with ``env`` (values only, as compose).

    A variable with neither a value nor a default is an error: the stack must run
    without a .env file.
    """
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        name = m["braced"] or m["named"]
        op, arg, current = m["op"], m["arg"] or "", env.get(name)
        if op == ":-":
            return current if current else arg
        if op == "-":
            return arg if current is None else current
        if current is None or (op == ":?" and not current):
            raise ValueError(f"compose variable {name} has no value and no default ({value!r})")
        return current

    return _VARIABLE.sub(substitute, value)


# ---------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------


def _load_compose_raw() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{COMPOSE_FILE} does not hold a mapping"
    return data


def _load_compose() -> dict[str, Any]:
    data: dict[str, Any] = interpolate(_load_compose_raw(), {})
    return data


def _rtindex_services(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the rtindex image (built from this repository)."""
    return {name: svc for name, svc in compose["services"].items() if "build" in svc}


@pytest.fixture(scope="module")
def compose_raw() -> dict[str, Any]:
    return _load_compose_raw()


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def load_compose_spec() -> Any:
    """The Compose Specification JSON schema that tests/install.sh fetched. Missing, it
    is a failure with the way to fetch it: this check must not pass by being skipped."""
    try:
        return spec.load(spec.cache_dir())
    except spec.SpecMissing as e:
        missing = str(e)
    pytest.fail(missing, pytrace=False)


def _env(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _argv(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


def _mounts(service: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Volumes in long form: type (bind/volume), source, target, read_only."""
    result = []
    for item in service.get("volumes") or []:
        if isinstance(item, dict):
            result.append(
                {
                    "type": item["type"],
                    "source": item.get("source"),
                    "target": item["target"],
                    "read_only": bool(item.get("read_only", False)),
                }
            )
            continue
        parts = item.split(":")
        if len(parts) == 1:
            result.append({"type": "volume", "source": None, "target": parts[0]})
            result[-1]["read_only"] = False
            continue
        source, target = parts[0], parts[1]
        mode = parts[2].split(",") if len(parts) > 2 else []
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        result.append({"type": kind, "source": source, "target": target, "read_only": "ro" in mode})
    return result


def _host_path(service: Mapping[str, Any], container_path: str) -> Path | None:
    """Where a path inside the container comes from, if a bind mount provides it."""
    best: tuple[int, Path] | None = None
    for m in _mounts(service):
        target = m["target"].rstrip("/")
        if m["type"] != "bind" or not (
            container_path == target or container_path.startswith(target + "/")
        ):
            continue
        rest = container_path[len(target) :].lstrip("/")
        host = (COMPOSE_DIR / m["source"]).resolve() / rest
        if best is None or len(target) > best[0]:
            best = (len(target), host)
    return None if best is None else best[1]


def _depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def _option(argv: list[str], flag: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _listen_port(name: str, service: Mapping[str, Any]) -> int:
    """The port an rtindex service serves HTTP (/metrics) on, from its command."""
    argv = _argv(service.get("command"))
    defaults = Settings()
    if argv[:1] == ["serve"]:
        return int(_option(argv, "--port") or defaults.api.port)
    if argv[:1] == ["consume"]:
        given = _option(argv, "--metrics-port")
        if given is not None:
            return int(given)
        ops = defaults.ops
        return ops.metrics_port_documents if argv[1] == "documents" else ops.metrics_port_behaviors
    raise AssertionError(f"{name}: {argv} serves no HTTP port")


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _promtool() -> str:
    found = shutil.which("promtool") or (
        "/usr/bin/promtool" if Path("/usr/bin/promtool").is_file() else None
    )
    if found is None:
        pytest.fail(
            "promtool not found: install Debian's `prometheus` package (/usr/bin/promtool)",
            pytrace=False,
        )
    return found


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------------------------------
# 1. The compose file: schema and structure
# ---------------------------------------------------------------------------------------

_GO_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+")


@pytest.mark.parametrize("form", ["as written", "interpolated"])
def test_compose_file_validates_against_the_compose_specification(
    compose_raw: dict[str, Any], compose: dict[str, Any], form: str
) -> None:
    compose_spec = load_compose_spec()
    # It declares draft 2019-09 as "http://json-schema.org/draft/2019-09/schema#", an
    # address jsonschema does not recognise (it would warn and guess): name the draft.
    assert "2019-09" in compose_spec["$schema"], compose_spec["$schema"]
    cls = jsonschema.Draft201909Validator
    cls.check_schema(compose_spec)
    checker = jsonschema.FormatChecker()

    # Compose durations are Go durations ("10s", "1m30s"), not ISO 8601.
    @checker.checks("duration")
    def _duration(value: object) -> bool:
        return not isinstance(value, str) or bool(_GO_DURATION.fullmatch(value))

    document = compose_raw if form == "as written" else compose
    errors = sorted(
        cls(compose_spec, format_checker=checker).iter_errors(document),
        key=lambda e: [str(p) for p in e.absolute_path],
    )
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message[:400]}" for e in errors
    )


def test_the_schema_comes_from_the_install_cache_or_the_check_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The suite downloads nothing: without tests/install.sh's fetch the schema check
    fails (never skips) saying how to fetch it, and a wheel not the pinned one is refused."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert spec.cache_dir() == tmp_path / "rtindex-tests" / "compose-spec"
    with pytest.raises(pytest.fail.Exception, match=r"run tests/install\.sh"):
        load_compose_spec()
    spec.cache_dir().mkdir(parents=True)
    (spec.cache_dir() / spec.WHEEL).write_bytes(b"not the pinned wheel")
    (spec.cache_dir() / spec.SCHEMA).write_text("{}", encoding="utf-8")
    with pytest.raises(pytest.fail.Exception, match="sha256"):
        load_compose_spec()


def test_every_compose_variable_has_a_default(compose_raw: dict[str, Any]) -> None:
    # _load_compose raises otherwise; also check a value given in the environment wins.
    assert interpolate("${TOPIC_PARTITIONS:-6}", {"TOPIC_PARTITIONS": "12"}) == "12"
    assert interpolate("${X:--Xmx1g}", {}) == "-Xmx1g"
    assert interpolate("$$HOME ${A-b}", {"A": ""}) == "$HOME "
    with pytest.raises(ValueError):
        interpolate("${NO_DEFAULT}", {})
    interpolate(compose_raw, {})


def test_kafka_runs_in_kraft_mode(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    image, _, tag = kafka["image"].partition(":")
    assert image == "apache/kafka", kafka["image"]
    assert re.fullmatch(r"3\.9\.\d+|4\.\d+\.\d+", tag), f"pin a 3.9.x or 4.x tag: {tag!r}"
    env = _env(kafka)
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node_id = env["KAFKA_NODE_ID"]
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert voters == [f"{node_id}@kafka:9093"], voters
    listeners = env["KAFKA_LISTENERS"].split(",")
    assert f"{controller}://:9093" in listeners, listeners
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert {controller, env["KAFKA_INTER_BROKER_LISTENER_NAME"]} <= protocols.keys()
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"]), "CLUSTER_ID: a base64 UUID"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1", "one broker"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false", "the topics service creates them"

    # Every rtindex service's bootstrap is an advertised listener.
    advertised = {urlsplit(url).netloc for url in env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    for name, svc in _rtindex_services({"services": services}).items():
        assert _env(svc)["RTINDEX_KAFKA_BOOTSTRAP"] in advertised, name

    # The log directory is on a named volume, so topics survive `docker compose down`.
    data = [m for m in _mounts(kafka) if m["target"] == env["KAFKA_LOG_DIRS"]]
    assert data and data[0]["type"] == "volume" and data[0]["source"], _mounts(kafka)


def test_redis_persists_with_aof_on_a_volume(services: dict[str, dict[str, Any]]) -> None:
    redis_svc = services["redis"]
    image, _, tag = redis_svc["image"].partition(":")
    assert image in {"valkey/valkey", "redis"} and tag and tag != "latest", redis_svc["image"]
    argv = _argv(redis_svc["command"])
    assert argv[0] in {"valkey-server", "redis-server"}
    assert _option(argv, "--appendonly") == "yes", argv
    assert _option(argv, "--appendfsync") == "everysec", argv
    # Evicting index keys would corrupt the index.
    assert _option(argv, "--maxmemory-policy") == "noeviction", argv
    data_dir = _option(argv, "--dir") or "/data"
    data = [m for m in _mounts(redis_svc) if m["target"] == data_dir]
    assert data and data[0]["type"] == "volume" and data[0]["source"], _mounts(redis_svc)
    for name, svc in _rtindex_services({"services": services}).items():
        url = urlsplit(_env(svc)["RTINDEX_REDIS_URL"])
        assert url.scheme in {"redis", "rediss"} and url.hostname == "redis", (name, url)


def test_topic_initializer_runs_once_before_the_consumers(
    services: dict[str, dict[str, Any]],
) -> None:
    topics = services["topics"]
    assert "build" in topics, "the initializer runs the rtindex image"
    argv = _argv(topics["command"])
    assert argv[0] == "topics" and _option(argv, "--partitions"), argv
    assert int(_option(argv, "--partitions") or 0) >= 1
    assert str(topics.get("restart", "no")) == "no", "a one-shot must not restart"
    assert _depends_on(topics) == {"kafka": "service_healthy"}
    for name in CONSUMERS:
        deps = _depends_on(services[name])
        assert deps.get("topics") == "service_completed_successfully", (name, deps)
        assert deps.get("kafka") == "service_healthy" and deps.get("redis") == "service_healthy"


def test_consumers_scale_with_docker_compose_scale(services: dict[str, dict[str, Any]]) -> None:
    for name, stream in CONSUMERS.items():
        svc = services[name]
        assert _argv(svc["command"])[:2] == ["consume", stream], svc["command"]
        # --scale needs no fixed names or host ports.
        for key in ("container_name", "hostname", "ports", "scale"):
            assert key not in svc, f"{name}: {key} would stop `--scale {name}=N`"
        assert "replicas" not in (svc.get("deploy") or {}), name
        assert str(svc.get("restart")) in {"unless-stopped", "always", "on-failure"}, name
    for name, svc in _rtindex_services({"services": services}).items():
        assert "container_name" not in svc, name


def test_rtindex_services_share_one_image(services: dict[str, dict[str, Any]]) -> None:
    rtindex = _rtindex_services({"services": services})
    assert set(rtindex) >= {"topics", *CONSUMERS, "query"}, sorted(rtindex)
    builds = {json.dumps(svc["build"], sort_keys=True) for svc in rtindex.values()}
    images = {svc.get("image") for svc in rtindex.values()}
    assert len(builds) == 1 and len(images) == 1, (builds, images)
    build = next(iter(rtindex.values()))["build"]
    context = (COMPOSE_DIR / build["context"]).resolve()
    assert context == ROOT, context
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE
    for name, svc in rtindex.items():
        assert "entrypoint" not in svc, f"{name}: the image's ENTRYPOINT is rtindex"


def test_healthchecks_and_start_order(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        for dep, condition in _depends_on(svc).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            target = services[dep]
            if condition == "service_healthy":
                check = target.get("healthcheck") or {}
                assert check.get("test") and not check.get("disable"), (name, dep)
            if condition == "service_completed_successfully":
                assert str(target.get("restart", "no")) == "no", (name, dep)
    kafka_check = " ".join(_argv(services["kafka"]["healthcheck"]["test"]))
    assert "kafka-broker-api-versions.sh" in kafka_check, kafka_check
    redis_check = " ".join(_argv(services["redis"]["healthcheck"]["test"]))
    assert re.search(r"(valkey|redis)-cli ping", redis_check), redis_check
    query_check = " ".join(_argv(services["query"]["healthcheck"]["test"]))
    assert "/healthz" in query_check, query_check


@pytest.mark.parametrize("name", sorted(_rtindex_services(_load_compose())))
def test_rtindex_healthcheck_code_runs_in_the_image(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    check = services[name].get("healthcheck")
    if check is None:
        assert name == "topics", f"{name}: a long-running service needs a healthcheck"
        return
    test = _argv(check["test"])
    assert test[:3] == ["CMD", "python", "-c"], f"{name}: {test} (the image has python)"
    compile(test[3], f"<{name} healthcheck>", "exec")
    ports = {int(p) for p in re.findall(r"http://127\.0\.0\.1:(\d+)/", test[3])}
    assert ports == {_listen_port(name, services[name])}, (name, test[3])


def test_volumes_and_bind_mounts_exist(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, svc in compose["services"].items():
        for m in _mounts(svc):
            if m["type"] == "volume" and m["source"]:
                used.add(m["source"])
                assert m["source"] in declared, f"{name}: volume {m['source']} not declared"
            if m["type"] == "bind":
                assert (COMPOSE_DIR / m["source"]).exists(), f"{name}: {m['source']} missing"
                assert m["read_only"], f"{name}: mount configuration read-only ({m})"
    assert declared <= used, f"declared but unused volumes: {sorted(declared - used)}"


def test_prometheus_service_mounts_its_config(services: dict[str, dict[str, Any]]) -> None:
    prom = services["prometheus"]
    image, _, tag = prom["image"].partition(":")
    assert image == "prom/prometheus" and tag not in {"", "latest"}, prom["image"]
    config = _option(_argv(prom["command"]), "--config.file")
    assert config, prom["command"]
    assert _host_path(prom, config) == PROMETHEUS_FILE.resolve(), _mounts(prom)
    storage = _option(_argv(prom["command"]), "--storage.tsdb.path")
    assert any(m["type"] == "volume" and m["target"] == storage for m in _mounts(prom))


def test_grafana_provisioning_is_mounted(
    services: dict[str, dict[str, Any]], compose_raw: dict[str, Any]
) -> None:
    grafana = services["grafana"]
    image, _, tag = grafana["image"].partition(":")
    assert image in {"grafana/grafana", "grafana/grafana-oss"} and tag not in {"", "latest"}
    assert (
        _host_path(grafana, "/etc/grafana/provisioning") == (GRAFANA_DIR / "provisioning").resolve()
    ), _mounts(grafana)
    providers = _load_yaml(PROVIDERS_FILE)["providers"]
    assert providers, PROVIDERS_FILE
    for provider in providers:
        assert provider["type"] == "file"
        folder = _host_path(grafana, provider["options"]["path"])
        assert folder is not None and (folder / DASHBOARD_FILE.name).is_file(), provider
    env = _env(grafana)
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert _host_path(grafana, home) == DASHBOARD_FILE.resolve(), home
    # The admin password comes from the environment, with a default.
    raw = _env(compose_raw["services"]["grafana"])["GF_SECURITY_ADMIN_PASSWORD"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:-[^}]+\}", raw), raw
    assert _depends_on(grafana).get("prometheus") in {"service_started", "service_healthy"}


def test_dockerfile_builds_a_non_root_rtindex_image() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    froms = [ln.split()[1] for ln in lines if ln.upper().startswith("FROM ")]
    assert froms and all(f == "python:3.11-slim" for f in froms), froms
    final = lines[max(i for i, ln in enumerate(lines) if ln.upper().startswith("FROM ")) :]
    users = [ln.split()[1] for ln in final if ln.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, users
    entrypoints = [ln for ln in final if ln.upper().startswith("ENTRYPOINT")]
    assert entrypoints and json.loads(entrypoints[-1].split(None, 1)[1]) == ["rtindex"]
    assert re.search(r"pip install [^\n]*\.(\s|$)", text), "installs the repository (pip install .)"
    # What the build copies from the context must not be excluded by .dockerignore.
    copied = set()
    for ln in lines:
        if ln.upper().startswith("COPY ") and "--from" not in ln:
            copied.update(ln.split()[1:-1])
    assert {"rtindex", "pyproject.toml", "README.md"} <= copied, copied
    ignored = {
        ln.strip().rstrip("/")
        for ln in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if ln.strip() and not ln.startswith("#")
    }
    assert not copied & ignored, copied & ignored
    for needed in (".git", "rtindex-data", "**/__pycache__", ".pytest_cache", ".mypy_cache"):
        assert needed in ignored, f".dockerignore should exclude {needed}"
    assert "benchmarks" in ignored or "benchmarks/results" in ignored


def test_image_gets_every_package_data_file() -> None:
    """The image installs rtindex with ``pip install .`` (not editable), so a data file
    under rtindex/ that pyproject.toml's package-data does not name is missing there."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["rtindex"]
    package = ROOT / "rtindex"
    data_files = [
        path.relative_to(package).as_posix()
        for path in package.rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts
    ]
    assert data_files, package
    missing = [f for f in data_files if not any(fnmatch.fnmatch(f, p) for p in patterns)]
    assert not missing, f"not in [tool.setuptools.package-data] rtindex {patterns}: {missing}"


# ---------------------------------------------------------------------------------------
# 2. rtindex commands and environments
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(_rtindex_services(_load_compose())))
def test_rtindex_command_is_accepted_by_the_cli(
    services: dict[str, dict[str, Any]], name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _argv(services[name].get("command"))
    assert argv, f"{name}: no command (the image's default is --help)"
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        err = capsys.readouterr().err
        pytest.fail(f"{name}: `rtindex {shlex.join(argv)}` rejected (exit {e.code}):\n{err}")
    assert args.command == argv[0]


@pytest.mark.parametrize("name", sorted(_rtindex_services(_load_compose())))
def test_rtindex_environment_is_accepted_by_the_settings(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    env = _env(services[name])
    assert all(k.startswith("RTINDEX_") for k in env), env
    settings = load_settings(env)  # raises on unknown or invalid RTINDEX_* variables
    assert settings.kafka.bootstrap == env["RTINDEX_KAFKA_BOOTSTRAP"]
    assert settings.ops.metrics_host == "0.0.0.0", "metrics must be reachable by Prometheus"


# ---------------------------------------------------------------------------------------
# 3. Prometheus
# ---------------------------------------------------------------------------------------


def test_promtool_accepts_the_prometheus_config() -> None:
    result = _run([_promtool(), "check", "config", str(PROMETHEUS_FILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def _referenced_files(config: Mapping[str, Any]) -> Iterator[str]:
    yield from config.get("rule_files") or []
    yield from config.get("scrape_config_files") or []

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key.endswith("_file") and isinstance(value, str):
                    yield value
                elif key == "file_sd_configs":
                    for sd in value:
                        yield from sd.get("files", [])
                else:
                    yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    for key in ("scrape_configs", "alerting", "remote_write", "remote_read"):
        yield from walk(config.get(key))


def test_prometheus_config_references_only_files_that_exist() -> None:
    config = _load_yaml(PROMETHEUS_FILE)
    mounted = PROMETHEUS_FILE.parent.resolve()
    references = list(_referenced_files(config))
    for ref in references:
        # Relative paths resolve against the config's directory, here and in the container.
        assert not ref.startswith("/"), f"{ref}: use a path relative to prometheus.yml"
        matches = glob.glob(str(mounted / ref))
        assert matches, f"prometheus.yml references {ref}, which matches no file"
        for match in matches:
            assert Path(match).resolve().is_relative_to(mounted), f"{match} is not mounted"
    rule_files = [
        m for ref in config.get("rule_files") or [] for m in glob.glob(str(mounted / ref))
    ]
    if rule_files:
        result = _run([_promtool(), "check", "rules", *rule_files])
        assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_every_rtindex_service(services: dict[str, dict[str, Any]]) -> None:
    config = _load_yaml(PROMETHEUS_FILE)
    interval = config.get("global", {}).get("scrape_interval", "1m")
    assert interval in {"5s", "10s", "15s"}, f"scrape interval {interval}"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    long_running = {
        name
        for name, svc in _rtindex_services({"services": services}).items()
        if str(svc.get("restart", "no")) != "no"
    }
    assert long_running == set(SCRAPED_SERVICES), sorted(long_running)
    for name in SCRAPED_SERVICES:
        assert name in jobs, f"no Prometheus job {name!r}: jobs {sorted(jobs)}"
        sd = jobs[name].get("dns_sd_configs") or []
        # DNS service discovery on the service name finds every replica of --scale.
        assert len(sd) == 1 and sd[0]["names"] == [name], (name, sd)
        assert sd[0].get("type", "SRV") == "A", "Docker's DNS answers A records"
        assert sd[0]["port"] == _listen_port(name, services[name]), (name, sd)
        assert "static_configs" not in jobs[name], name


# ---------------------------------------------------------------------------------------
# 4. The Grafana dashboard
# ---------------------------------------------------------------------------------------

# Grafana's interval variables, replaced by what Prometheus would see on a short range.
_GRAFANA_INTERVALS = {
    "$__rate_interval": "1m",
    "${__rate_interval}": "1m",
    "$__interval": "15s",
    "${__interval}": "15s",
    "$__range": "1h",
    "${__range}": "1h",
}


def grafana_to_promql(expr: str) -> str:
    for variable, value in sorted(_GRAFANA_INTERVALS.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(variable, value)
    return expr


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    return data


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def dashboard_expressions() -> list[str]:
    """Every PromQL expression of the dashboard's queries (rows' nested panels included)."""
    exprs = [
        node["expr"]
        for node in _walk(_dashboard().get("panels", []))
        if "refId" in node and isinstance(node.get("expr"), str)
    ]
    exprs += [
        node["query"]["query"] if isinstance(node.get("query"), dict) else node["query"]
        for node in _walk(_dashboard().get("templating", {}))
        if node.get("type") == "query" and node.get("query")
    ]
    return exprs


def alert_expressions() -> list[str]:
    config = _load_yaml(PROMETHEUS_FILE)
    exprs = []
    for pattern in config.get("rule_files") or []:
        for path in sorted(glob.glob(str(PROMETHEUS_FILE.parent / pattern))):
            for group in _load_yaml(Path(path))["groups"]:
                exprs += [str(rule["expr"]) for rule in group["rules"]]
    return exprs


def test_dashboard_has_queries_and_no_unresolved_grafana_variables() -> None:
    exprs = dashboard_expressions()
    assert len(exprs) >= 10, exprs
    for expr in exprs:
        leftover = re.findall(r"\$\{?\w+\}?", grafana_to_promql(expr))
        assert not leftover, f"{expr}: unknown Grafana variables {leftover}"


def test_dashboard_promql_is_valid(tmp_path: Path) -> None:
    rules = [
        {"record": f"rtindex_dashboard:expr_{i}", "expr": grafana_to_promql(expr)}
        for i, expr in enumerate(dashboard_expressions())
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = _run([_promtool(), "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout, result.stdout


def test_dashboard_uses_the_provisioned_datasource() -> None:
    sources = _load_yaml(DATASOURCES_FILE)["datasources"]
    prometheus = [s for s in sources if s["type"] == "prometheus"]
    assert len(prometheus) == 1, sources
    uid = prometheus[0]["uid"]
    assert urlsplit(prometheus[0]["url"]).hostname == "prometheus", "the compose service"
    refs = [
        node["datasource"]
        for node in _walk(_dashboard())
        if isinstance(node.get("datasource"), dict | str)
    ]
    assert refs
    for ref in refs:
        if isinstance(ref, str):
            pytest.fail(f"datasource by name or variable: {ref!r}; use {{'uid': {uid!r}}}")
        if ref.get("type") == "grafana":  # built-in annotations
            continue
        assert ref == {"type": "prometheus", "uid": uid}, ref
    queries = [node for node in _walk(_dashboard().get("panels", [])) if "refId" in node]
    assert all(q.get("datasource", {}).get("uid") == uid for q in queries)
    assert "__inputs" not in _dashboard(), "an export with inputs cannot be provisioned"


def test_dashboard_shows_the_headline_panels() -> None:
    used = {name for expr in dashboard_expressions() for name in metric_names(expr)}
    missing = HEADLINE_METRICS - used
    assert not missing, f"the dashboard does not show {sorted(missing)}"


def test_job_matchers_name_scraped_jobs() -> None:
    jobs = {job["job_name"] for job in _load_yaml(PROMETHEUS_FILE)["scrape_configs"]}
    for expr in dashboard_expressions() + alert_expressions():
        for op, value in re.findall(r'\bjob\s*(=~|=)\s*"([^"]*)"', expr):
            named = set(value.split("|")) if op == "=~" else {value}
            assert named <= jobs, f"{expr}: jobs {sorted(named - jobs)} are not scraped"


# ---------------------------------------------------------------------------------------
# 5. Metric names: PromQL -> names, checked against a real /metrics exposition
# ---------------------------------------------------------------------------------------

_PROMQL_KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "atan2",
        "inf",
        "nan",
    }
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_NAME_MATCHER = re.compile(r"__name__\s*=\s*(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_TOKEN = re.compile(
    r"(?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[A-Za-z0-9]*)"
    r"|(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)(?P<call>\s*\()?"
)
_SAMPLE_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects, exactly as written.

    Not function or aggregation names (an identifier followed by "("), not keywords and
    modifiers (by, without, on, ignoring, group_left, group_right, bool, and, or, unless,
    offset), not label names (inside {...} or a grouping's (...)), not numbers or
    durations, nothing inside strings. ``{__name__="x"}`` counts as x. Histogram series
    keep their suffix (``x_bucket``): that is the name the exposition must contain.
    """
    expr = grafana_to_promql(expr)
    names = {m[1:-1] for m in _NAME_MATCHER.findall(expr)}
    expr = _STRING.sub('""', expr)
    expr = _BRACES.sub(" ", expr)
    expr = _BRACKETS.sub(" ", expr)
    expr = _GROUPING.sub(" ", expr)
    for m in _TOKEN.finditer(expr):
        ident = m["ident"]
        if ident is None or m["call"] or ident.lower() in _PROMQL_KEYWORDS:
            continue
        names.add(ident)
    return names


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("rtindex_index_documents", {"rtindex_index_documents"}),
        (
            'sum by (topic, outcome) (rate(rtindex_consumer_events_total{outcome!="applied"}[1m]))',
            {"rtindex_consumer_events_total"},
        ),
        (
            "histogram_quantile(0.99, sum by (le, endpoint) "
            "(rate(rtindex_query_seconds_bucket{endpoint=~'/search|/docs'}[$__rate_interval])))",
            {"rtindex_query_seconds_bucket"},
        ),
        (
            "sum(rate(a_total[5m] offset 1h)) by (job) / ignoring(outcome) group_left(topic) "
            "sum without (instance) (b:recorded)",
            {"a_total", "b:recorded"},
        ),
        (
            "time() - max by (topic) (rtindex_consumer_last_batch_timestamp_seconds) > 1.5e3",
            {"rtindex_consumer_last_batch_timestamp_seconds"},
        ),
        ('up{job="query"} == bool 1 and on (instance) c or d unless e', {"up", "c", "d", "e"}),
        ('{__name__="x_total", job="by"}', {"x_total"}),
        ("max_over_time(rate(x[5m])[30m:1m]) @ end()", {"x"}),
        ('label_replace(up, "dst", "$1 sum(y)", "src", "(.*)")', {"up"}),
        ("topk(5, sum by (le) (z_bucket)) * 0x1F + Inf - NaN", {"z_bucket"}),
        ("vector(1) + scalar(sum(w))", {"w"}),
    ],
)
def test_metric_names_extractor(expr: str, expected: set[str]) -> None:
    assert metric_names(expr) == expected


def exposition_names(text: str) -> set[str]:
    """Sample names of a Prometheus text exposition (several concatenated are fine)."""
    names = set()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE_NAME.match(line)
        if m:
            names.add(m.group())
    return names


def test_exposition_names() -> None:
    text = (
        "# HELP h A histogram\n# TYPE h histogram\n"
        'h_bucket{le="0.1",topic="t"} 1.0\nh_count{topic="t"} 1.0\n'
        "c_total 3\nc_created 1.7e9\n\n"
    )
    assert exposition_names(text) == {"h_bucket", "h_count", "c_total", "c_created"}


def test_every_dashboard_and_alert_metric_is_exported(live_metrics_text: str) -> None:
    """Each metric name the dashboard and the alert rules select is in the real /metrics
    of the query service and both consumers (after events were published)."""
    exported = exposition_names(live_metrics_text)
    assert any(name.startswith("rtindex_") for name in exported), live_metrics_text[:2000]
    problems = []
    for expr in dashboard_expressions() + alert_expressions():
        missing = metric_names(expr) - PROMETHEUS_BUILTINS - exported
        if missing:
            problems.append(f"{sorted(missing)} in {expr}")
    rtindex_exported = sorted(n for n in exported if n.startswith("rtindex_"))
    assert not problems, "\n".join(
        ["not in /metrics:", *problems, "exported rtindex names:", *rtindex_exported]
    )
