"""What ``op=and`` requires of a document, from the query's search-mode tokens (pure).

Search-mode segmentation gives a word and its dictionary sub-words: 北京烤鸭 analyzes to
[北京, 烤鸭, 北京烤鸭]. Requiring all three would miss a document whose text segments as
北京烤鸭店 (it has 北京 and 烤鸭 but not 北京烤鸭): the segmentation-mismatch pitfall.
So ``and`` requires each *maximal* query token — one that is not part of a longer query
token — and accepts in its place a *cover*: query tokens that, laid end to end, spell it
(北京 + 烤鸭). Sub-tokens are not required on their own; they still score.

With the Han bigram postings (``index.han_bigrams``) each Han run of the query (two or
more characters, as typed between spaces and punctuation) is a literal string: a document
satisfies it by containing the run in a text field, found by intersecting the run's
bigram postings, then checked against the text for runs of 3 or more characters (their
bigrams may lie apart). So ``and`` finds exactly the documents that contain the string,
however either side was segmented (京烤 in 北京烤鸭, 集团采用 across two words), and no
document that merely has the run's words apart: that is what CJK bigram engines answer,
and what a user who typed the characters together means. Words wanted apart are typed
apart (北京 烤鸭: two runs, each required).
"""

from __future__ import annotations

from collections.abc import Collection
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from rtindex.indexer.analysis import bigrams_of_run, normalize


@dataclass(frozen=True, slots=True)
class Requirement:
    """A document satisfies it by containing ``term``, or every term of ``cover``."""

    term: str
    cover: tuple[str, ...] = ()


def cover_of(word: str, parts: Collection[str]) -> tuple[str, ...]:
    """Parts that spell ``word`` left to right, longest first at each step; () if none."""
    return _cover(word, set(parts))


def _cover(word: str, parts: AbstractSet[str]) -> tuple[str, ...]:
    # Substrings of the word looked up in the set: O(len(word)^2), whatever the number
    # of parts (a query may have a thousand).
    out: list[str] = []
    pos = 0
    while pos < len(word):
        step = next(
            (
                word[pos:end]
                for end in range(len(word), pos, -1)
                if (end - pos) < len(word) and word[pos:end] in parts
            ),
            None,
        )
        if step is None:
            return ()
        out.append(step)
        pos += len(step)
    return tuple(out)


def _inside_others(unique: list[str]) -> set[str]:
    """The tokens that are a proper substring of another token: every substring of every
    token looked up, O(sum of len^2) instead of O(tokens^2) substring searches."""
    tokens = set(unique)
    # "" is inside any other token (the analyzer never makes one; kept for exactness).
    inside: set[str] = {""} if "" in tokens and len(tokens) > 1 else set()
    for other in unique:
        n = len(other)
        for i in range(n):
            for j in range(i + 1, n + 1):
                if j - i < n and other[i:j] in tokens:
                    inside.add(other[i:j])
    return inside


def and_requirements(terms: list[str]) -> list[Requirement]:
    """The requirements of ``op=and`` for the query's unique tokens, in query order."""
    unique = list(dict.fromkeys(terms))
    inside = _inside_others(unique)  # part of a longer query token: that one covers it
    parts = set(unique)
    return [Requirement(t, _cover(t, parts)) for t in unique if t not in inside]


@dataclass(frozen=True, slots=True)
class Group:
    """One unit of ``op=and``: satisfied by meeting every requirement or, when ``run``
    is set (and there are no requirements), by containing that Han string."""

    requirements: tuple[Requirement, ...]
    run: str = ""

    @property
    def bigrams(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(bigrams_of_run(self.run)))

    @property
    def exact_by_bigrams(self) -> bool:
        """A run of two characters is its one bigram: its postings need no checking."""
        return len(self.run) == 2


def and_groups(segments: list[tuple[str, list[str]]], substrings: bool) -> list[Group]:
    """The units ``op=and`` requires, from the query's segments (Analyzer.segments).

    With ``substrings``, each distinct Han run of two or more characters is a group of
    its own, met by containing the run (no word requirements); the tokens of everything
    else (Latin words, numbers, single Han characters) form one group, as do all tokens
    without ``substrings`` (the word-only ``and``). A group with neither requirements nor
    a run asks for nothing and is left out (stop words only).
    """
    runs: dict[str, None] = {}
    rest: list[str] = []
    for run, tokens in segments:
        if substrings and len(run) >= 2:
            runs[run] = None
        else:
            rest.extend(tokens)
    groups = [Group((), run) for run in runs]
    if rest:
        groups.append(Group(tuple(and_requirements(rest))))
    return groups


def contains_run(src: dict[str, Any], text_fields: tuple[str, ...] | list[str], run: str) -> bool:
    """Whether a stored document's text fields contain the (normalized) Han ``run``."""
    return any(
        isinstance(value := src.get(name), str) and run in normalize(value) for name in text_fields
    )
