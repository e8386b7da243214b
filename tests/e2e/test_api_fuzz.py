"""A schema-driven fuzz run of the HTTP API: schemathesis against the service's own
OpenAPI (``/openapi.json``), over real HTTP, with real Redis holding documents and
behavior state written by the real consumers from real Kafka topics.

Every operation the schema declares is exercised with valid inputs (positive mode) and
inputs that break its parameters' schemas (negative mode), plus schemathesis' boundary
values (coverage phase: strings one over ``maxLength``, integers one past ``maximum``...).
No response may be a 5xx, every status code and body must be the one the schema declares
for it, with its declared content type. The run is derandomized: the same cases every
time.
"""

from __future__ import annotations

import functools
import importlib
import random
import time
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from helpers import serving, wait_until
from hypothesis import HealthCheck, settings
from processes import publish

from rtindex.consumers.behaviors import BehaviorConsumer
from rtindex.consumers.documents import DocumentConsumer
from rtindex.demo import demo_events
from rtindex.query.server import create_app
from rtindex.runtime.servers import free_port
from rtindex.settings import Settings

pytestmark = pytest.mark.e2e
schemathesis = pytest.importorskip(
    "schemathesis", minversion="4", reason="a dev dependency: pip install 'schemathesis>=4'"
)
openapi_checks = importlib.import_module("schemathesis.specs.openapi.checks")

N_DOCS = 200
N_USERS = 24
EVENTS_PER_USER = 15
DELETED = ("pd-000003", "pd-000007")
CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
]
ACTIONS = ("view", "click", "like", "cart", "purchase")


def behavior_events(seed: int = 5) -> list[dict[str, Any]]:
    """Users acting on items of a few overlapping clusters (so /similar and /recommend
    have co-occurrences), some of them on deleted items; ``ts`` in the recent past."""
    rng = random.Random(seed)
    now = int(time.time() * 1000) - 60_000
    out = []
    for u in range(N_USERS):
        cluster = rng.randrange(8)
        for j in range(EVENTS_PER_USER):
            item = 1 + (cluster * 20 + rng.randrange(30)) % N_DOCS
            out.append(
                {
                    "event_id": f"e-{u}-{j}",
                    "user_id": f"u-{u}",
                    "item_id": f"pd-{item:06d}",
                    "action": rng.choice(ACTIONS),
                    "ts": now + 1000 * j,
                    "query": "经济",
                }
            )
    return out


def applied(consumer: DocumentConsumer | BehaviorConsumer, n: int) -> bool:
    return sum(consumer.totals.events.values()) >= n


@pytest.fixture
def corpus(
    topics: Settings, consumer: DocumentConsumer, behavior_consumer: BehaviorConsumer
) -> Settings:
    """200 People's Daily paragraphs (two later deleted, one patched) and 360 behavior
    events, through Kafka and the real consumers."""
    s = topics
    docs = list(demo_events(N_DOCS))
    ts = docs[-1]["ts"] + 1
    changes = [{"op": "delete", "id": d, "version": 2, "ts": ts} for d in DELETED] + [
        {"op": "patch", "id": "pd-000001", "version": 2, "ts": ts, "doc": {"tags": None}}
    ]
    values = [orjson.dumps(e) for e in [*docs, *changes]]
    publish(s, s.kafka.documents_topic, values, key_field="id")
    events = behavior_events()
    publish(s, s.kafka.behaviors_topic, [orjson.dumps(e) for e in events], key_field="user_id")
    wait_until(
        lambda: applied(consumer, len(values)) and applied(behavior_consumer, len(events)),
        timeout=60,
        message=lambda: f"documents {consumer.totals}, behaviors {behavior_consumer.totals}",
    )
    return s


@pytest.fixture
def api_schema(corpus: Settings, api: httpx.Client) -> Iterator[Any]:
    # Sanity: the state the fuzz run reads is there.
    assert api.get("/docs/pd-000002").status_code == 200
    assert api.get("/docs/pd-000003").status_code == 404
    assert api.get("/trending", params={"k": 5}).json()["items"]
    schema = schemathesis.openapi.from_url(f"{api.base_url}/openapi.json")
    schema.config.generation.update(
        modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE],
        deterministic=True,
        allow_x00=True,
    )
    yield schema


@functools.cache
def vocabulary() -> list[str]:
    """Words of the corpus' tags: queries that find something."""
    return sorted({t for e in demo_events(N_DOCS) for t in e["doc"].get("tags", [])})


def use_known_ids(case: schemathesis.Case) -> None:
    """Random ids and queries almost never name anything that exists. In half of the
    positive fuzzing cases (chosen by a hash of the generated case: deterministic), put
    in ids of real documents, items and users, and words of the corpus, so that hits,
    personalization, co-occurrences and stored documents are exercised too."""
    meta = case.meta
    if meta is None or meta.generation.mode.is_negative or meta.phase.name != "fuzzing":
        return
    h = zlib.crc32(repr((case.path_parameters, case.query)).encode())
    if h % 2:
        return
    doc = f"pd-{1 + h % (N_DOCS + 10):06d}"  # some do not exist, some are deleted
    user = f"u-{h % (N_USERS + 4)}"  # some have no events
    path, query = case.operation.path, case.query
    if path == "/docs/{doc_id}":
        case.path_parameters["doc_id"] = doc
    elif path == "/similar":
        query["item_id"] = doc
    elif path == "/recommend":
        query["user_id"] = user
    elif path == "/search":
        words = vocabulary()
        query["q"] = " ".join(words[(h >> 4) % len(words) :][: 1 + h % 3])
        if "user_id" in query:
            query["user_id"] = user


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=100,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_openapi(case: schemathesis.Case) -> None:
    use_known_ids(case)
    case.call_and_validate(checks=CHECKS, timeout=30)


EXAMPLES = {  # one valid call of every operation
    "/search": {"query": {"q": "经济"}},
    "/docs/{doc_id}": {"path_parameters": {"doc_id": "pd-000001"}},
    "/recommend": {"query": {"user_id": "u-1"}},
    "/similar": {"query": {"item_id": "pd-000001"}},
    "/trending": {"query": {}},
}


def test_answers_without_redis_are_the_documented_503s(settings: Settings) -> None:
    """Redis unreachable: every call that reads the index answers the 503 its schema
    declares (a reason, not a stack trace); the probes and pages still answer."""
    down = settings.with_overrides({"redis": {"url": f"redis://127.0.0.1:{free_port()}/0"}})
    with serving(create_app(down)) as base_url:
        schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
        checks = CHECKS[1:]  # a 503 is a server error: here it is the expected answer
        seen = {}
        for path, method_map in schema.items():
            operation = method_map["GET"]
            case = operation.Case(**EXAMPLES.get(path, {}))
            seen[path] = case.call_and_validate(checks=checks, timeout=30).status_code
    assert seen == {
        "/search": 503,
        "/docs/{doc_id}": 503,
        "/recommend": 503,
        "/similar": 503,
        "/trending": 503,
        "/readyz": 503,
        "/stats": 503,
        "/healthz": 200,
        "/metrics": 200,
        "/dashboard": 200,
    }


def test_answers_without_the_token_are_the_documented_401s(settings: Settings) -> None:
    """With ``api.token`` set, the schema declares a 401 on every guarded operation, and
    a call without the token gets exactly that; the probes and the page stay open."""
    token = "fuzz-token-0123456789"
    guarded = settings.with_overrides({"api": {"token": token}})
    with serving(create_app(guarded)) as base_url:
        auth = {"Authorization": f"Bearer {token}"}
        schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", headers=auth)
        seen = {}
        for path, method_map in schema.items():
            case = method_map["GET"].Case(**EXAMPLES.get(path, {}))
            seen[path] = case.call_and_validate(checks=CHECKS, timeout=30).status_code
    open_paths = {"/healthz", "/readyz", "/dashboard"}
    assert {p for p, status in seen.items() if status != 401} == open_paths, seen
