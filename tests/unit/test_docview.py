"""Indexed views of documents and the diff between two of them (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rtindex.indexer.docview import IndexedView, apply_patch, build_view, diff_views
from rtindex.settings import IndexSchema

SCHEMA = IndexSchema()


def tok(text: str) -> list[str]:
    return text.lower().split()


def test_view_counts_terms_per_field_and_lengths() -> None:
    v = build_view(
        {"title": "a b a", "body": "b c", "price": 3, "tags": ["x", "y"], "city": "z"}, SCHEMA, tok
    )
    assert v.terms == {"a": (2, 0), "b": (1, 1), "c": (0, 1)}
    assert v.lengths == (3, 2)
    assert v.keywords == {("tags", "x"), ("tags", "y"), ("city", "z")}
    assert v.numbers == {"price": 3.0}


def test_geo_becomes_two_columns() -> None:
    v = build_view({"location": {"lat": 30.5, "lon": 120}}, SCHEMA, tok)
    assert v.numbers == {"location.lat": 30.5, "location.lon": 120.0}


def test_json_round_trip() -> None:
    v = build_view(
        {"title": "北京 烤鸭", "body": "x", "category": "餐饮", "price": 1.5}, SCHEMA, tok
    )
    assert IndexedView.from_json(v.to_json()) == v


def test_diff_writes_only_the_difference() -> None:
    old = build_view({"title": "a b", "body": "c", "tags": ["x"]}, SCHEMA, tok)
    new = build_view({"title": "a b b", "body": "d", "tags": ["x", "y"]}, SCHEMA, tok)
    d = diff_views(old, new, 2)
    assert d.add == {"d": (0, 1)}
    assert d.update == {"b": (2, 0)}
    assert d.remove == ("c",)
    assert d.keywords_add == (("tags", "y"),)
    assert d.keywords_remove == ()
    assert d.live_delta == 0
    assert d.length_delta == (1, 0)


def test_diff_of_create_and_delete() -> None:
    v = build_view({"title": "a", "category": "k"}, SCHEMA, tok)
    created = diff_views(None, v, 2)
    assert (
        created.add == {"a": (1, 0)} and created.live_delta == 1 and created.length_delta == (1, 0)
    )
    deleted = diff_views(v, None, 2)
    assert deleted.remove == ("a",) and deleted.keywords_remove == (("category", "k"),)
    assert deleted.live_delta == -1 and deleted.length_delta == (-1, 0)


def test_patch_semantics() -> None:
    assert apply_patch({"a": 1, "b": 2}, {"b": None, "c": 3}) == {"a": 1, "c": 3}


def test_unchanged_text_fields_are_not_tokenized_again() -> None:
    calls: list[str] = []

    def counting(text: str) -> list[str]:
        calls.append(text)
        return tok(text)

    old = build_view({"title": "a b", "body": "c"}, SCHEMA, counting)
    calls.clear()
    new = build_view(
        {"title": "a b", "body": "c", "price": 2},
        SCHEMA,
        counting,
        reuse=old,
        unchanged_text=frozenset({"title", "body"}),
    )
    assert calls == []
    assert new.terms == old.terms and new.numbers == {"price": 2.0}


words = st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), max_size=6).map(" ".join)
docs = st.fixed_dictionaries(
    {"title": words, "body": words, "tags": st.lists(st.sampled_from(["x", "y", "z"]), max_size=3)}
)


@given(docs, docs)
def test_applying_a_diff_to_the_old_postings_gives_the_new(
    a: dict[str, object], b: dict[str, object]
) -> None:
    old, new = build_view(a, SCHEMA, tok), build_view(b, SCHEMA, tok)
    d = diff_views(old, new, 2)
    postings = dict(old.terms)
    for t in d.remove:
        del postings[t]
    postings.update(d.add)
    postings.update(d.update)
    assert postings == new.terms
    kws = (old.keywords - set(d.keywords_remove)) | set(d.keywords_add)
    assert kws == new.keywords
    assert tuple(o + x for o, x in zip(old.lengths, d.length_delta, strict=False)) == new.lengths
