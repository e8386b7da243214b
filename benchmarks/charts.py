"""PNG charts of the benchmark results, for BENCHMARKS.md (matplotlib, no display needed).

    python benchmarks/charts.py [--results DIR] [--out DIR]

run_all.py calls ``render_all`` when it rewrites BENCHMARKS.md, so the charts always show
the results the tables show. Each chart is drawn from one results file:

- ``freshness_cdf.png`` (peers.json): the distribution of update visibility per engine,
  one panel per background write rate;
- ``latency_vs_size.png`` (peers.json, size curve): query p50 and p99 against documents;
- ``memory_vs_size.png`` (peers.json, size curve): bytes per document and per posting;
- ``recall.png`` (recall.json): recall and precision@10 per engine and query class.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CHARTS = HERE / "charts"
COLORS = {
    "rtindex": "#d62728",
    "rtindex HTTP": "#ff9896",
    "RediSearch": "#1f77b4",
    "SQLite FTS5": "#2ca02c",
    "FTS5, plain AND": "#98df8a",
    "tantivy": "#9467bd",
}
# PNG metadata without the matplotlib version: a re-render of the same results is the same file.
_META = {"Software": None}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "figure.dpi": 110})
    return plt


def _color(name: str) -> str:
    return COLORS.get(name.split(" (")[0], "#7f7f7f")


def freshness_cdf(peers: dict[str, Any], out: Path) -> Path | None:
    vis = peers.get("visibility") or []
    if not vis:
        return None
    plt = _plt()
    rates = sorted({v["rate"] for v in vis})
    fig, axes = plt.subplots(1, len(rates), figsize=(5.2 * len(rates), 3.6), squeeze=False)
    for ax, rate in zip(axes[0], rates, strict=True):
        for v in (v for v in vis if v["rate"] == rate):
            ms = sorted(v["upsert_ms"] + v["delete_ms"])
            if not ms:
                continue
            name = v["engine"] + (f" (refresh {v['refresh_s']:g} s)" if v.get("refresh_s") else "")
            ys = [(i + 1) / len(ms) for i in range(len(ms))]
            style = ":" if v.get("refresh_s") == 0.1 else "-"
            ax.step(ms, ys, where="post", label=name, color=_color(v["engine"]), ls=style)
        ax.axvline(250, color="k", lw=0.6, ls="--")
        ax.text(250, 1.02, "250 ms", fontsize=7, ha="center")
        ax.set_xscale("log")
        ax.set_xlabel("write -> visible to a query (ms, log)")
        ax.set_ylabel("share of writes")
        ax.set_title(f"update visibility, {rate} background upserts/s")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path = out / "freshness_cdf.png"
    fig.savefig(path, metadata=_META)
    plt.close(fig)
    return path


def _scale_series(rows: list[dict[str, Any]], key: str) -> dict[str, tuple[list[int], list[float]]]:
    series: dict[str, tuple[list[int], list[float]]] = {}
    for r in sorted(rows, key=lambda r: r["size"]):
        xs, ys = series.setdefault(r["engine"], ([], []))
        xs.append(r["size"])
        ys.append(r[key])
    return series


def latency_vs_size(peers: dict[str, Any], out: Path) -> Path | None:
    rows = (peers.get("scale") or {}).get("rows") or []
    if not rows:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, op in zip(axes, ("or", "and"), strict=True):
        for q, style in ((99, "-"), (50, "--")):
            for name, (xs, ys) in _scale_series(rows, f"{op}_{q}").items():
                ax.plot(xs, ys, style, marker="o", ms=3, color=_color(name),
                        label=f"{name} p{q}")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("documents (SYNTHETIC, log)")
        ax.set_ylabel("ms (log)")
        ax.set_title(f"query latency, `{op}`, top 10, in process")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    path = out / "latency_vs_size.png"
    fig.savefig(path, metadata=_META)
    plt.close(fig)
    return path


def memory_vs_size(peers: dict[str, Any], out: Path) -> Path | None:
    rows = (peers.get("scale") or {}).get("rows") or []
    if not rows:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, label in (
        (axes[0], "bytes_per_doc", "bytes per document"),
        (axes[1], "bytes_per_posting", "bytes per posting"),
    ):
        for name, (xs, ys) in _scale_series(rows, key).items():
            ax.plot(xs, ys, marker="o", ms=3, color=_color(name), label=name)
        ax.set_xscale("log")
        ax.set_xlabel("documents (SYNTHETIC, log)")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.set_title(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(
        "RAM (rtindex, RediSearch: Redis used_memory) and disk (FTS5, tantivy)", fontsize=9
    )
    fig.tight_layout()
    path = out / "memory_vs_size.png"
    fig.savefig(path, metadata=_META)
    plt.close(fig)
    return path


def recall_bars(recall: dict[str, Any], out: Path) -> Path | None:
    corpora = recall.get("corpora") or {}
    if not corpora:
        return None
    plt = _plt()
    classes = ["word", "sub-word", "non-word"]
    fig, axes = plt.subplots(
        2, len(corpora), figsize=(5.2 * len(corpora), 5.6), squeeze=False, sharey=True
    )
    for col, (cname, c) in enumerate(corpora.items()):
        engines = list(c["summary"])
        width = 0.8 / len(engines)
        for row, (metric, label) in enumerate((("recall", "recall"), ("p10", "precision@10"))):
            ax = axes[row][col]
            for i, eng in enumerate(engines):
                ys = [c["summary"][eng].get(cl, {}).get(metric, 0) or 0 for cl in classes]
                xs = [j + (i - (len(engines) - 1) / 2) * width for j in range(len(classes))]
                ax.bar(xs, ys, width, label=eng, color=_color(eng))
            ax.set_xticks(range(len(classes)), classes)
            ax.set_ylim(0, 1.05)
            ax.set_title(f"{label}, `and`, {cname}")
            ax.grid(True, axis="y", alpha=0.3)
            if row == 0 and col == 0:
                ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    path = out / "recall.png"
    fig.savefig(path, metadata=_META)
    plt.close(fig)
    return path


# benchmark name -> [(caption, drawing function)]
CHARTS_OF = {
    "peers": [
        ("Update visibility, cumulative distribution", freshness_cdf),
        ("Query latency against corpus size", latency_vs_size),
        ("Memory and disk against corpus size", memory_vs_size),
    ],
    "recall": [("Recall completeness and precision@10 by query class", recall_bars)],
}


def render_all(results: Path, out: Path = CHARTS) -> dict[str, list[tuple[str, Path]]]:
    """Draw every chart whose results file exists; benchmark name -> [(caption, png)]."""
    out.mkdir(parents=True, exist_ok=True)
    drawn: dict[str, list[tuple[str, Path]]] = {}
    for name, charts in CHARTS_OF.items():
        path = results / f"{name}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        for caption, fn in charts:
            png = fn(data, out)
            if png is not None:
                drawn.setdefault(name, []).append((caption, png))
    return drawn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--out", type=Path, default=CHARTS)
    args = ap.parse_args()
    for name, charts in render_all(args.results, args.out).items():
        for caption, png in charts:
            print(f"{name}: {caption} -> {png}")


if __name__ == "__main__":
    main()
