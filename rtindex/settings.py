"""The one settings object: every tunable of rtindex, typed and validated at start.

Sources, later ones winning: defaults < a JSON or TOML file named by
``RTINDEX_CONFIG`` < environment variables.  Environment variables are
``RTINDEX_<SECTION>__<KEY>`` (for example ``RTINDEX_BM25__K1=1.4``) plus the
contract's short names ``RTINDEX_KAFKA_BOOTSTRAP`` and ``RTINDEX_REDIS_URL``.
Unknown keys, in the file or in ``RTINDEX_*`` variables, are rejected: a typo
must fail loudly at start, not be silently ignored.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_FROZEN = ConfigDict(extra="forbid", frozen=True)


class TextField(BaseModel):
    model_config = _FROZEN
    boost: float = Field(default=1.0, gt=0)


class IndexSchema(BaseModel):
    """Which document fields are indexed how. Any field not named is stored only."""

    model_config = _FROZEN
    text: dict[str, TextField] = Field(
        default_factory=lambda: {"title": TextField(boost=2.0), "body": TextField(boost=1.0)}
    )
    keyword: tuple[str, ...] = ("category", "tags", "city")
    number: tuple[str, ...] = ("price",)
    geo: tuple[str, ...] = ("location",)

    @model_validator(mode="after")
    def _check(self) -> IndexSchema:
        names = [*self.text, *self.keyword, *self.number, *self.geo]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"a field may have one index type only: {sorted(dup)}")
        if not self.text:
            raise ValueError("the schema needs at least one text field")
        if len(self.text) > 8:
            raise ValueError("at most 8 text fields (posting records carry one tf per text field)")
        for n in names:
            if not n or len(n) > 64 or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n):
                raise ValueError(f"field names are identifiers of 1-64 characters: {n!r}")
        return self

    @property
    def text_fields(self) -> tuple[str, ...]:
        return tuple(self.text)


class AnalysisSettings(BaseModel):
    model_config = _FROZEN
    # auto: rjieba when installed (its token parity with jieba is tested), else jieba.
    engine: Literal["auto", "jieba", "rjieba"] = "auto"
    # None: the built-in list (indexer/stopwords.txt); [] disables stop words.
    stopwords: tuple[str, ...] | None = None
    stopwords_file: Path | None = None
    user_dict: Path | None = None
    # Tokens longer than this (in characters) are dropped: they are noise, not words.
    max_token_chars: int = Field(default=64, ge=1, le=256)


class BM25Settings(BaseModel):
    model_config = _FROZEN
    k1: float = Field(default=1.2, ge=0)
    b: float = Field(default=0.75, ge=0, le=1)


class KafkaSettings(BaseModel):
    model_config = _FROZEN
    bootstrap: str = "127.0.0.1:9092"
    documents_topic: str = "rtindex.documents"
    behaviors_topic: str = "rtindex.behaviors"
    dlq_topic: str = "rtindex.dlq"
    documents_group: str = "rtindex-documents"
    behaviors_group: str = "rtindex-behaviors"
    client_id: str = "rtindex"
    max_batch: int = Field(default=1000, ge=1, le=100_000)
    poll_timeout_ms: int = Field(default=50, ge=1, le=60_000)
    # How long the broker may hold a fetch waiting for data. Freshness is bounded by it
    # at low rates: kafka-python's 500 ms default measured p50 143 ms at 20 events/s,
    # 10 ms measured 15 ms (BENCHMARKS.md).
    fetch_max_wait_ms: int = Field(default=10, ge=0, le=10_000)
    session_timeout_ms: int = Field(default=6000, ge=1000)
    heartbeat_interval_ms: int = Field(default=1000, ge=100)
    # A member that does not poll for this long leaves the group (its partitions move).
    # A batch waits out a Redis outage without polling, so this bounds how long one member
    # may hold its partitions through an outage before the group rebalances.
    max_poll_interval_ms: int = Field(default=300_000, ge=1000)
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    # Passed through to the Kafka clients untouched (SASL/SSL settings, etc.).
    security: dict[str, str | int | bool] = Field(default_factory=dict)


class RedisSettings(BaseModel):
    model_config = _FROZEN
    url: str = "redis://127.0.0.1:6379/0"
    namespace: str = "rti"
    # Backoff for transient Redis errors: the consumer waits and retries, never commits.
    retry_initial_s: float = Field(default=0.05, gt=0)
    retry_max_s: float = Field(default=2.0, gt=0)
    # TLS (rediss:// URLs): the CA that signed the server's certificate (None: the
    # system's trust store), and a client certificate and key where the server asks for
    # one (tls-auth-clients). Passwords and ACL users go in the URL:
    # rediss://user:password@host:6380/0.
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_check_hostname: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis url must start with redis://, rediss:// or unix://")
        return v

    @field_validator("namespace")
    @classmethod
    def _ns(cls, v: str) -> str:
        # Braces would break Redis Cluster hash tags; ':' separates our key parts.
        if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,32}", v):
            raise ValueError("namespace: 1-32 characters of [A-Za-z0-9_.-]")
        return v


class IndexSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    schema_: IndexSchema = Field(default_factory=IndexSchema, alias="schema")
    # Document-partitioned shards, each in its own Redis Cluster hash slot.
    # Fixed for the life of an index (recorded in Redis, checked at start).
    shards: int = Field(default=1, ge=1, le=1024)
    # Tombstones are kept forever by default: see ARCHITECTURE.md for why.
    tombstone_ttl_s: int | None = Field(default=None, ge=60)
    max_message_bytes: int = Field(default=1 << 20, ge=1024)
    # Documents per Lua script call: bounds how long one call blocks Redis (and so the
    # queries waiting behind it) while a large batch is applied.
    apply_chunk: int = Field(default=200, ge=1, le=10_000)
    # Han character bigram postings (docnums only): ``and`` finds every document that
    # contains a Han query string, whatever its segmentation (北京 in 北京烤鸭, 京烤 too).
    # Off by default: measured, they halve the indexing rate and add 25-43 % memory
    # (BENCHMARKS.md). Fixed for the life of an index (recorded in Redis).
    han_bigrams: bool = False


Action = Literal["view", "click", "like", "cart", "purchase"]
ACTIONS: tuple[Action, ...] = ("view", "click", "like", "cart", "purchase")


class ActionWeights(BaseModel):
    """How much one event of each action says about a user's interest."""

    model_config = _FROZEN
    view: float = Field(default=1.0, ge=0)
    click: float = Field(default=2.0, ge=0)
    like: float = Field(default=3.0, ge=0)
    cart: float = Field(default=4.0, ge=0)
    purchase: float = Field(default=6.0, ge=0)

    def of(self, action: str) -> float:
        return float(getattr(self, action))


class ChannelWeights(BaseModel):
    """How ``recommend`` mixes its channels (each normalized to a best score of 1 first)."""

    model_config = _FROZEN
    i2i: float = Field(default=1.0, ge=0)
    preference: float = Field(default=0.3, ge=0)
    trending: float = Field(default=0.1, ge=0)


class BehaviorSettings(BaseModel):
    """Behavior structures and recall. Times are in seconds, caps in entries; every
    structure is bounded by a cap. ARCHITECTURE.md explains each one."""

    model_config = _FROZEN
    # User-partitioned shards, each in its own Redis Cluster hash slot. Fixed for the
    # life of a namespace (recorded in Redis, checked at start).
    shards: int = Field(default=1, ge=1, le=1024)
    actions: ActionWeights = Field(default_factory=ActionWeights)
    # A user's recent events kept (newest first). They are also the memory of event ids
    # for de-duplicating re-sent events (Kafka redelivery is caught by offsets instead).
    recent_cap: int = Field(default=128, ge=1, le=10_000)
    # Co-occurrence window: an event links its item to the user's last `window_items`
    # distinct items acted on within `window_s` of it...
    window_items: int = Field(default=10, ge=1, le=1000)
    window_s: float = Field(default=1800.0, gt=0)
    # ...each pair weighted by both actions and by 2^(-gap / pair_half_life_s)...
    pair_half_life_s: float = Field(default=900.0, gt=0)
    # ...and damped for very active users by 1 / log2(2 + events of the user)^damping.
    activity_damping: float = Field(default=1.0, ge=0, le=8)
    # Each item keeps its strongest `neighbours_cap` co-occurring items.
    neighbours_cap: int = Field(default=100, ge=1, le=10_000)
    # Exponential time decay (half-lives) of co-occurrence, trending and preferences.
    i2i_half_life_s: float = Field(default=14 * 86400.0, gt=0)
    trending_half_life_s: float = Field(default=6 * 3600.0, gt=0)
    profile_half_life_s: float = Field(default=30 * 86400.0, gt=0)
    trending_cap: int = Field(default=10_000, ge=1)
    profile_cap: int = Field(default=64, ge=1, le=10_000)
    # Document keyword fields that feed the preference profile, and the one that gets
    # per-value trending lists (`/trending?category=`).
    profile_fields: tuple[str, ...] = ("category", "tags")
    trending_field: str = "category"
    # Items a user acted on with these actions are not recommended to them again.
    exclude_actions: tuple[Action, ...] = ("purchase",)
    exclude_cap: int = Field(default=1000, ge=1)
    # A user whose next event comes more than this after their last (event time) starts
    # afresh; users silent for twice this (by the shard's newest event) are deleted
    # lazily, to bound memory. None keeps everyone.
    user_ttl_s: float | None = Field(default=180 * 86400.0, gt=0)
    # Events per Lua script call (bounds how long one call blocks Redis).
    apply_chunk: int = Field(default=200, ge=1, le=10_000)
    # Events dated more than this after they are consumed go to the DLQ (ts_in_future):
    # time decay runs forward from each event, so a far-future one would never fade.
    max_future_s: float = Field(default=3600.0, ge=0)
    # Recall.
    channels: ChannelWeights = Field(default_factory=ChannelWeights)
    recent_used: int = Field(default=20, ge=1, le=1000)  # recent items that seed i2i
    recent_half_life_s: float = Field(default=3600.0, gt=0)  # their recency weight
    # Similarity = co-occurrence / (popularity_i * popularity_j)^normalization.
    normalization: float = Field(default=0.5, ge=0, le=1)
    preferred_values: int = Field(default=3, ge=0, le=100)  # top profile values used
    # /search?user_id=: score * (1 + search_boost * preference match in [0, 1]).
    search_boost: float = Field(default=0.5, ge=0)


class ApiSettings(BaseModel):
    model_config = _FROZEN
    # Loopback by default: exposing the service is a decision (compose sets 0.0.0.0).
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # When set, every call but /healthz and /readyz needs "Authorization: Bearer <token>"
    # (RTINDEX_API__TOKEN). Prometheus sends it with the scrape config's `authorization`.
    token: str | None = Field(default=None, min_length=16, max_length=4096, repr=False)


class OpsSettings(BaseModel):
    """Metrics, status reports, readiness and logs (ARCHITECTURE.md, "Operations")."""

    model_config = _FROZEN
    # Each consumer process serves its own Prometheus /metrics here (0: a free port,
    # logged). 127.0.0.1 by default; the compose stack sets 0.0.0.0.
    metrics_host: str = "127.0.0.1"
    metrics_port_documents: int = Field(default=9400, ge=0, le=65535)
    metrics_port_behaviors: int = Field(default=9401, ge=0, le=65535)
    # Consumers write a status report (lag, rates, freshness) to Redis this often; a
    # report expires after report_ttl_s, so a dead consumer's report disappears.
    report_interval_s: float = Field(default=1.0, gt=0, le=60)
    report_ttl_s: float = Field(default=15.0, gt=0, le=3600)
    # Rolling window over which /stats gives rates and p50/p99.
    window_s: float = Field(default=60.0, ge=1, le=3600)
    # /readyz answers 503 while any partition lags more than this (None: no limit).
    ready_max_lag_messages: int | None = Field(default=100_000, ge=0)
    ready_max_lag_s: float | None = Field(default=30.0, ge=0)
    # True: /readyz also answers 503 while no documents consumer has a live status report
    # (none written in the last report_ttl_s: none started yet, or all stopped or dead).
    # Off by default: a query service over an index nobody is updating still serves it.
    ready_requires_consumers: bool = False

    @model_validator(mode="after")
    def _ttl(self) -> OpsSettings:
        if self.report_ttl_s < 2 * self.report_interval_s:
            raise ValueError("ops.report_ttl_s must be at least twice ops.report_interval_s")
        return self


class Settings(BaseModel):
    model_config = _FROZEN
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    analysis: AnalysisSettings = Field(default_factory=AnalysisSettings)
    bm25: BM25Settings = Field(default_factory=BM25Settings)
    behavior: BehaviorSettings = Field(default_factory=BehaviorSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    ops: OpsSettings = Field(default_factory=OpsSettings)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # text: one readable line per record; json: one JSON object per line (for log shippers).
    log_format: Literal["text", "json"] = "text"

    @model_validator(mode="after")
    def _behavior_fields(self) -> Settings:
        keyword = self.index.schema_.keyword
        b = self.behavior
        for name in (*b.profile_fields, b.trending_field):
            if name not in keyword:
                raise ValueError(
                    f"behavior field {name!r} is not a keyword field of the index schema"
                )
        return self

    def with_overrides(self, overrides: Mapping[str, Any]) -> Settings:
        """A copy with nested overrides merged in, validated again."""
        return Settings.model_validate(_deep_merge(self.model_dump(by_alias=True), overrides))


_SHORT_ENV = {
    "RTINDEX_KAFKA_BOOTSTRAP": ("kafka", "bootstrap"),
    "RTINDEX_REDIS_URL": ("redis", "url"),
    "RTINDEX_NAMESPACE": ("redis", "namespace"),
}
# Variables that belong to the runtime rather than to the settings object.
_NOT_SETTINGS = {"RTINDEX_CONFIG", "RTINDEX_DATA_DIR", "RTINDEX_FAILPOINTS"}


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _env_value(raw: str) -> Any:
    # JSON when it parses (numbers, lists, objects, booleans), else the plain string.
    try:
        return json.loads(raw)
    except ValueError:
        return raw


# kafka-python options that take text: from a variable they stay text, so a password of
# digits (123456) or one that reads as JSON (1e3, true) is not turned into a number.
_KAFKA_TEXT_OPTIONS = frozenset(
    {
        "security_protocol",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "sasl_kerberos_name",
        "sasl_kerberos_service_name",
        "sasl_kerberos_domain_name",
        "ssl_cafile",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_password",
        "ssl_crlfile",
        "ssl_ciphers",
    }
)


def _is_text(path: tuple[str, ...]) -> bool:
    """Whether the setting at ``path`` takes a plain string: its variable is not JSON."""
    if len(path) == 3 and path[:2] == ("kafka", "security"):
        return path[2] in _KAFKA_TEXT_OPTIONS
    model: type[BaseModel] = Settings
    for i, name in enumerate(path):
        field = model.model_fields.get(name)
        if field is None:
            return False  # unknown: validation names it
        kind = field.annotation
        if i == len(path) - 1:
            return kind is str or kind == (str | None)
        if not (isinstance(kind, type) and issubclass(kind, BaseModel)):
            return False
        model = kind
    return False


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith("RTINDEX_") or name in _NOT_SETTINGS:
            continue
        if name in _SHORT_ENV:
            path: tuple[str, ...] = _SHORT_ENV[name]
            value: Any = raw
        else:
            parts = name[len("RTINDEX_") :].lower().split("__")
            if not all(parts):
                raise ValueError(f"malformed settings variable {name}")
            path = tuple(parts)
            value = raw if _is_text(path) else _env_value(raw)
        node = tree
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = value
    return tree


def load_file(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        return tomllib.loads(text)
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the settings file must hold an object")
    return data


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Defaults < RTINDEX_CONFIG file < RTINDEX_* variables; raises on anything unknown."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    if env.get("RTINDEX_CONFIG"):
        data = load_file(Path(env["RTINDEX_CONFIG"]))
    data = _deep_merge(data, _from_env(env))
    return Settings.model_validate(data)
