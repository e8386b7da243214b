"""What ``op=and`` requires of a document, from the query's search-mode tokens (pure).

Search-mode segmentation gives a word and its dictionary sub-words: 北京烤鸭 analyzes to
[北京, 烤鸭, 北京烤鸭]. Requiring all three would miss a document whose text segments as
北京烤鸭店 (it has 北京 and 烤鸭 but not 北京烤鸭): the segmentation-mismatch pitfall.
So ``and`` requires each *maximal* query token — one that is not part of a longer query
token — and accepts in its place a *cover*: query tokens that, laid end to end, spell it
(北京 + 烤鸭). Sub-tokens are not required on their own; they still score.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Requirement:
    """A document satisfies it by containing ``term``, or every term of ``cover``."""

    term: str
    cover: tuple[str, ...] = ()


def cover_of(word: str, parts: list[str]) -> tuple[str, ...]:
    """Parts that spell ``word`` left to right, longest first at each step; () if none."""
    by_start = sorted((p for p in parts if p != word and p and p in word), key=len, reverse=True)
    out: list[str] = []
    pos = 0
    while pos < len(word):
        step = next((p for p in by_start if word.startswith(p, pos)), None)
        if step is None:
            return ()
        out.append(step)
        pos += len(step)
    return tuple(out)


def and_requirements(terms: list[str]) -> list[Requirement]:
    """The requirements of ``op=and`` for the query's unique tokens, in query order."""
    unique = list(dict.fromkeys(terms))
    reqs: list[Requirement] = []
    for t in unique:
        if any(t != other and t in other for other in unique):
            continue  # part of a longer query token: that token's requirement covers it
        reqs.append(Requirement(t, cover_of(t, unique)))
    return reqs
