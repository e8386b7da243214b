"""What a document looks like to the index, and the difference between two such views.

Pure functions over plain data: a stored document (its fields) becomes an
:class:`IndexedView` (term frequencies per text field, field lengths, keyword values,
numeric columns); two views give a :class:`ViewDiff`, the only thing the store writes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from rtindex.indexer.analysis import han_bigrams
from rtindex.indexer.keys import geo_columns
from rtindex.settings import IndexSchema

# Posting records carry tf as u16 and doc lengths are u16: larger values saturate.
U16_MAX = 65_535

Tokenize = Callable[[str], list[str]]


@dataclass(frozen=True, slots=True)
class IndexedView:
    """The indexed facts of one live document."""

    # term -> tf per text field, in schema order
    terms: dict[str, tuple[int, ...]]
    # tokens per text field (after stop words), in schema order
    lengths: tuple[int, ...]
    # (field, value) pairs of keyword fields
    keywords: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    # numeric column -> value (geo fields become two columns)
    numbers: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "t": self.terms,  # tuples serialize as arrays
                "l": list(self.lengths),
                "k": sorted(self.keywords),
                "n": self.numbers,
            }
        )

    @staticmethod
    def from_json(raw: bytes | str) -> IndexedView:
        d = orjson.loads(raw)
        return IndexedView(
            terms={t: tuple(tf) for t, tf in d["t"].items()},
            lengths=tuple(d["l"]),
            keywords=frozenset((f, v) for f, v in d["k"]),
            numbers={c: float(x) for c, x in d["n"].items()},
        )

    def field_terms(self, i: int) -> Counter[str]:
        """The term counts of text field number ``i``."""
        return Counter({t: tf[i] for t, tf in self.terms.items() if tf[i]})


def numeric_columns(schema: IndexSchema) -> tuple[str, ...]:
    cols: list[str] = list(schema.number)
    for g in schema.geo:
        cols.extend(geo_columns(g))
    return tuple(cols)


def build_view(
    doc: Mapping[str, Any],
    schema: IndexSchema,
    tokenize: Tokenize,
    reuse: IndexedView | None = None,
    unchanged_text: frozenset[str] = frozenset(),
) -> IndexedView:
    """Analyze ``doc`` into its indexed view.

    Text fields named in ``unchanged_text`` take their counts from ``reuse`` instead
    of being tokenized again: a patch that changes only the price costs no analysis.
    """
    per_field: list[Counter[str]] = []
    for i, name in enumerate(schema.text_fields):
        if reuse is not None and name in unchanged_text:
            per_field.append(reuse.field_terms(i))
            continue
        value = doc.get(name)
        per_field.append(Counter(tokenize(value)) if isinstance(value, str) else Counter())
    terms = _merge_fields(per_field)
    lengths = tuple(min(c.total(), U16_MAX) for c in per_field)

    keywords: set[tuple[str, str]] = set()
    for name in schema.keyword:
        value = doc.get(name)
        values = value if isinstance(value, list) else [value]
        keywords.update((name, v) for v in values if isinstance(v, str) and v)

    numbers: dict[str, float] = {}
    for name in schema.number:
        value = doc.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            numbers[name] = float(value)
    for name in schema.geo:
        point = doc.get(name)
        if isinstance(point, Mapping):
            lat_col, lon_col = geo_columns(name)
            numbers[lat_col] = float(point["lat"])
            numbers[lon_col] = float(point["lon"])
    return IndexedView(
        terms=terms,
        lengths=lengths,
        keywords=frozenset(keywords),
        numbers=numbers,
    )


def _merge_fields(per_field: list[Counter[str]]) -> dict[str, tuple[int, ...]]:
    """term -> tf in each field (saturating at u16), from each field's term counts."""
    for counts in per_field:
        if counts and max(counts.values()) > U16_MAX:  # rare: saturate once, up front
            for t, n in counts.items():
                counts[t] = min(n, U16_MAX)
    if len(per_field) == 2:  # the default schema: the fast path
        a, b = per_field
        out: dict[str, tuple[int, ...]] = {t: (n, b.get(t, 0)) for t, n in a.items()}
        for t, n in b.items():
            if t not in a:
                out[t] = (0, n)
        return out
    nf = len(per_field)
    merged: dict[str, list[int]] = {}
    for i, counts in enumerate(per_field):
        for term, tf in counts.items():
            merged.setdefault(term, [0] * nf)[i] = tf
    return {t: tuple(tf) for t, tf in merged.items()}


@dataclass(frozen=True, slots=True)
class ViewDiff:
    """What must change in the index to go from one view (or none) to another (or none)."""

    add: dict[str, tuple[int, ...]]  # new postings
    update: dict[str, tuple[int, ...]]  # postings whose tf changed
    remove: tuple[str, ...]  # postings to drop
    keywords_add: tuple[tuple[str, str], ...]
    keywords_remove: tuple[tuple[str, str], ...]
    live_delta: int  # +1 created, -1 deleted, 0 otherwise
    length_delta: tuple[int, ...]  # per text field
    bigrams_add: tuple[str, ...] = ()  # Han bigram postings to add (see text_bigrams)
    bigrams_remove: tuple[str, ...] = ()

    @property
    def postings_delta(self) -> int:
        return len(self.add) - len(self.remove)


def diff_views(old: IndexedView | None, new: IndexedView | None, n_text: int) -> ViewDiff:
    old_terms = old.terms if old else {}
    new_terms = new.terms if new else {}
    add = {t: tf for t, tf in new_terms.items() if t not in old_terms}
    update = {t: tf for t, tf in new_terms.items() if t in old_terms and old_terms[t] != tf}
    remove = tuple(sorted(t for t in old_terms if t not in new_terms))
    old_kw = old.keywords if old else frozenset()
    new_kw = new.keywords if new else frozenset()
    zero = (0,) * n_text
    old_len = old.lengths if old else zero
    new_len = new.lengths if new else zero
    return ViewDiff(
        add=add,
        update=update,
        remove=remove,
        keywords_add=tuple(sorted(new_kw - old_kw)),
        keywords_remove=tuple(sorted(old_kw - new_kw)),
        live_delta=(new is not None) - (old is not None),
        length_delta=tuple(n - o for n, o in zip(new_len, old_len, strict=True)),
    )


def text_bigrams(
    doc: Mapping[str, Any] | None, schema: IndexSchema, words: Collection[str] = ()
) -> frozenset[str]:
    """The Han character bigrams of a document's text fields that are not among ``words``
    (its indexed terms): a bigram that is also a word of the document is found through
    that word's postings, so it needs no bigram posting (4 in 10 of them, on People's
    Daily). Not kept in the view (they would double the forward index): derived again
    from the stored source and the view's terms when needed."""
    if doc is None:
        return frozenset()
    out: set[str] = set()
    for name in schema.text_fields:
        value = doc.get(name)
        if isinstance(value, str):
            out |= han_bigrams(value)
    return frozenset(out.difference(words))


def apply_patch(src: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """The contract's patch: given fields replace, ``null`` removes."""
    out = dict(src)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def clean_upsert(doc: Mapping[str, Any]) -> dict[str, Any]:
    """An upsert's document as stored: a ``null`` field is the same as an absent one."""
    return {k: v for k, v in doc.items() if v is not None}
