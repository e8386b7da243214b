"""What ``op=and`` requires of a document, from the query's search-mode tokens (pure).

Search-mode segmentation gives a word and its dictionary sub-words: 北京烤鸭 analyzes to
[北京, 烤鸭, 北京烤鸭]. Requiring all three would miss a document whose text segments as
北京烤鸭店 (it has 北京 and 烤鸭 but not 北京烤鸭): the segmentation-mismatch pitfall.
So ``and`` requires each *maximal* query token — one that is not part of a longer query
token — and accepts in its place a *cover*: query tokens that, laid end to end, spell it
(北京 + 烤鸭). Sub-tokens are not required on their own; they still score.
"""

from __future__ import annotations

from collections.abc import Collection
from collections.abc import Set as AbstractSet
from dataclasses import dataclass


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
