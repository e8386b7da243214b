"""The analyzer: normalization, search-mode segmentation, stop words, user dictionaries."""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtindex.corpus import peoples_daily_paragraphs, review_sentences
from rtindex.indexer import analysis
from rtindex.indexer.analysis import Analyzer, normalize
from rtindex.settings import AnalysisSettings

ENGINES = ["jieba", "rjieba"]


def analyzer(**kw: object) -> Analyzer:
    return Analyzer(AnalysisSettings.model_validate(kw))


@pytest.fixture(scope="module", params=ENGINES)
def an(request: pytest.FixtureRequest) -> Analyzer:
    return analyzer(engine=request.param)


def finds(an: Analyzer, doc: str, query: str) -> bool:
    """Every query token is a token of the document (what an AND query needs)."""
    q = an.tokens(query)
    return bool(q) and set(q) <= set(an.tokens(doc))


# --- normalization and scripts ---


def test_full_width_becomes_half_width(an: Analyzer) -> None:
    assert an.tokens("ＡＢＣ１２３") == ["abc123", "abc", "123"]
    assert finds(an, "ＡＢＣ１２３", "abc123")
    assert finds(an, "１９９８年新年讲话", "1998")


def test_case_is_folded(an: Analyzer) -> None:
    assert an.tokens("Hello WORLD") == ["hello", "world"]
    assert finds(an, "Straße", "STRASSE")
    assert an.tokens("ΣΑΣ") == ["σασ"]


def test_mixed_script_run(an: Analyzer) -> None:
    doc = "我爱学习语言english和Python3"
    assert finds(an, doc, "english")
    assert finds(an, doc, "语言")
    assert finds(an, doc, "python")
    assert finds(an, doc, "Python3")


@pytest.mark.parametrize(
    ("doc", "query"),
    [
        ("北京烤鸭", "北京"),
        ("北京烤鸭", "烤鸭"),
        ("全聚德北京烤鸭很好吃", "北京"),
        ("中华人民共和国成立", "共和国"),
        ("中华人民共和国成立", "人民"),
        ("我在北京", "北京"),
    ],
)
def test_search_mode_query_doc_consistency(an: Analyzer, doc: str, query: str) -> None:
    assert finds(an, doc, query)


def test_long_word_query_finds_the_same_long_word(an: Analyzer) -> None:
    # The long word and its dictionary sub-words come out on both sides.
    assert an.tokens("北京烤鸭") == ["北京", "烤鸭", "北京烤鸭"]
    assert finds(an, "我们去吃北京烤鸭吧", "北京烤鸭")


def test_alphanumeric_runs_and_their_parts(an: Analyzer) -> None:
    doc = "新款iPhone15Pro发布"
    assert "iphone15pro" in an.tokens(doc)
    for q in ("iphone15pro", "iphone", "iPhone 15 Pro", "IPHONE15PRO"):
        assert finds(an, doc, q), q


def test_decimals_versions_and_programming_languages(an: Analyzer) -> None:
    assert an.tokens("价格3.5元") == ["价格", "3.5", "元"]
    assert an.tokens("v1.2.3") == ["v1.2.3", "v", "1.2.3"]
    assert an.tokens("学习c++和C#") == ["学习", "c++", "c", "c#", "c"]
    assert an.tokens("e-mail") == ["e", "mail"]
    assert an.tokens("end.start") == ["end", "start"]  # a dot joins digits only
    assert an.tokens("issue#5") == ["issue", "5"]


def test_punctuation_symbols_and_whitespace_are_never_tokens(an: Analyzer) -> None:
    assert an.tokens("，。！？、；：“”（）《》——…… ,.!?;:'\"()[]{}<>/\\|@$%^&*_=+~`") == []
    assert an.tokens("hello, world!\u3000你好！") == ["hello", "world", "你好"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "\u3000\t\r\n",
        "😀👍🏽👨‍👩‍👧❤️1️⃣",
        "\u200b\u200d\ufeff\u2028",
        "\x00\x01\x7f",
        "\u0301\u0301a\u0301",
        "ｱｲｳ Ⅻ ﬁ ① İstanbul",
        "한국어 مرحبا עברית हिन्दी ไทย",
        "𠮷野家 㐀 〇 \U0010ffff \ue000",
        "北\u0301京++ #",
        "a" * 10_000,
        "中" * 10_000,
        "北京" * 5_000 + " x1" * 3_000,
        "\ud800北京\udfff",  # lone surrogates: never reach the segmenter
    ],
    ids=lambda text: repr(text[:12]),
)
def test_weird_input_never_raises(an: Analyzer, text: str) -> None:
    for t in an.tokens(text):
        assert t and t == normalize(t)


def test_normalize_is_a_fixed_point_for_every_code_point() -> None:
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        once = normalize(chr(cp))
        assert normalize(once) == once, hex(cp)


# --- stop words ---


def test_builtin_stop_words(an: Analyzer) -> None:
    assert an.tokens("我们的北京") == ["北京"]
    assert an.tokens("The cat is on the mat") == ["cat", "mat"]


def test_stop_words_replaced(an: Analyzer) -> None:
    custom = analyzer(engine=an.engine, stopwords=["北京", "ＭＡＴ"])
    assert custom.tokens("我们的北京") == ["我们", "的"]
    assert custom.tokens("the mat") == ["the"]  # normalized like text: ＭＡＴ == mat


def test_stop_words_disabled(an: Analyzer) -> None:
    none = analyzer(engine=an.engine, stopwords=[])
    assert none.tokens("我们的北京") == ["我们", "的", "北京"]
    assert none.tokens("the cat") == ["the", "cat"]


def test_stop_words_file_adds_to_the_list(an: Analyzer, tmp_path: Path) -> None:
    f = tmp_path / "stop.txt"
    f.write_text("# my words\n烤鸭\n\nCAT  # trailing comment\n", encoding="utf-8")
    added = analyzer(engine=an.engine, stopwords_file=str(f))
    assert added.tokens("我们的北京烤鸭") == ["北京", "北京烤鸭"]
    assert added.tokens("the cat sat") == ["sat"]
    only = analyzer(engine=an.engine, stopwords=[], stopwords_file=str(f))
    assert only.tokens("我们 cat") == ["我们"]


def test_builtin_list_is_function_words_only() -> None:
    stop = analysis._stopwords(AnalysisSettings())
    assert {"的", "了", "和", "是", "在", "我们", "the", "and", "of"} <= stop
    # Content words people search for must never be stop words.
    assert not {"不", "好", "中国", "北京", "人", "有", "new", "can", "c", "x"} & stop
    assert all(w == normalize(w) for w in stop)


# --- user dictionaries ---

USER_DICT = """\
# a comment line
蓝瘦香菇
杭帮菜 50000 n
茶香鸡 2000
ｉＰｈｏｎｅ手机 10
北京 0
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_user_dict(engine: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    f = tmp_path / "user.txt"
    f.write_text(USER_DICT, encoding="utf-8")
    text = "今天蓝瘦香菇，去外婆家吃杭帮菜和茶香鸡"
    plain = analyzer(engine=engine)
    assert "蓝瘦香菇" not in plain.tokens(text)
    with caplog.at_level(logging.WARNING, logger="rtindex.indexer.analysis"):
        custom = analyzer(engine=engine, user_dict=str(f))
    assert custom.engine == engine
    tokens = custom.tokens(text)
    assert {"蓝瘦香菇", "杭帮菜", "茶香鸡"} <= set(tokens)
    # Not all-Han (only Han text is segmented) and frequency 0: skipped, loudly.
    assert "skipped 2 entries" in caplog.text
    assert "北京" in custom.tokens("北京")
    # The dictionary is this analyzer's own: the default one is unchanged.
    assert "蓝瘦香菇" not in analyzer(engine=engine).tokens(text)


def test_user_dict_frequencies_resolved_like_jieba(tmp_path: Path) -> None:
    f = tmp_path / "user.txt"
    # Omitted frequency, explicit, and frequent dictionary words demoted (which changes
    # jieba's total differently from rjieba's unless compensated).
    f.write_text("蓝瘦香菇\n江泽民主席\n新年讲话\n的 5\n中国 3\n是 1\n一 10\n", encoding="utf-8")
    words = analysis.read_user_dict(f)
    _, resolved = analysis._build_jieba(words)
    assert resolved[0] == ("蓝瘦香菇", 1, 0)  # jieba's suggest_freq: just enough
    assert resolved[3] == ("的", 5, 318825)
    j = analyzer(engine="jieba", user_dict=str(f))
    r = analyzer(engine="rjieba", user_dict=str(f))
    docs = peoples_daily_paragraphs()[:1500] + review_sentences()[:1500]
    mismatches = [d for d in docs if j.tokens(d) != r.tokens(d)]
    assert mismatches == []
    assert any("江泽民主席" in r.tokens(d) for d in docs)


# --- length, engine choice, threads ---


def test_max_token_chars(an: Analyzer) -> None:
    short = analyzer(engine=an.engine, max_token_chars=5)
    tokens = short.tokens("abcdef abc12x 中华人民共和国 hello")
    assert "abcdef" not in tokens
    assert "abc12x" not in tokens and "abc" not in tokens  # a blob goes with its parts
    assert "中华人民共和国" not in tokens and "共和国" in tokens
    assert "hello" in tokens
    assert all(len(t) <= 5 for t in tokens)


def test_auto_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = "rjieba" if analysis._installed_versions() == analysis.PROVEN_VERSIONS else "jieba"
    assert analyzer().engine == expected
    monkeypatch.setattr(analysis, "_installed_versions", lambda: {"jieba": "0.42.1"})
    assert analysis.choose_engine("auto") == "jieba"
    with pytest.raises(RuntimeError, match="not installed"):
        analysis.choose_engine("rjieba")
    monkeypatch.setattr(
        analysis, "_installed_versions", lambda: {"jieba": "0.42.1", "rjieba": "9.9.9"}
    )
    assert analysis.choose_engine("auto") == "jieba"  # parity unproven at that version
    assert analysis.choose_engine("rjieba") == "rjieba"  # asked for by name


def test_jieba_is_quiet_and_shared() -> None:
    first = analyzer(engine="jieba")
    assert logging.getLogger("jieba").getEffectiveLevel() >= logging.WARNING
    assert analyzer(engine="jieba")._cut is first._cut  # built once per configuration


def test_concurrent_calls_agree(an: Analyzer) -> None:
    docs = peoples_daily_paragraphs()[:300] + review_sentences()[:300]
    expected = [an.tokens(d) for d in docs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(an.tokens, docs)) == expected


def test_tokens_of_a_token_contain_it_for_most_words() -> None:
    # Not always: search mode emits sub-words (一九 from 一九九八年) that, cut alone,
    # split differently. Measured on this corpus: about 99% of token occurrences.
    an = analyzer(engine="rjieba")
    counts = Counter(t for d in peoples_daily_paragraphs()[:3000] for t in an.tokens(d))
    found = sum(n for t, n in counts.items() if t in an.tokens(t))
    assert found / sum(counts.values()) > 0.98


# --- properties ---

_MIXED = st.text(
    alphabet=st.sampled_from(
        list("北京烤鸭中华人民共和国语言的了 \u3000english123.c++#-_ＡＢＣ１，。é\u0301")
    ),
    max_size=60,
)
_TEXT = st.one_of(st.text(max_size=200), _MIXED)


@settings(max_examples=300, deadline=None)
@given(text=_TEXT)
def test_any_text_gives_clean_tokens(text: str) -> None:
    for an in (analyzer(engine="jieba"), analyzer(engine="rjieba")):
        tokens = an.tokens(text)
        for t in tokens:
            assert t
            assert t == normalize(t)
            assert not any(ch.isspace() for ch in t)
            assert len(t) <= an.settings.max_token_chars
            assert t not in an._stop


@settings(max_examples=200, deadline=None)
@given(text=_TEXT)
def test_engines_agree_on_any_text(text: str) -> None:
    assert analyzer(engine="jieba").tokens(text) == analyzer(engine="rjieba").tokens(text)


@settings(max_examples=200, deadline=None)
@given(
    word=st.from_regex(r"[a-z][a-z0-9]{0,20}", fullmatch=True),
    before=st.text(max_size=20),
    after=st.text(max_size=20),
)
def test_latin_word_is_found_in_any_context(word: str, before: str, after: str) -> None:
    an = analyzer()
    if word in an._stop:
        return
    assert word in an.tokens(word)
    assert word in an.tokens(f"{before} {word.upper()}，{after}")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="北京烤鸭店的 iPhone15-c++ＡＢ。\u0301", max_size=30))
def test_segments_are_the_tokens_with_their_origin(text: str) -> None:
    a = analyzer()
    segments = a.segments(text)
    assert [t for _run, tokens in segments for t in tokens] == a.tokens(text)
    assert [run for run, _ in segments if run] == analysis.han_runs(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="北京烤鸭店的 ab。", max_size=30), st.data())
def test_every_han_substring_has_its_bigrams_in_the_text(text: str, data: st.DataObject) -> None:
    grams = analysis.han_bigrams(text)
    for run in analysis.han_runs(text):
        if len(run) < 2:
            continue
        i = data.draw(st.integers(0, len(run) - 2))
        j = data.draw(st.integers(i + 2, len(run)))
        assert set(analysis.bigrams_of_run(run[i:j])) <= grams
    assert analysis.han_bigrams("京烤 烤鸭") == {"京烤", "烤鸭"}  # never across a gap
