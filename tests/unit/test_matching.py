"""op=and requirements from search-mode tokens (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rtindex.query.matching import Requirement, and_requirements, cover_of


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
