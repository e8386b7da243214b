"""Fuzzing the analyzer with any text: all of Unicode (lone surrogates included, which
the decoder never lets through but a caller might), combining marks, right-to-left
text, emoji, control characters and very long runs. It never raises, and every token
is what analysis.py promises: non-empty, at most ``max_token_chars``, a piece of the
normalized text made of letters, digits and their marks (Han segments, a dot between
digits, a trailing ``++`` or ``#``), never a stop word, already normalized (NFKC,
case-folded), and the same on every call."""

from __future__ import annotations

import os
import unicodedata

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rtindex.indexer.analysis import Analyzer, normalize
from rtindex.settings import AnalysisSettings

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def analyzer(**kw: object) -> Analyzer:
    return Analyzer(AnalysisSettings.model_validate(kw))


@pytest.fixture(scope="module", params=["jieba", "rjieba"])
def an(request: pytest.FixtureRequest) -> Analyzer:
    return analyzer(engine=request.param)


@pytest.fixture(scope="module")
def tiny() -> Analyzer:
    """A short token limit, so that the limit is exercised by short texts too."""
    return analyzer(engine="rjieba", max_token_chars=3)


# Characters weighted towards what breaks tokenizers, plus any code point at all.
interesting = st.sampled_from(
    list(
        "aZ9_.+#-,;:!?'\"/\\ \t\n\r\x00\x01\x1f\x7f\x85\x9f\u00a0\u2028\u2029\u3000"
        "\u0301\u0308\u0336\u20dd\u034f\u200b\u200c\u200d\u200e\u200f\u202e\ufeff\ufe0f"
        "éßİıΣσςﬁﬃ①Ⅻ２ＡｱAΩÅ"
        "北京烤鸭中华人民共和国〇㐀𠮷鿕鿖"
        "مرحباעבריתहिन्दीไทย한국어"
        "😀👍🏽👨‍👩‍👧❤1️⃣🏳️‍🌈"
        "\ud800\udfff\ue000\U0010ffff"
        "٣०৪"  # digits of other scripts
    )
)
any_char = st.characters(codec=None) | st.integers(0xD800, 0xDFFF).map(chr)
texts = st.text(interesting | any_char, max_size=300)
runs = st.tuples(
    st.sampled_from(["a", "中", "1", "é", "😀", "\u0301", " ", "1.", "c++"]), st.integers(1, 3000)
).map(lambda p: p[0] * p[1])

WORD_EXTRAS = set(".+#")


def check_tokens(an: Analyzer, text: str) -> list[str]:
    tokens = an.tokens(text)
    normalized = normalize(text)
    limit = an.settings.max_token_chars
    for t in tokens:
        assert t, text
        assert len(t) <= limit, (t, limit)
        assert t in normalized, (t, normalized)
        assert t not in an._stop, t
        assert normalize(t) == t, (t, normalize(t))
        # Case-folded up to canonical equivalence: casefold decomposes a few letters
        # (U+01F0 ǰ -> j + caron) that NFKC composes again.
        assert unicodedata.normalize("NFKC", t.casefold()) == t, t
        for c in t:
            cat = unicodedata.category(c)
            assert not c.isspace() and cat not in ("Cc", "Cf", "Cs", "Zs"), (t, hex(ord(c)))
            assert cat[0] in "LNM" or c in WORD_EXTRAS, (t, hex(ord(c)), cat)
        assert t[0] not in WORD_EXTRAS and unicodedata.category(t[0])[0] in "LN", t
    assert an.tokens(text) == tokens  # deterministic
    return tokens


@FUZZ
@given(texts)
@example("\ud800北京\udfff")
@example("ǅ ǈ ǋ ǲ ᾈ ᾼ ῌ ῼ")  # titlecase letters
@example("İ̇ i̇ ẞ ß ﬀ ﬅ ŉ")  # casefolding changes the length
@example("a\u0301\u0301\u0301\u0327 ᄀ\u1161\u11a8 ㄱㅏ")  # marks; decomposed Hangul
@example("x1.2.3.++ c#++ 3..5 .5 5. ++ # #c c# c##")
def test_any_text(an: Analyzer, text: str) -> None:
    check_tokens(an, text)


@FUZZ
@given(texts)
def test_any_text_with_a_tiny_token_limit(tiny: Analyzer, text: str) -> None:
    check_tokens(tiny, text)


@settings(max_examples=30, deadline=None)
@given(runs, st.sampled_from(["", " ", "北京", "x"]))
def test_long_runs(an: Analyzer, run: str, around: str) -> None:
    check_tokens(an, around + run + around)


@FUZZ
@given(texts)
def test_a_word_token_is_found_by_itself(an: Analyzer, text: str) -> None:
    """A query made of one token of a text finds it: the token analyzes to itself (among
    its parts). Han tokens are the segmenter's and are checked by test_analysis.py."""
    for t in an.tokens(text):
        if not any("\u4e00" <= c <= "\u9fd5" for c in t):
            assert t in an.tokens(t), (t, an.tokens(t))


@FUZZ
@given(st.lists(texts, min_size=2, max_size=4))
def test_joining_with_spaces_concatenates_the_tokens(an: Analyzer, parts: list[str]) -> None:
    """Whitespace only separates: the tokens of "a b" are those of "a" then of "b"."""
    expected = [t for p in parts for t in an.tokens(p)]
    assert an.tokens(" ".join(parts)) == expected
