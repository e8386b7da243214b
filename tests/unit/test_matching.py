"""op=and requirements from search-mode tokens (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rtindex.query.matching import (
    Group,
    Requirement,
    and_groups,
    and_requirements,
    contains_run,
    cover_of,
)


def test_word_with_its_sub_words_needs_the_word_or_a_cover() -> None:
    assert and_requirements(["北京", "烤鸭", "北京烤鸭"]) == [
        Requirement("北京烤鸭", ("北京", "烤鸭"))
    ]


def test_overlapping_sub_words_pick_a_left_to_right_cover() -> None:
    reqs = and_requirements(["清华", "华大", "大学", "清华大学"])
    assert reqs == [Requirement("清华大学", ("清华", "大学"))]


def test_separate_words_are_each_required() -> None:
    assert and_requirements(["北京", "大学"]) == [Requirement("北京"), Requirement("大学")]


def test_latin_run_with_parts() -> None:
    assert and_requirements(["iphone15", "iphone", "15"]) == [
        Requirement("iphone15", ("iphone", "15"))
    ]


def test_no_cover_means_the_word_itself() -> None:
    assert cover_of("北京烤鸭店", ["北京", "烤鸭"]) == ()
    assert and_requirements(["北京", "北京烤鸭店"]) == [Requirement("北京烤鸭店")]


words = st.text(alphabet="abc北京", min_size=1, max_size=4)


@given(st.lists(words, min_size=1, max_size=8))
def test_every_term_is_required_or_inside_a_required_term(terms: list[str]) -> None:
    reqs = and_requirements(terms)
    assert reqs, "a query with terms requires something"
    required = {r.term for r in reqs}
    for t in terms:
        assert t in required or any(t in r for r in required)
    for r in reqs:
        assert not r.cover or "".join(r.cover) == r.term
        assert all(p in terms and p != r.term for p in r.cover)


def test_each_han_run_is_a_literal_string_and_the_rest_one_group() -> None:
    segments = [("北京烤鸭", ["北京", "烤鸭", "北京烤鸭"]), ("", ["iphone"]), ("店", ["店"])]
    groups = and_groups(segments, substrings=True)
    assert groups == [
        Group((), "北京烤鸭"),
        Group((Requirement("iphone"), Requirement("店"))),
    ]
    assert groups[0].bigrams == ("北京", "京烤", "烤鸭") and not groups[0].exact_by_bigrams
    assert Group((), "京烤").exact_by_bigrams


def test_without_substrings_all_tokens_form_one_group() -> None:
    segments = [("北京烤鸭", ["北京", "烤鸭", "北京烤鸭"]), ("", ["iphone"])]
    assert and_groups(segments, substrings=False) == [
        Group((Requirement("北京烤鸭", ("北京", "烤鸭")), Requirement("iphone")))
    ]


def test_a_run_of_stop_words_is_still_a_substring_to_find() -> None:
    assert and_groups([("的了", [])], substrings=True) == [Group((), "的了")]
    assert and_groups([("", [])], substrings=True) == []


def test_contains_run_looks_in_normalized_text_fields_only() -> None:
    src = {"title": "老北京烤鸭", "category": "京烤", "body": 3}
    assert contains_run(src, ["title", "body"], "京烤")
    assert not contains_run(src, ["body"], "京烤")  # a keyword field does not count
    assert contains_run({"title": "北京 烤鸭"}, ["title"], "北京")
    assert not contains_run({"title": "北京 烤鸭"}, ["title"], "京烤")


def test_a_run_is_met_by_containing_it_whatever_its_words() -> None:
    # Words apart do not meet a run: 北京 ... 烤鸭 is not 北京烤鸭.
    assert and_groups([("京烤", ["京", "烤"])], substrings=True) == [Group((), "京烤")]
    assert and_groups([("北京人", ["北京", "人", "北京人"])], substrings=True) == [
        Group((), "北京人")
    ]
    # The same run twice is one group; runs typed apart are each required.
    assert and_groups([("北京", ["北京"]), ("烤鸭", ["烤鸭"]), ("北京", ["北京"])], True) == [
        Group((), "北京"),
        Group((), "烤鸭"),
    ]
    # Without the bigram postings nothing changes: single characters still count.
    assert and_groups([("京烤", ["京", "烤"])], substrings=False) == [
        Group((Requirement("京"), Requirement("烤")))
    ]
