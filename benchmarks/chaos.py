"""Chaos runs on the real local stack: exactly once in effect under crashes and outages.

Shared by ``benchmarks/bench_chaos.py`` (the full run) and ``tests/e2e/test_chaos.py``
(a short run that fails when exactly-once breaks). Nothing here imports the tests or
``benchmarks/common.py``: the test loads this file as a module.

**The stack.** A Tansu broker, a Valkey server *with AOF* (the one that goes down) and
``rtindex consume documents|behaviors --metrics-port 0`` processes (``ManagedProcess``:
own process group, dying with the thread that started them, so a crashed harness leaves
nothing running). ``index.shards`` = ``behavior.shards`` = 2, topics of 4 partitions,
``apply_chunk`` 25 for both (a batch of up to ``kafka.max_batch`` = 200 takes several
script calls, so a crash or an outage can cut one half-way).

**The stream** (:func:`workload`, fully determined by the seed). Document events on
``doc-*`` ids: upserts (real People's Daily paragraphs as body and title, with category,
tags, city, location and price), patches (price, body, city, ``tags: null``) and
deletes, on a heavy-tailed choice of ids (long version chains); re-sent copies of a
document's recent events (duplicates, or stale once overtaken); pairs of new versions
published out of order (v+2, then v+1: stale); deletes followed later by higher-version
events (a legitimate revival) and by re-sent older ones (which must not resurrect the
document). Behavior events of users on a fixed catalog of 90 ``item-*`` documents,
indexed before anything starts (behavior state reads an item's category and tags from
its document when the event is applied: items the document stream kept changing would
make the state depend on how the two topics' consumers happen to interleave):
heavy-tailed users and items, sessions (a rotating set of active users, so
co-occurrence windows fill), late events, re-sent events (same ``event_id`` and
bytes). About 0.4 % invalid messages of each kind (DLQ). Timestamps start at
2026-01-01 and span about two days: in the past (no ``ts_in_future``), far inside
``behavior.user_ttl_s`` (no resets or lazy expiry, which judge by another user's clock).

**Faults** (:func:`run_chaos`). A producer thread publishes the stream at an even pace
over ``publish_s``; meanwhile the driver SIGKILLs consumer processes at seeded random
moments (one per equal slice of the publishing window, so they spread over it) and
restarts each after a seeded delay, and stops the Redis server cleanly (SIGTERM: AOF and
RDB written) for a few seconds at seeded moments, then starts it again on the same port
and data; ``kills_in_outages`` of the kills land inside an outage, on a member stuck
retrying its batch. Faults are aimed at work in progress: a kill waits (up to
``max_postpone_s``) until its victim owns partitions (by its status report: a restarted
member spends seconds rejoining its group, holding nothing to lose) and, for a behavior
consumer, has applied events it has not committed (Redis's applied offset against the
group's committed one); an outage until a member of each stream owns partitions. Each
behavior kill records exactly how many applied events it left uncommitted. A consumer
must wait an outage out with retries: a consumer process that exits on its own fails
the run. A fixed seed reproduces the stream and the fault schedule (:func:`fault_plan`;
each run's results keep the schedule and the stream's sha256, ``Workload.digest``, and
tests/unit/test_chaos_seed.py holds both to their seed); how processes interleave around
them is the machine's.

**Consumer groups** (:func:`run_group`). Two members per stream share the partitions;
one leaves with SIGTERM (it must exit 0), a new one joins, another is SIGKILLed, another
joins, each step waited on until the status reports (``<ns>:ops:consumers``) show the
expected members owning disjoint partitions that cover the topic. Each step is taken
just after a burst of events (the members have a backlog) while more keep flowing
through the rebalance it causes.

**The reference** is a clean pass: one fresh consumer per stream, in another consumer
group, writing another namespace on another Redis server that never fails, reading the
same topics (concurrently: it only ever sees the same records in the same order per
partition). The catalog is indexed into both namespaces before anything starts.

**Comparison rules** (:func:`compare_states`):

- Documents: ``logical_dump`` (docnum-independent: docnums depend on the order in which
  documents of different partitions are applied) must be equal, every part of it:
  forward entries (version, stored source, indexed view, ts; tombstones), text and
  keyword postings by document id, doc values and lengths by document id, shard
  statistics without the docnum counters, and every key name; ``<ns>:meta`` byte for byte.
- Behaviors, per user (``u:``, ``ur:``, ``ux:``, ``up:``, and ``ua``) and per shard
  (``bs``: applied offsets, record hashes, applied and duplicate totals): byte for byte.
  A user's events all come from one partition, in its order, whatever the interleaving.
- Behaviors, per item: ``ic:`` counters exactly (integers). The decayed log2 sums
  (``nb:``, ``ip``, ``tr``, ``tr:<value>``) add up contributions of users on different
  partitions, and floating-point addition is not associative: the same members exactly,
  each score within ``LOG2_TOLERANCE`` = log2(1 + 1e-9) *absolute*, i.e. the decayed
  sums agree to a relative 1e-9. (A stored score is log2(w) + ts / half-life: about
  82,000 for trending at 2026 timestamps, where doubles are 1.5e-11 apart, so this is
  about a hundred units in the last place, and far tighter than a relative 1e-9 of the
  log2 value itself; each run reports the largest difference it saw.) No cap can make
  membership order-dependent: 90 catalog items, so every neighbour list stays under
  ``neighbours_cap`` (100) and trending under ``trending_cap``; ``recent_cap`` and
  ``profile_cap`` trim per user, in the user's own order.
- ``<ns>:ops:*`` (status reports, DLQ tally) is not index state and is left out.

The three headline figures come from that comparison: **lost** = documents whose chaos
version is below the clean one (missing, an update or a delete lost) plus behavior
events counted in the clean ``ic:`` counters and not in the chaos ones; **double
applied** = behavior events counted in chaos beyond the clean counters; **resurrected**
= documents deleted in the clean pass and live after the chaos run. Every other
difference is listed too, and any difference at all fails the run.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import os
import random
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import orjson
import redis
from kafka.admin import KafkaAdminClient

from rtindex.consumers.kafka_config import kafka_client_config
from rtindex.consumers.publish import make_producer
from rtindex.consumers.topics import ensure_topics
from rtindex.corpus import peoples_daily_paragraphs
from rtindex.demo import CITIES
from rtindex.indexer.analysis import Analyzer
from rtindex.indexer.batch import index_documents
from rtindex.indexer.dump import dump_namespace, logical_dump
from rtindex.indexer.events import UpsertEvent
from rtindex.indexer.keys import BehaviorKeys, OpsKeys
from rtindex.indexer.store import DocumentStore
from rtindex.runtime.servers import ManagedProcess, RedisServer
from rtindex.settings import Settings

T = TypeVar("T")
STREAMS = ("documents", "behaviors")
KEY_FIELD = {"documents": "id", "behaviors": "user_id"}
BASE_TS = 1_767_225_600_000  # 2026-01-01 00:00 UTC
N_ITEMS = 90  # < behavior.neighbours_cap (100): no neighbour list is ever trimmed
CATEGORIES = ("美食", "酒店", "景点", "购物", "电影", "亲子")
TAGS = ("免费停车", "网红", "老字号", "可预订", "外卖", "包间", "夜宵", "江景")
ACTION_WEIGHTS = {"view": 0.55, "click": 0.25, "like": 0.07, "cart": 0.08, "purchase": 0.05}
LOG2_TOLERANCE = math.log2(1 + 1e-9)
FLOAT_FAMILIES = ("nb:", "ip", "tr")  # per-shard sums of decayed log2 weights
HEADLINE = ("lost:", "resurrected:", "counters ")  # how those differences are worded
FRESH_REPORT_MS = 2500  # a status report younger than this is a live member's
POSTPONE_S = 0.25  # a kill waiting for its victim to be at work looks again this much later


# -- the stream ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Workload:
    seed: int
    records: list[tuple[str, bytes | None, bytes]]  # (stream, key, value), publish order
    catalog: list[UpsertEvent]
    composition: dict[str, int]  # events by kind

    def count(self, stream: str) -> int:
        return sum(1 for s, _, _ in self.records if s == stream)

    def digest(self) -> str:
        """sha256 over every record (stream, key, value) in publishing order: one seed,
        one digest; the results file keeps it, so two runs can be compared."""
        h = hashlib.sha256()
        for stream, key, value in self.records:
            for part in (stream.encode(), b"-" if key is None else b"+" + key, value):
                h.update(len(part).to_bytes(4, "big"))
                h.update(part)
        return h.hexdigest()


def _texts() -> list[str]:
    return [t for t in peoples_daily_paragraphs()[:4000] if len(t) >= 30]


def document_events(
    rng: random.Random, n: int, n_docs: int, texts: list[str], kinds: Counter[str]
) -> list[bytes]:
    """Upserts, patches, deletes; re-sent, swapped (out-of-order) versions, a few invalid."""
    version = [0] * n_docs
    history: list[list[bytes]] = [[] for _ in range(n_docs)]
    out: list[bytes] = []
    cities = list(CITIES)

    def new_event(d: int, v: int) -> bytes:
        did = f"doc-{d:05d}"
        ev: dict[str, Any] = {"id": did, "version": v, "ts": BASE_TS + 7 * len(out)}
        roll = rng.random()
        if roll < 0.12:
            ev["op"] = "delete"
            kinds["doc_delete"] += 1
        elif roll < 0.37:
            patch: dict[str, Any] = {"price": rng.randint(1, 900)}
            extra = rng.random()
            if extra < 0.3:
                patch["body"] = rng.choice(texts)[: rng.randint(30, 120)]
            elif extra < 0.5:
                patch["tags"] = None
            elif extra < 0.7:
                patch["city"] = rng.choice(cities)
            ev |= {"op": "patch", "doc": patch}
            kinds["doc_patch"] += 1
        else:
            text = rng.choice(texts)[: rng.randint(30, 120)]
            city = rng.choice(cities)
            lat, lon = CITIES[city]
            doc = {
                "title": text[: rng.randint(8, 20)],
                "body": text,
                "category": rng.choice(CATEGORIES),
                "tags": rng.sample(TAGS, rng.randint(1, 3)),
                "city": city,
                "location": {"lat": lat, "lon": lon},
                "price": rng.randint(1, 900),
                "source": "chaos",  # stored, not indexed
            }
            ev |= {"op": "upsert", "doc": doc}
            kinds["doc_upsert"] += 1
        raw = json.dumps(ev, ensure_ascii=False).encode()
        history[d].append(raw)
        return raw

    while len(out) < n:
        # Heavy-tailed: a few documents get many events (long version chains).
        d = min(int(rng.paretovariate(0.6)) - 1, n_docs - 1) if rng.random() < 0.3 else None
        d = rng.randrange(n_docs) if d is None else d
        roll = rng.random()
        if roll < 0.004:
            out.append(
                rng.choice(
                    [
                        b'{"op": "upsert", "id": "doc-bad", "version": -1, "ts": 0, "doc": {}}',
                        b"{not json",
                        b'{"op": "merge", "id": "doc-00001", "version": 1, "ts": 0}',
                    ]
                )
            )
            kinds["doc_invalid"] += 1
        elif roll < 0.08 and history[d]:
            out.append(rng.choice(history[d][-3:]))  # re-sent: duplicate, or stale
            kinds["doc_resent"] += 1
        elif roll < 0.14:
            version[d] += 2
            later = new_event(d, version[d])
            earlier = new_event(d, version[d] - 1)
            out += (later, earlier)  # out of order: the earlier version arrives stale
            kinds["doc_swapped_pairs"] += 1
        else:
            version[d] += rng.randint(1, 3)
            out.append(new_event(d, version[d]))
    return out[:n]


def catalog_events() -> list[UpsertEvent]:
    texts = _texts()
    return [
        UpsertEvent(
            op="upsert",
            id=f"item-{j:02d}",
            version=1,
            ts=BASE_TS,
            doc={
                "title": texts[j][:16],
                "body": texts[j][:80],
                "category": CATEGORIES[j % len(CATEGORIES)],
                "tags": [TAGS[j % len(TAGS)], TAGS[(3 * j + 1) % len(TAGS)]],
            },
        )
        for j in range(N_ITEMS)
    ]


def behavior_events(rng: random.Random, n: int, n_users: int, kinds: Counter[str]) -> list[bytes]:
    """Sessions of heavy-tailed users on heavy-tailed items; late, re-sent and invalid ones."""
    activity = [rng.paretovariate(1.5) for _ in range(n_users)]
    popularity = [1 / (j + 1) ** 0.8 for j in range(N_ITEMS)]
    actions, action_w = list(ACTION_WEIGHTS), list(ACTION_WEIGHTS.values())
    active = rng.choices(range(n_users), activity, k=12)
    last: dict[int, list[bytes]] = {}
    out: list[bytes] = []
    clock = BASE_TS
    while len(out) < n:
        if rng.random() < 0.06:  # a session ends, another user's begins
            active[rng.randrange(len(active))] = rng.choices(range(n_users), activity)[0]
        u = rng.choice(active)
        roll = rng.random()
        if roll < 0.004:
            out.append(
                rng.choice(
                    [
                        b'{"event_id": "bad", "user_id": "u-bad", "action": "click", "ts": 1}',
                        b'{"event_id": "bad2", "user_id": "u-bad", "item_id": "item-01", '
                        b'"action": "poke", "ts": 1}',
                    ]
                )
            )
            kinds["behavior_invalid"] += 1
            continue
        if roll < 0.05 and last.get(u):
            out.append(rng.choice(last[u][-5:]))  # re-sent: same event_id, same bytes
            kinds["behavior_resent"] += 1
            continue
        clock += rng.choice((0, 300, 1_000, 4_000, 15_000))
        late = rng.random() < 0.04
        ts = clock - rng.randint(1_000, 600_000) if late else clock
        kinds["behavior_late"] += late
        event: dict[str, Any] = {
            "event_id": f"ev-{len(out):07d}-{rng.getrandbits(32):08x}",
            "user_id": f"u-{u:05d}",
            "item_id": f"item-{rng.choices(range(N_ITEMS), popularity)[0]:02d}",
            "action": rng.choices(actions, action_w)[0],
            "ts": ts,
        }
        if event["action"] == "click" and rng.random() < 0.2:
            event["query"] = rng.choice(("火锅", "亲子乐园", "周末去哪", "江景餐厅"))
        raw = json.dumps(event, ensure_ascii=False).encode()
        last.setdefault(u, []).append(raw)
        out.append(raw)
        kinds["behavior_new"] += 1
    return out


def workload(
    seed: int, document_events_n: int, behavior_events_n: int, documents: int, users: int
) -> Workload:
    """The whole stream, interleaved at random (seeded) into one publishing order."""
    rng = random.Random(seed)
    kinds: Counter[str] = Counter()
    docs = document_events(rng, document_events_n, documents, _texts(), kinds)
    behs = behavior_events(rng, behavior_events_n, users, kinds)

    def keyed(stream: str, raw: bytes) -> tuple[str, bytes | None, bytes]:
        try:
            key = json.loads(raw).get(KEY_FIELD[stream])
        except ValueError:
            key = None
        return stream, key.encode() if isinstance(key, str) else None, raw

    records: list[tuple[str, bytes | None, bytes]] = []
    i = j = 0
    while i < len(docs) or j < len(behs):
        left_d, left_b = len(docs) - i, len(behs) - j
        if rng.random() < left_d / (left_d + left_b):
            records.append(keyed("documents", docs[i]))
            i += 1
        else:
            records.append(keyed("behaviors", behs[j]))
            j += 1
    return Workload(seed, records, catalog_events(), dict(sorted(kinds.items())))


# -- processes, offsets, reports ------------------------------------------------------
def wait_for(
    predicate: Callable[[], T], timeout: float, what: str | Callable[[], str], interval: float = 0.2
) -> T:
    """Poll ``predicate`` until truthy (the tests' ``wait_until``, without importing them)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s: {what() if callable(what) else what}"
            )
        time.sleep(interval)


def consumer_env(settings: Settings, stream: str, group: str) -> dict[str, str]:
    """``rtindex consume <stream>``'s environment: the settings as RTINDEX_* variables."""
    k = settings.kafka
    env = {name: v for name, v in os.environ.items() if not name.startswith("RTINDEX_")}
    return env | {
        "RTINDEX_KAFKA_BOOTSTRAP": k.bootstrap,
        "RTINDEX_REDIS_URL": settings.redis.url,
        "RTINDEX_NAMESPACE": settings.redis.namespace,
        "RTINDEX_KAFKA__DOCUMENTS_TOPIC": k.documents_topic,
        "RTINDEX_KAFKA__BEHAVIORS_TOPIC": k.behaviors_topic,
        "RTINDEX_KAFKA__DLQ_TOPIC": k.dlq_topic,
        f"RTINDEX_KAFKA__{stream.upper()}_GROUP": group,
        "RTINDEX_KAFKA__MAX_BATCH": str(k.max_batch),
        "RTINDEX_INDEX__SHARDS": str(settings.index.shards),
        "RTINDEX_BEHAVIOR__SHARDS": str(settings.behavior.shards),
        "RTINDEX_INDEX__APPLY_CHUNK": str(settings.index.apply_chunk),
        "RTINDEX_BEHAVIOR__APPLY_CHUNK": str(settings.behavior.apply_chunk),
        "RTINDEX_LOG_LEVEL": "WARNING",
    }


@dataclass(slots=True)
class Member:
    stream: str
    name: str
    proc: ManagedProcess
    started: float

    @property
    def pid(self) -> int:
        return self.proc.pid


class Fleet:
    """The consumer processes of one namespace: one group per stream, any number of members.

    Start members from one long-lived thread (the caller's): each dies with the thread
    that started it (``PR_SET_PDEATHSIG``)."""

    def __init__(self, settings: Settings, groups: dict[str, str], log_dir: Path) -> None:
        self.settings = settings
        self.groups = groups
        self.log_dir = log_dir
        self.live: list[Member] = []
        self.started = Counter[str]()
        self.unexpected: list[str] = []  # members that exited without being told to

    def start(self, stream: str) -> Member:
        self.started[stream] += 1
        name = f"{stream}-{self.started[stream]}"
        argv = [sys.executable, "-m", "rtindex", "consume", stream, "--metrics-port", "0"]
        env = consumer_env(self.settings, stream, self.groups[stream])
        m = Member(
            stream,
            name,
            ManagedProcess(argv, self.log_dir / f"{name}.log", env=env),
            time.monotonic(),
        )
        self.live.append(m)
        return m

    def members(self, stream: str) -> list[Member]:
        return [m for m in self.live if m.stream == stream]

    def kill(self, m: Member) -> int:
        """SIGKILL: no batch finished, no commit, no goodbye to the group."""
        os.kill(m.pid, signal.SIGKILL)  # the leader is not reaped yet: the pid is ours
        self.live.remove(m)
        wait_for(lambda: m.proc.poll() is not None, 10, f"{m.name} to die", 0.01)
        return _code(m.proc.stop(grace_s=0))  # reaps; -9

    def terminate(self, m: Member, timeout: float = 90) -> int:
        """SIGTERM: finish the batch, commit, leave the group; 0 when it stopped cleanly."""
        self.live.remove(m)
        return _code(m.proc.stop(grace_s=timeout))

    def check(self) -> None:
        """Record members that exited on their own (a crash the harness did not cause)."""
        for m in list(self.live):
            code = m.proc.poll()
            if code is not None:
                self.live.remove(m)
                m.proc.stop(grace_s=0)
                text = (self.log_dir / f"{m.name}.log").read_text(errors="replace")
                self.unexpected.append(
                    f"{m.name} (pid {m.pid}) exited with {code}:\n{_crash(text)}"
                )

    def stop_all(self) -> list[int]:
        """SIGTERM every member at once, then wait for each: their exit codes."""
        for m in self.live:
            m.proc.terminate()
        codes = []
        for m in self.live:
            # Waits without signalling again: a second SIGTERM reaching a process that is
            # already finalizing (Python has restored the default handler) kills it.
            deadline = time.monotonic() + 60
            while m.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            codes.append(_code(m.proc.stop(grace_s=0)))
        self.live.clear()
        return codes

    def retry_warnings(self) -> int:
        """Lines in the members' logs where a transient failure was retried."""
        return sum(
            p.read_text(errors="replace").count("; retry ") for p in self.log_dir.glob("*.log")
        )


def _crash(log_text: str) -> str:
    """A crashed member's log, short: from its first traceback on, rtindex's frames and
    the lines that are not frames (exception lines; kafka-python's frames drown them),
    else the log's last lines."""
    lines = log_text.splitlines()
    marker = "Traceback (most recent call last):"
    if marker not in lines:
        return "\n".join(lines[-20:])
    kept: list[str] = []
    tail = lines[lines.index(marker) :]
    for i, line in enumerate(tail):
        if not line.startswith(" "):
            kept.append(line)
        elif line.lstrip().startswith("File ") and "/rtindex/" in line:
            kept += tail[i : i + 2]  # the frame and its line of code
    return "\n".join(kept[:40])


def _code(code: int | None) -> int:
    assert code is not None, "ManagedProcess.stop waits for the exit"
    return code


class Offsets:
    """Committed offsets of consumer groups, from the broker."""

    def __init__(self, settings: Settings) -> None:
        self.admin = KafkaAdminClient(**kafka_client_config(settings, client_id="chaos-admin"))

    def committed(self, group: str) -> dict[int, int]:
        offsets = self.admin.list_group_offsets(group).get(group, {})
        return {tp.partition: om.offset for tp, om in offsets.items() if om.offset >= 0}

    def close(self) -> None:
        self.admin.close()


class StatusReader:
    """Consumer status reports (``<ns>:ops:consumers``) by pid; None while Redis is down."""

    def __init__(self, url: str, namespace: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        self.key = OpsKeys(namespace).consumers
        self.last: dict[int, dict[str, Any]] = {}  # pid -> its latest report seen

    def read(self) -> dict[int, dict[str, Any]] | None:
        try:
            raw = self.client.hgetall(self.key)
        except redis.RedisError:
            return None
        out = {}
        for member, value in raw.items():
            report = orjson.loads(value)
            name = member.decode() if isinstance(member, bytes) else str(member)
            pid = int(name.rpartition(":")[2])
            out[pid] = self.last[pid] = report
        return out

    def owners(self, members: list[Member]) -> dict[int, set[int]] | None:
        """pid -> partitions, from the fresh reports of ``members`` (None: a report is
        missing or stale, e.g. during a rebalance or an outage)."""
        reports = self.read()
        if reports is None:
            return None
        now_ms = time.time() * 1000
        out = {}
        for m in members:
            r = reports.get(m.pid)
            if r is None or now_ms - r["at_ms"] > FRESH_REPORT_MS:
                return None
            out[m.pid] = {int(p) for p in r["partitions"]}
        return out

    def close(self) -> None:
        self.client.close()


class PacedProducer(threading.Thread):
    """Publishes the workload's records at ``rate`` per second, up to ``allowed`` of them
    (raised by :meth:`allow`; pacing restarts when a pause ends). Records each partition's
    end offset per topic; a send error is kept and re-raised by :meth:`result`."""

    def __init__(self, settings: Settings, workload: Workload, rate: float) -> None:
        super().__init__(name="chaos-producer", daemon=True)
        self.settings = settings
        self.records = workload.records
        self.rate = rate
        self.topics = {
            "documents": settings.kafka.documents_topic,
            "behaviors": settings.kafka.behaviors_topic,
        }
        self.ends: dict[str, dict[int, int]] = {t: {} for t in self.topics.values()}
        self.published = 0
        self.error: BaseException | None = None
        self.finished_at: float | None = None
        self._allowed = 0
        self._cancelled = False
        self._cond = threading.Condition()

    def allow(self, n: int, rate: float | None = None) -> None:
        """Publish up to the ``n``-th record, at ``rate`` from the next pause on."""
        with self._cond:
            if rate is not None:
                self.rate = rate
            self._allowed = max(self._allowed, min(n, len(self.records)))
            self._cond.notify_all()

    def _past(self, i: int) -> bool:
        return i < self._allowed or self._cancelled

    def cancel(self) -> None:
        """Stop publishing (a run that failed half-way): the thread closes its producer."""
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()
        self.join(timeout=30)

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:  # re-raised in the driver's thread
            self.error = e

    def _run(self) -> None:
        producer = make_producer(self.settings)
        pending: list[Any] = []
        t0 = time.monotonic()
        try:
            for i, (stream, key, value) in enumerate(self.records):
                if self._cancelled:
                    return
                if i >= self._allowed:
                    self._settle(producer, pending)
                    with self._cond:
                        self._cond.wait_for(partial(self._past, i))
                    if self._cancelled:
                        return
                    t0 = time.monotonic() - i / self.rate
                if i % 20 == 0:
                    delay = t0 + i / self.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                pending.append(producer.send(self.topics[stream], key=key, value=value))
                if len(pending) >= 500:
                    self._settle(producer, pending)
            self._settle(producer, pending)
        finally:
            producer.close()
        self.finished_at = time.monotonic()

    def _settle(self, producer: Any, pending: list[Any]) -> None:
        producer.flush()
        for f in pending:
            md = f.get(timeout=30)
            ends = self.ends[md.topic]
            ends[md.partition] = max(ends.get(md.partition, 0), md.offset + 1)
        self.published += len(pending)
        pending.clear()

    def result(self, timeout: float) -> dict[str, dict[int, int]]:
        self.join(timeout)
        if self.error is not None:
            raise self.error
        if self.is_alive():
            raise AssertionError(f"the producer did not finish within {timeout:.0f} s")
        return self.ends


# -- one run's plumbing ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RunConfig:
    """What both scenarios share."""

    seed: int
    document_events: int
    behavior_events: int
    documents: int
    users: int
    partitions: int = 4
    max_batch: int = 200
    index_shards: int = 2
    behavior_shards: int = 2
    # Documents / behavior events per Lua script call (default 200): small, so that a
    # batch takes several calls and a crash or an outage can cut it half-way.
    apply_chunk: int = 25
    drain_timeout_s: float = 300.0


@dataclass(frozen=True, slots=True)
class ChaosConfig(RunConfig):
    members: int = 1  # consumer processes per stream in the chaos group
    kills: int = 12
    outages: int = 3
    outage_s: tuple[float, float] = (3.0, 6.0)
    publish_s: float = 120.0
    restart_delay_s: tuple[float, float] = (0.0, 1.5)
    kills_in_outages: int = 1  # of the kills, how many land inside an outage
    # A kill outside an outage waits (up to this) for its victim to own partitions: a
    # member that is still joining its group holds no batch to lose.
    max_postpone_s: float = 20.0


class Run:
    """Topics, the two namespaces (chaos, clean) with the catalog, the fleets, the producer."""

    def __init__(
        self,
        cfg: RunConfig,
        bootstrap: str,
        chaos_url: str,
        clean_url: str,
        workdir: Path,
        tag: str,
    ) -> None:
        self.cfg = cfg
        uid = uuid.uuid4().hex[:8]
        base = Settings().with_overrides(
            {
                "kafka": {
                    "bootstrap": bootstrap,
                    "documents_topic": f"chaos.{tag}.documents.{uid}",
                    "behaviors_topic": f"chaos.{tag}.behaviors.{uid}",
                    "dlq_topic": f"chaos.{tag}.dlq.{uid}",
                    "client_id": f"chaos-{uid}",
                    "max_batch": cfg.max_batch,
                },
                "index": {"shards": cfg.index_shards, "apply_chunk": cfg.apply_chunk},
                "behavior": {"shards": cfg.behavior_shards, "apply_chunk": cfg.apply_chunk},
            }
        )
        self.chaos = base.with_overrides({"redis": {"url": chaos_url, "namespace": f"x{uid}"}})
        self.clean = base.with_overrides({"redis": {"url": clean_url, "namespace": f"k{uid}"}})
        self.groups = {
            "chaos": {s: f"chaos-{tag}-{s}-{uid}" for s in STREAMS},
            "clean": {s: f"clean-{tag}-{s}-{uid}" for s in STREAMS},
        }
        self.workdir = workdir
        self.workload = workload(
            cfg.seed, cfg.document_events, cfg.behavior_events, cfg.documents, cfg.users
        )
        ensure_topics(base, partitions=cfg.partitions)
        for s in (self.chaos, self.clean):
            index_catalog(s, self.workload.catalog)
        self.offsets = Offsets(base)
        self.status = StatusReader(chaos_url, self.chaos.redis.namespace)
        self.clean_status = StatusReader(clean_url, self.clean.redis.namespace)
        self.fleet = Fleet(self.chaos, self.groups["chaos"], workdir / "chaos-logs")
        self.clean_fleet = Fleet(self.clean, self.groups["clean"], workdir / "clean-logs")
        self.producer: PacedProducer | None = None

    def topic(self, stream: str) -> str:
        k = self.chaos.kafka
        return k.documents_topic if stream == "documents" else k.behaviors_topic

    def caught_up(self, which: str, ends: dict[str, dict[int, int]]) -> bool:
        for stream in STREAMS:
            have = self.offsets.committed(self.groups[which][stream])
            if any(have.get(p, 0) < end for p, end in ends[self.topic(stream)].items()):
                return False
        return True

    def progress(self, which: str, ends: dict[str, dict[int, int]]) -> str:
        return "; ".join(
            f"{s}: committed {sorted(self.offsets.committed(self.groups[which][s]).items())} "
            f"of {sorted(ends[self.topic(s)].items())}"
            for s in STREAMS
        )

    def observe(self) -> None:
        """Between steps: keep the latest totals of every member, catch unexpected exits."""
        self.status.read()
        self.fleet.check()
        self.clean_fleet.check()
        if self.fleet.unexpected or self.clean_fleet.unexpected:
            raise AssertionError(
                "a consumer exited on its own:\n"
                + "\n".join(self.fleet.unexpected + self.clean_fleet.unexpected)
            )

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.observe()
            time.sleep(min(0.5, left))

    def drain(self, ends: dict[str, dict[int, int]]) -> dict[str, float]:
        """Wait until both runs' groups committed every partition's end; when each did
        (``time.monotonic()``)."""
        done: dict[str, float] = {}

        def both() -> bool:
            self.observe()
            for which in ("chaos", "clean"):
                if which not in done and self.caught_up(which, ends):
                    done[which] = time.monotonic()
            return len(done) == 2

        wait_for(
            both,
            self.cfg.drain_timeout_s,
            lambda: "; ".join(self.progress(w, ends) for w in ("chaos", "clean") if w not in done),
            0.25,
        )
        return done

    def backlog(self, ends: dict[str, dict[int, int]]) -> dict[str, int]:
        """Messages published (as far as ``ends`` knows) and not committed, per stream."""
        out = {}
        for stream in STREAMS:
            have = self.offsets.committed(self.groups["chaos"][stream])
            # list(): the producer thread may add a partition meanwhile.
            published = list(ends[self.topic(stream)].items())
            # (``ends`` lags: it is updated every 500 records.)
            out[stream] = sum(max(0, end - have.get(p, 0)) for p, end in published)
        return out

    def all_reporting(self) -> bool:
        """Every live member has written a status report: it is past its start-up (its
        SIGTERM handler is installed before its loop, which writes the reports)."""
        for fleet, status in ((self.fleet, self.status), (self.clean_fleet, self.clean_status)):
            reports = status.read()
            if reports is None or any(m.pid not in reports for m in fleet.live):
                return False
        return True

    def redelivered_seen(self) -> int:
        """Behavior events the chaos members skipped as Kafka redeliveries (from the last
        report seen of each member: a lower bound, a killed member's last second is lost)."""
        return sum(r["totals"].get("redelivered", 0) for r in self.status.last.values())

    def close(self) -> None:
        if self.producer is not None and self.producer.is_alive():
            self.producer.cancel()
        for fleet in (self.fleet, self.clean_fleet):
            fleet.stop_all()
        self.status.close()
        self.clean_status.close()
        self.offsets.close()


def index_catalog(settings: Settings, catalog: list[UpsertEvent]) -> None:
    client = redis.Redis.from_url(settings.redis.url)
    try:
        store = DocumentStore(client, settings)
        store.ensure_layout()
        index_documents(store, catalog, Analyzer(settings.analysis).tokens)
    finally:
        client.close()


@contextmanager
def _run(
    cfg: RunConfig, bootstrap: str, chaos_url: str, clean_url: str, workdir: Path, tag: str
) -> Iterator[Run]:
    run = Run(cfg, bootstrap, chaos_url, clean_url, workdir, tag)
    try:
        yield run
    finally:
        run.close()


def _finish(run: Run, ends: dict[str, dict[int, int]], result: dict[str, Any]) -> None:
    """Both groups drained: stop every member cleanly, compare the namespaces."""
    # A member restarted a moment ago may still be importing: SIGTERM would find no
    # handler yet (and kill it, -15). Stop members that are running their loop.
    wait_for(run.all_reporting, 60, "every member to be up")
    codes = run.fleet.stop_all() + run.clean_fleet.stop_all()
    result["clean_stop_codes"] = codes
    if any(codes):
        raise AssertionError(f"consumers did not stop cleanly on SIGTERM: exit codes {codes}")
    t0 = time.monotonic()
    a = redis.Redis.from_url(run.chaos.redis.url)
    b = redis.Redis.from_url(run.clean.redis.url)
    try:
        cmp = compare_states(a, run.chaos, b, run.clean)
    finally:
        a.close()
        b.close()
    result["compare_s"] = round(time.monotonic() - t0, 2)
    result["comparison"] = cmp.as_dict()
    result["events"] = {
        "total": len(run.workload.records),
        "documents": run.workload.count("documents"),
        "behaviors": run.workload.count("behaviors"),
        "by_kind": run.workload.composition,
        "end_offsets": {t: dict(sorted(e.items())) for t, e in ends.items()},
    }
    result["redelivered_seen"] = run.redelivered_seen()
    result["retry_warnings_logged"] = run.fleet.retry_warnings()


# -- scenario 1: kills and Redis outages -----------------------------------------------
@dataclass(order=True, slots=True)
class Fault:
    at_s: float
    kind: str = field(compare=False)  # kill, start, redis_down, redis_up
    stream: str = field(default="", compare=False)
    slot: int = field(default=0, compare=False)
    postponed: int = field(default=0, compare=False)  # times, by POSTPONE_S each
    in_outage: bool = field(default=False, compare=False)
    # redis_down: how long the outage lasts, and when in it to kill a member (if at all).
    down_s: float = field(default=0.0, compare=False)
    kill_after_s: float | None = field(default=None, compare=False)


def chaos_schedule(cfg: ChaosConfig, rng: random.Random) -> list[Fault]:
    """Outages at random moments, one per equal slice of the publishing window, each
    lasting a random few seconds (its end and its kill are scheduled when it begins);
    ``kills_in_outages`` kills at a random moment inside the first outages (a member
    stuck retrying a half-written batch), of a random member; the other kills at random
    moments, one per equal slice of the window (so they spread over it), of a random
    member of each stream in turn."""
    faults = []
    w = cfg.publish_s / cfg.outages
    for o in range(cfg.outages):
        at = rng.uniform(o * w + 0.1 * w, (o + 0.7) * w)
        down = rng.uniform(*cfg.outage_s)
        kill_after = rng.uniform(0.3, down - 0.8) if o < cfg.kills_in_outages else None
        victim = (rng.choice(STREAMS), rng.randrange(cfg.members))
        faults.append(Fault(at, "redis_down", *victim, down_s=down, kill_after_s=kill_after))
    others = cfg.kills - min(cfg.kills_in_outages, cfg.outages)
    w = cfg.publish_s / others
    first = rng.randrange(len(STREAMS))
    for k in range(others):
        at = rng.uniform(k * w + 0.1 * w, (k + 1) * w)
        stream = STREAMS[(first + k) % len(STREAMS)]
        faults.append(Fault(at, "kill", stream, rng.randrange(cfg.members)))
    return sorted(faults)


def fault_plan(cfg: ChaosConfig) -> tuple[list[Fault], random.Random]:
    """The run's fault schedule, a function of ``cfg`` (its seed included), and the
    generator that goes on to draw the restart delays (one draw per kill, in order)."""
    rng = random.Random(cfg.seed + 1)
    return chaos_schedule(cfg, rng), rng


def describe_plan(faults: list[Fault]) -> list[dict[str, Any]]:
    """The schedule as data (``Fault`` compares by time only), for results and tests."""
    return [
        {
            "at_s": round(f.at_s, 3),
            "kind": f.kind,
            "stream": f.stream,
            "slot": f.slot,
            "down_s": round(f.down_s, 3),
            "kill_after_s": None if f.kill_after_s is None else round(f.kill_after_s, 3),
        }
        for f in faults
    ]


def planned_kills(faults: list[Fault]) -> int:
    """SIGKILLs the schedule holds: its kills and the kills inside its outages."""
    return sum(f.kind == "kill" or f.kill_after_s is not None for f in faults)


def bench_configs(seed: int, quick: bool) -> tuple[ChaosConfig, RunConfig]:
    """``benchmarks/bench_chaos.py``'s runs (chaos, group); ``quick``: its smoke run."""
    if quick:
        return (
            ChaosConfig(
                seed=seed,
                document_events=2_500,
                behavior_events=2_500,
                documents=400,
                users=100,
                kills=3,
                outages=1,
                outage_s=(3.0, 4.0),
                publish_s=15.0,
            ),
            RunConfig(
                seed=seed + 7, document_events=1_500, behavior_events=1_500, documents=300, users=60
            ),
        )
    return (
        ChaosConfig(
            seed=seed,
            document_events=25_000,
            behavior_events=25_000,
            documents=3_000,
            users=600,
            kills=12,
            outages=3,
            outage_s=(3.0, 6.0),
            publish_s=120.0,
            members=2,
        ),
        RunConfig(
            seed=seed + 7, document_events=6_000, behavior_events=6_000, documents=1_000, users=200
        ),
    )


def run_chaos(
    cfg: ChaosConfig,
    bootstrap: str,
    chaos_redis: RedisServer,
    clean_url: str,
    workdir: Path,
    log: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Publish the workload while killing consumers and stopping Redis; drain; compare.
    ``chaos_redis`` must persist (``data_dir``): it is stopped and started again."""
    if chaos_redis.data_dir is None:
        raise ValueError("the chaos Redis server needs a data_dir (AOF) to survive a stop")
    schedule, rng = fault_plan(cfg)
    result: dict[str, Any] = {"config": _config_dict(cfg), "fault_plan": describe_plan(schedule)}
    with _run(cfg, bootstrap, chaos_redis.url, clean_url, workdir, "c") as run:
        log(f"workload: {len(run.workload.records):,} events {run.workload.composition}")
        result["workload_sha256"] = run.workload.digest()
        slots: dict[tuple[str, int], Member | None] = {}
        for stream in STREAMS:
            for i in range(cfg.members):
                slots[(stream, i)] = run.fleet.start(stream)
            run.clean_fleet.start(stream)
        producer = run.producer = PacedProducer(
            run.chaos, run.workload, len(run.workload.records) / cfg.publish_s
        )
        producer.allow(len(run.workload.records))
        t0 = time.monotonic()
        producer.start()
        kills: list[dict[str, Any]] = []
        outages: list[dict[str, Any]] = []
        queue = list(schedule)
        heapq.heapify(queue)
        down_at = 0.0
        while queue:
            fault = heapq.heappop(queue)
            run.sleep(t0 + fault.at_s - time.monotonic())
            now = time.monotonic() - t0
            if fault.kind == "kill":
                slot = _victim(run, slots, fault)
                if slot is None:  # nobody at work yet: a moment later
                    fault.at_s += POSTPONE_S
                    fault.postponed += 1
                    heapq.heappush(queue, fault)
                    continue
                victim = slots[slot]
                assert victim is not None
                held = _held(run, victim)
                code = run.fleet.kill(victim)
                slots[slot] = None
                if victim.stream == "behaviors":
                    # What the crash left for Kafka to deliver again, exactly.
                    held["applied_uncommitted"] = _applied_uncommitted(run, victim)
                kills.append(
                    {
                        "at_s": round(now, 2),
                        "stream": victim.stream,
                        "member": victim.name,
                        "uptime_s": round(time.monotonic() - victim.started, 2),
                        "postponed_s": round(fault.postponed * POSTPONE_S, 2),
                        "exit": code,
                        "during_outage": not chaos_redis.running(),
                        **held,
                    }
                )
                delay = rng.uniform(*cfg.restart_delay_s)
                heapq.heappush(queue, Fault(now + delay, "start", *slot))
                log(f"{now:6.1f} s  SIGKILL {victim.name} ({held})")
            elif fault.kind == "start":
                slots[(fault.stream, fault.slot)] = run.fleet.start(fault.stream)
            elif fault.kind == "redis_down":
                if not chaos_redis.running() or (
                    not _at_work(run, slots) and fault.postponed * POSTPONE_S < cfg.max_postpone_s
                ):
                    # After the outage before it (if a late one is not over yet); and
                    # meant to catch members with a batch in flight.
                    fault.at_s += POSTPONE_S
                    fault.postponed += 1
                    heapq.heappush(queue, fault)
                    continue
                chaos_redis.stop()
                down_at = time.monotonic()
                at = down_at - t0
                heapq.heappush(queue, Fault(at + fault.down_s, "redis_up"))
                if fault.kill_after_s is not None:
                    kill = Fault(at + fault.kill_after_s, "kill", fault.stream, fault.slot)
                    kill.in_outage = True
                    heapq.heappush(queue, kill)
                log(f"{at:6.1f} s  Redis stopped")
            elif fault.kind == "redis_up":
                restart_at = time.monotonic()
                chaos_redis.restart()  # returns once it answers PING: its AOF is loaded
                up_at = time.monotonic()
                outages.append(
                    {
                        "at_s": round(down_at - t0, 2),
                        "down_s": round(up_at - down_at, 2),
                        "restart_s": round(up_at - restart_at, 2),
                    }
                )
                log(f"{now:6.1f} s  Redis started again after {outages[-1]['down_s']} s")
        faults_done = time.monotonic() - t0
        ends = producer.result(timeout=cfg.drain_timeout_s)
        published = producer.finished_at or time.monotonic()
        log(f"{time.monotonic() - t0:6.1f} s  published; draining")
        done = run.drain(ends)
        chaos_s, clean_s = done["chaos"] - t0, done["clean"] - t0
        log(f"{chaos_s:6.1f} s  chaos group caught up (clean pass at {clean_s:.1f} s)")
        result |= {
            "kills": kills,
            "outages": outages,
            "faults_done_s": round(faults_done, 2),
            "publish_s": round(published - t0, 2),
            "chaos_caught_up_s": round(chaos_s, 2),
            "clean_caught_up_s": round(clean_s, 2),
            "processes_started": dict(run.fleet.started),
        }
        _finish(run, ends, result)
        cmp = result["comparison"]
        log(
            f"identical: {cmp['identical']} ({cmp['differences']} differences); behavior "
            f"redeliveries skipped (seen): {result['redelivered_seen']}; retries logged: "
            f"{result['retry_warnings_logged']}"
        )
    return result


def _held(run: Run, victim: Member) -> dict[str, Any]:
    """What the victim owned by its latest report (the last one read before an outage
    while Redis is down): partitions, messages behind, and how old the report is."""
    run.status.read()
    r = run.status.last.get(victim.pid)
    if r is None:
        return {"held_partitions": [], "behind": 0, "report_age_s": None}
    parts = r.get("partitions", {})
    return {
        "held_partitions": sorted(int(p) for p in parts),
        "behind": sum(p.get("lag_messages") or 0 for p in parts.values()),
        "report_age_s": round(time.time() - r["at_ms"] / 1000, 2),
    }


def _applied_uncommitted(run: Run, m: Member) -> int | None:
    """Behavior events on ``m``'s partitions that Redis has applied and the group has not
    committed (None while Redis is down). Exact once ``m`` is dead: nobody else takes its
    partitions for seconds (the session timeout)."""
    parts = _held(run, m)["held_partitions"]
    keys = BehaviorKeys(run.chaos.redis.namespace, run.chaos.behavior.shards)
    topic = run.topic("behaviors")
    # The broker first: a commit landing between the two reads then errs towards "yes"
    # (a live member's window is tens of milliseconds), never hides one.
    committed = run.offsets.committed(run.groups["chaos"]["behaviors"])
    try:
        pipe = run.status.client.pipeline(transaction=False)
        for shard in range(keys.shards):
            pipe.hmget(keys.stats(shard), [keys.offset_fields(topic, p)[0] for p in parts])
        replies = pipe.execute()
    except redis.RedisError:
        return None
    n = 0
    for j, p in enumerate(parts):
        applied = max(int(r[j]) if r[j] is not None else -1 for r in replies)
        n += max(0, applied + 1 - committed.get(p, 0))
    return n


def _at_work(run: Run, slots: dict[tuple[str, int], Member | None]) -> bool:
    """Each stream has a member that owns partitions (by its latest report)."""
    return all(
        any(
            m is not None and _held(run, m)["held_partitions"]
            for (s, _), m in slots.items()
            if s == stream
        )
        for stream in STREAMS
    )


def _victim(
    run: Run, slots: dict[tuple[str, int], Member | None], fault: Fault
) -> tuple[str, int] | None:
    """The slot to kill now, or None to wait a moment. A kill is aimed at a member at
    work, up to ``max_postpone_s`` later: one that owns partitions (a member still
    joining its group holds no batch to lose) and, for a behavior member, has applied
    events it has not committed yet (Redis's applied offset, recorded with the effects,
    is at or past the group's committed offset on one of its partitions): the moment a
    crash makes Kafka deliver applied events again. During an outage, if the scheduled
    member owns none (it was just restarted), another that does is taken: every one that
    does is stuck retrying a batch."""
    cfg = run.cfg
    assert isinstance(cfg, ChaosConfig)
    # During an outage only briefly: the kill must land before Redis is back.
    limit = 1.0 if fault.in_outage else cfg.max_postpone_s
    patience = fault.postponed * POSTPONE_S < limit
    order = [(fault.stream, fault.slot)]
    if fault.in_outage:
        order += [k for k in slots if k != order[0]]
    for slot in order:
        m = slots[slot]
        if m is None or not _held(run, m)["held_partitions"]:
            continue
        if fault.in_outage or m.stream != "behaviors" or _applied_uncommitted(run, m):
            return slot
    if patience:
        return None
    return order[0] if slots[order[0]] is not None else None


# -- scenario 2: members leave and join ------------------------------------------------
def run_group(
    cfg: RunConfig,
    bootstrap: str,
    chaos_url: str,
    clean_url: str,
    workdir: Path,
    log: Callable[[str], None] = lambda _m: None,
    rate: float = 400.0,
    burst_rate: float = 5000.0,
) -> dict[str, Any]:
    """Two members per stream; one leaves (SIGTERM), one joins, one is SIGKILLed, one
    joins; then the state must equal the clean pass's. Each step is timed until the
    group settles (status reports: the expected members own disjoint partitions covering
    the topic).

    Publishing: the first 10 % of the stream at ``rate``. Each step: 6 % at once
    (``burst_rate``), so that the members have a backlog when it is taken, a random
    moment (0-0.3 s) after that is all in the topics; meanwhile the next share flows on,
    through the rebalance the step causes (members learn of it by heartbeat, seconds
    later: after a join, or a SIGKILLed member's session timeout): 10 % over about 4 s,
    22 % over about 9 s for the kill. Then the rest, at ``rate``."""
    result: dict[str, Any] = {"config": _config_dict(cfg)}
    rng = random.Random(cfg.seed + 2)
    with _run(cfg, bootstrap, chaos_url, clean_url, workdir, "g") as run:
        result["workload_sha256"] = run.workload.digest()
        n = len(run.workload.records)
        shares = (0.10, 0.06, 0.10, 0.06, 0.10, 0.06, 0.22, 0.06, 0.10)
        bounds = [round(n * sum(shares[: i + 1])) for i in range(len(shares))]
        flow_rate = 0.22 * n / 9.0
        producer = run.producer = PacedProducer(run.chaos, run.workload, rate)
        t0 = time.monotonic()
        members = {s: [run.fleet.start(s), run.fleet.start(s)] for s in STREAMS}
        for s in STREAMS:
            run.clean_fleet.start(s)
        producer.allow(bounds[0])
        producer.start()
        steps: list[dict[str, Any]] = []

        def under_load(j: int) -> dict[str, int]:
            """Step ``j``'s burst, then its flow; return, a random moment after the burst
            is all in the topics, how many messages each stream's group has not
            committed yet."""
            burst_end, flow_end = bounds[1 + 2 * j], bounds[2 + 2 * j]
            producer.allow(burst_end, rate=burst_rate)
            wait_for(
                lambda: producer.published >= burst_end or producer.error is not None,
                60,
                f"step {j}'s burst published",
                0.02,
            )
            if producer.error is not None:
                raise producer.error
            producer.allow(flow_end, rate=flow_rate)
            run.sleep(rng.uniform(0.0, 0.3))
            return run.backlog(producer.ends)

        def settle(step: str, expect: dict[str, list[Member]], backlog: dict[str, int]) -> None:
            t = time.monotonic()
            for s in STREAMS:
                want = expect[s]
                wait_for(
                    partial(_owns, run, want, run.cfg.partitions),
                    90,
                    f"{step}: {s} members {[m.name for m in want]} owning all partitions",
                )
            steps.append(
                {
                    "step": step,
                    "at_s": round(t - t0, 2),
                    "settled_s": round(time.monotonic() - t, 2),
                    "published": producer.published,
                    "backlog_at_step": backlog,
                    "members": {s: [m.name for m in expect[s]] for s in STREAMS},
                }
            )
            settled = steps[-1]["settled_s"]
            log(f"{t - t0:6.1f} s  {step} (backlog {backlog}): settled in {settled} s")

        settle("two members share the partitions", members, {})
        backlog = under_load(0)
        codes = [run.fleet.terminate(members[s].pop(0)) for s in STREAMS]
        if any(codes):
            raise AssertionError(f"a member did not leave cleanly on SIGTERM: {codes}")
        settle("one left (SIGTERM): the other owns all", members, backlog)
        backlog = under_load(1)
        for s in STREAMS:
            members[s].append(run.fleet.start(s))
        settle("one joined: two members again", members, backlog)
        backlog = under_load(2)
        for s in STREAMS:
            code = run.fleet.kill(members[s].pop(0))
            assert code == -signal.SIGKILL, code
        settle("one killed (SIGKILL): the other owns all", members, backlog)
        backlog = under_load(3)
        for s in STREAMS:
            members[s].append(run.fleet.start(s))
        settle("one joined after the kill: two members", members, backlog)
        producer.allow(n, rate=rate)
        ends = producer.result(timeout=cfg.drain_timeout_s)
        done = run.drain(ends)
        result |= {
            "steps": steps,
            "chaos_caught_up_s": round(done["chaos"] - t0, 2),
            "clean_caught_up_s": round(done["clean"] - t0, 2),
            "processes_started": dict(run.fleet.started),
        }
        _finish(run, ends, result)
    return result


def _owns(run: Run, expect: list[Member], partitions: int) -> bool:
    """The expected members (and no other live member of the stream) each own partitions,
    disjoint, covering the topic."""
    run.observe()
    stream = expect[0].stream
    if {m.pid for m in run.fleet.members(stream)} != {m.pid for m in expect}:
        return False
    owners = run.status.owners(expect)
    if owners is None or any(not p for p in owners.values()):
        return False
    seen: list[int] = [p for ps in owners.values() for p in ps]
    return len(seen) == len(set(seen)) and set(seen) == set(range(partitions))


def _config_dict(cfg: RunConfig) -> dict[str, Any]:
    return {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}


# -- the comparison ----------------------------------------------------------------------
@dataclass(slots=True)
class Comparison:
    lost: int = 0
    double_applied: int = 0
    resurrected: int = 0
    differences: list[str] = field(default_factory=list)
    max_log2_diff: float = 0.0
    float_scores_compared: int = 0
    summary: dict[str, int] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return not self.differences

    @property
    def other(self) -> int:
        """Differences that are none of lost, double-applied or resurrected."""
        return sum(1 for d in self.differences if not d.startswith(HEADLINE))

    def as_dict(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "lost": self.lost,
            "double_applied": self.double_applied,
            "resurrected": self.resurrected,
            "differences": len(self.differences),
            "other_differences": self.other,
            "first_differences": self.differences[:30],
            "max_log2_diff": self.max_log2_diff,
            "log2_tolerance": LOG2_TOLERANCE,
            "float_scores_compared": self.float_scores_compared,
            **self.summary,
        }


class Snapshot:
    """Every key of a namespace read in a few pipelined round trips, served back to
    ``dump_namespace`` and ``logical_dump`` as if it were the client (they read one key
    at a time: a whole namespace costs seconds that way). Take it when nothing writes."""

    READ: ClassVar[dict[bytes, Callable[[Any, bytes], Any]]] = {
        b"string": lambda p, k: p.get(k),
        b"hash": lambda p, k: p.hgetall(k),
        b"set": lambda p, k: p.smembers(k),
        b"zset": lambda p, k: p.zrange(k, 0, -1, withscores=True),
        b"list": lambda p, k: p.lrange(k, 0, -1),
    }

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        self.values: dict[bytes, tuple[bytes, Any]] = {}
        for i in range(0, len(keys), 2000):
            chunk = keys[i : i + 2000]
            pipe = client.pipeline(transaction=False)
            for k in chunk:
                pipe.type(k)
            kinds = pipe.execute()
            pipe = client.pipeline(transaction=False)
            for k, kind in zip(chunk, kinds, strict=True):
                if kind not in self.READ:
                    raise ValueError(f"unexpected type {kind!r} for {k!r}")
                self.READ[kind](pipe, k)
            for k, kind, v in zip(chunk, kinds, pipe.execute(), strict=True):
                self.values[k] = (kind, v)

    def scan_iter(self, match: str, count: int = 0) -> Iterator[bytes]:
        return iter(list(self.values))

    def type(self, key: bytes) -> bytes:
        return self.values[key][0]

    def get(self, key: bytes, *_range: Any, **_withscores: Any) -> Any:
        return self.values[key][1]

    hgetall = smembers = lrange = zrange = get


def _is_live(fields: dict[str, str] | None) -> bool:
    return fields is not None and "del" not in fields


def compare_states(
    chaos: redis.Redis, chaos_settings: Settings, clean: redis.Redis, clean_settings: Settings
) -> Comparison:
    """Compare the chaos namespace with the clean pass's by the module's rules."""
    out = Comparison()
    shards = chaos_settings.index.shards
    n_text = len(chaos_settings.index.schema_.text_fields)
    ns_a, ns_b = chaos_settings.redis.namespace, clean_settings.redis.namespace
    snap_a, snap_b = Snapshot(chaos, ns_a), Snapshot(clean, ns_b)
    la = logical_dump(snap_a, ns_a, shards, n_text)  # type: ignore[arg-type]
    lb = logical_dump(snap_b, ns_b, shards, n_text)  # type: ignore[arg-type]
    diff = out.differences

    # Documents, per id.
    docs_a, docs_b = la["docs"], lb["docs"]
    for doc_id in sorted(docs_a.keys() | docs_b.keys()):
        a, b = docs_a.get(doc_id), docs_b.get(doc_id)
        if a == b:
            continue
        va, vb = int(a["v"]) if a else -1, int(b["v"]) if b else -1
        if b is not None and not _is_live(b) and _is_live(a):
            out.resurrected += 1
            diff.append(f"resurrected: {doc_id} deleted at v{vb} (clean), live at v{va} (chaos)")
        elif va < vb:
            out.lost += 1
            diff.append(f"lost: {doc_id} at v{va} (chaos) instead of v{vb} (clean)")
        else:
            diff.append(f"document {doc_id} differs at v{va}: chaos {a!r:.200} clean {b!r:.200}")
    for part in ("postings", "keywords", "values", "stats"):
        pa, pb = la[part], lb[part]
        for k in sorted(pa.keys() | pb.keys(), key=str):
            if pa.get(k) != pb.get(k):
                diff.append(
                    f"{part}[{k}] differs: chaos {pa.get(k)!r:.200} clean {pb.get(k)!r:.200}"
                )
    if la["keys"] != lb["keys"]:
        only_a = sorted(set(la["keys"]) - set(lb["keys"]))
        only_b = sorted(set(lb["keys"]) - set(la["keys"]))
        diff.append(f"document key names differ: chaos only {only_a[:5]}, clean only {only_b[:5]}")

    # Behaviors and everything outside the document shards, key by key.
    raw_a = _strip(dump_namespace(snap_a, ns_a), ns_a)  # type: ignore[arg-type]
    raw_b = _strip(dump_namespace(snap_b, ns_b), ns_b)  # type: ignore[arg-type]
    for key in sorted(raw_a.keys() | raw_b.keys()):
        if key.startswith(b"{s"):
            continue  # document shards: compared above, docnum-independently
        a, b = raw_a.get(key), raw_b.get(key)
        family = key.split(b"}:", 1)[1] if key.startswith(b"{b") else key
        if family.startswith(b"ic:"):
            ca = {f: int(v) for f, v in a or []}
            cb = {f: int(v) for f, v in b or []}
            for action in ca.keys() | cb.keys():
                d = ca.get(action, 0) - cb.get(action, 0)
                if d > 0:
                    out.double_applied += d
                elif d < 0:
                    out.lost += -d
            if ca != cb:
                diff.append(f"counters {key!r}: chaos {ca} clean {cb}")
        elif family.startswith(tuple(f.encode() for f in FLOAT_FAMILIES)):
            za, zb = dict(a or []), dict(b or [])
            if za.keys() != zb.keys():
                diff.append(
                    f"{key!r} members differ: chaos only {sorted(za.keys() - zb.keys())[:5]}, "
                    f"clean only {sorted(zb.keys() - za.keys())[:5]}"
                )
            for m in za.keys() & zb.keys():
                out.float_scores_compared += 1
                d = abs(za[m] - zb[m])
                out.max_log2_diff = max(out.max_log2_diff, d)
                if d > LOG2_TOLERANCE:
                    diff.append(
                        f"{key!r}[{m!r}]: chaos {za[m]!r} clean {zb[m]!r} (log2 diff {d:.3g})"
                    )
        elif a != b:
            diff.append(f"{key!r} differs: chaos {a!r:.300} clean {b!r:.300}")

    stats = [dict(v) for k, v in raw_b.items() if k.endswith(b":bs")]
    out.summary = {
        "documents_live": sum(1 for d in docs_b.values() if _is_live(d)),
        "documents_deleted": sum(1 for d in docs_b.values() if not _is_live(d)),
        "behavior_events_applied": sum(int(s.get(b"applied", 0)) for s in stats),
        "behavior_events_duplicate": sum(int(s.get(b"duplicate", 0)) for s in stats),
        "behavior_users": sum(1 for k in raw_b if b"}:u:" in k),
        "behavior_items_counted": sum(1 for k in raw_b if b"}:ic:" in k),
        "behavior_neighbour_lists": sum(1 for k in raw_b if b"}:nb:" in k),
        "keys_compared": len(raw_a.keys() | raw_b.keys()),
    }
    return out


def _strip(dump: dict[bytes, Any], namespace: str) -> dict[bytes, Any]:
    prefix = f"{namespace}:".encode()
    return {k[len(prefix) :]: v for k, v in dump.items()}
