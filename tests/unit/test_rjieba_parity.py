"""rjieba may stand in for jieba only if it gives the same tokens on real text.

The sample is every STRIDE-th People's Daily paragraph and review (about 18,000 documents
with the default stride 3, ~25 s, jieba being the slow side). PARITY_STRIDE=1
checks the whole corpus (about 54,600 documents, ~75 s).

What the raw engines do differently (found here, and why the analyzer only gives them
Han text): on whole normalized texts, ``cut_for_search`` differs in about 0.4% of the
paragraphs and 2% of the reviews, always on non-Han tokens: jieba-rs keeps ``3-74``, ``1.3nm`` and
``www.smallstonesoft.com`` whole and also emits their pieces, jieba splits them. On
Han text the two are identical.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import pytest
import rjieba

from rtindex.corpus import peoples_daily_paragraphs, review_sentences
from rtindex.indexer import analysis
from rtindex.indexer.analysis import Analyzer
from rtindex.settings import AnalysisSettings

STRIDE = int(os.environ.get("PARITY_STRIDE", "3"))
CORPORA: dict[str, Callable[[], list[str]]] = {
    "peoples_daily": peoples_daily_paragraphs,
    "reviews": review_sentences,
}


def sample(corpus: str) -> list[str]:
    return CORPORA[corpus]()[::STRIDE]


def first_difference(a: list[str], b: list[str]) -> str:
    i = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return f"jieba {a[max(0, i - 2) : i + 4]} vs rjieba {b[max(0, i - 2) : i + 4]}"


@pytest.mark.parametrize("corpus", list(CORPORA))
def test_analyzer_tokens_identical(corpus: str) -> None:
    jieba_an = Analyzer(AnalysisSettings(engine="jieba"))
    rjieba_an = Analyzer(AnalysisSettings(engine="rjieba"))
    docs = sample(corpus)
    mismatches = []
    tokens = 0
    for doc in docs:
        a, b = jieba_an.tokens(doc), rjieba_an.tokens(doc)
        tokens += len(a)
        if a != b:
            mismatches.append(f"{doc[:40]!r}: {first_difference(a, b)}")
    print(f"\n{corpus}: analyzer, {len(docs)} documents, {tokens} tokens, {len(mismatches)} differ")
    assert len(docs) > 5_000
    assert mismatches == []


def han_only(tokens: Iterable[str]) -> list[str]:
    return [t for t in tokens if analysis._HAN_WORD.fullmatch(t)]


@pytest.mark.parametrize("corpus", list(CORPORA))
def test_raw_cut_for_search_identical_on_han(corpus: str) -> None:
    jieba_tk = analysis._jieba_base()  # a jieba.Tokenizer with the default dictionary
    rj = rjieba.Jieba()
    docs = sample(corpus)
    differ = han_differ = 0
    examples = []
    for doc in docs:
        # Whole normalized texts, as an analyzer would pass them without its Han split.
        text = analysis.normalize(doc)
        a, b = list(jieba_tk.cut_for_search(text)), rj.cut_for_search(text, True)
        if a != b:
            differ += 1
            if han_only(a) != han_only(b):
                han_differ += 1
                examples.append(first_difference(han_only(a), han_only(b)))
    print(
        f"\n{corpus}: raw cut_for_search, {len(docs)} documents, {differ} differ in any token,"
        f" {han_differ} in Han tokens"
    )
    assert han_differ == 0, examples[:5]
