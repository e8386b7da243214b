"""Text analysis, one analyzer for indexing and for querying.

A query token matches an indexed token exactly when both come from the same words,
because the same steps run on both sides:

1. Normalize: NFKC, then casefold (``ＡＢＣ１２３`` -> ``abc123``, ``Ⅻ`` -> ``xii``).
2. One pass finds Han runs (jieba's own Han range, U+4E00..U+9FD5) and words: letters and
   digits of any other script with the combining marks that follow them; a dot between
   two digits stays inside (``3.5``, ``1.2.3``) and a trailing ``++`` or ``#`` too
   (``c++``, ``c#``). Everything else (spaces, punctuation, symbols, emoji, ``_``) only
   separates and is never a token: ``e-mail`` is ``e`` + ``mail``, ``语言english`` is
   ``语言`` + ``english``.
3. Han runs go to jieba's search mode (``cut_for_search``, HMM on), which emits the
   dictionary words inside a long word as well: ``北京烤鸭`` -> ``北京 烤鸭 北京烤鸭``,
   so the query ``北京`` finds it. Only Han text ever reaches the segmenter: jieba and
   rjieba treat spaces, ASCII and other scripts differently, Han text identically.
4. A word is one token (``english``, ``café``, ``3.5``, ``c++``). When it mixes letters
   and digits, or carries ``++``/``#``, its letter and digit parts follow it:
   ``iphone15pro`` -> ``iphone15pro iphone 15 pro``; ``c++`` -> ``c++ c``.
5. Drop stop words and tokens longer than ``max_token_chars``; a longer word is dropped
   with its parts (a hash or a base64 blob, not words).

Engines: ``jieba`` (pure Python) or ``rjieba`` (the Rust port, about 10x faster here).
``auto`` takes rjieba only at the exact versions whose token-for-token parity with jieba
tests/unit/test_rjieba_parity.py proves on the real corpus; otherwise jieba.

User dictionaries use jieba's format (``word [freq] [tag]`` a line; the tag is ignored).
Only all-Han words can apply (step 3) and a frequency of 0 (jieba's "delete this word")
has no rjieba equivalent: such lines are skipped with a warning. An omitted frequency
means jieba's ``suggest_freq`` (just enough for the word to be cut out whole); with
rjieba, the frequencies are resolved by jieba itself and replayed, so both engines cut
user words the same way.
"""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
import threading
import unicodedata
from collections.abc import Callable, Iterable
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from rtindex.settings import AnalysisSettings

log = logging.getLogger(__name__)

# The versions whose parity tests/unit/test_rjieba_parity.py proves; "auto" trusts
# rjieba only at these (pyproject pins them too).
PROVEN_VERSIONS = {"jieba": "0.42.1", "rjieba": "0.2.2"}

_HAN = "\u4e00-\u9fd5"  # the Han range of jieba's re_han_default
_HAN_WORD = re.compile(f"[{_HAN}]+")


def _marks() -> str:
    """A character class body of the spacing and non-spacing combining marks.

    Python's ``re`` has no ``\\p{M}``. Variation selectors are left out on purpose:
    they follow emoji, and must not turn ``❤️`` into a token.
    """
    cps = [
        cp
        for cp in range(0x20000)
        if unicodedata.category(chr(cp)) in ("Mn", "Mc") and not 0xFE00 <= cp <= 0xFE0F
    ]
    ranges: list[list[int]] = []
    for cp in cps:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)


_M = f"[{_marks()}]"
_W = rf"[^\W_{_HAN}]"  # a letter or a digit of any script, but not the Han jieba segments
# One pass over normalized text finds a Han run (group 1) or a word (group 2). A word may
# hold marks (never first), a dot between two digits, and end in "++" or "#".
_TOKENS = re.compile(
    rf"([{_HAN}]+)|({_W}(?:{_W}|{_M}|(?<=\d)\.(?=\d))*(?:(?:\+\+|#)(?![0-9a-z+#]))?)"
)
# The parts of a word: letter runs (with their marks) and numbers (decimals kept whole).
_PARTS = re.compile(rf"[^\W\d_](?:[^\W\d_]|{_M})*|\d+(?:\.\d+)*")

_USER_DICT_LINE = re.compile(r"^(.+?)(?:\s+([0-9]+))?(?:\s+([a-z]+))?$")
# rjieba subtracts a replaced word's old frequency from its total, jieba does not: this
# private-use character (never in the Han-only text rjieba sees) carries the difference.
_BALANCE_WORD = "\ue000"

Cut = Callable[[str], Iterable[str]]
UserWords = tuple[tuple[str, int | None], ...]


def normalize(text: str) -> str:
    """NFKC, then casefold; a second NFKC because casefolding can denormalize."""
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


class Analyzer:
    """Text -> tokens, shared by indexing and querying; safe to call from many threads."""

    def __init__(self, settings: AnalysisSettings) -> None:
        self.settings = settings
        self.engine: str = choose_engine(settings.engine)
        words = read_user_dict(settings.user_dict) if settings.user_dict else ()
        self._cut: Cut = _segmenter(self.engine, words)
        self._stop = _stopwords(settings)
        self._max = settings.max_token_chars

    def tokens(self, text: str) -> list[str]:
        """The tokens of ``text`` in text order, duplicates kept."""
        out: list[str] = []
        for han, word in _TOKENS.findall(normalize(text)):
            if han:
                out.extend(self._cut(han))
            else:
                self._word(word, out)
        stop, limit = self._stop, self._max
        return [t for t in out if len(t) <= limit and t not in stop]

    def segments(self, text: str) -> list[tuple[str, list[str]]]:
        """``(Han run, its tokens)`` for each Han run and ``("", tokens)`` for each other
        word, in text order: what ``tokens`` returns, with where each token came from
        (a query's ``and`` treats a Han run as a unit; see query/matching.py)."""
        out: list[tuple[str, list[str]]] = []
        stop, limit = self._stop, self._max
        for han, word in _TOKENS.findall(normalize(text)):
            toks: list[str] = []
            if han:
                toks.extend(self._cut(han))
            else:
                self._word(word, toks)
            out.append((han, [t for t in toks if len(t) <= limit and t not in stop]))
        return out

    def _word(self, word: str, out: list[str]) -> None:
        if len(word) <= self._max:  # a longer one is a hash or a blob: its parts too
            out.append(word)
            parts = _PARTS.findall(word)  # never empty: a word starts with one
            if len(parts) > 1 or parts[0] != word:
                out.extend(parts)


def han_runs(text: str) -> list[str]:
    """The runs of Han characters of the normalized text, in order."""
    return _HAN_WORD.findall(normalize(text))


def bigrams_of_run(run: str) -> list[str]:
    """Every two adjacent characters of a Han run, in order, repeats kept."""
    return [run[i : i + 2] for i in range(len(run) - 1)]


def han_bigrams(text: str) -> set[str]:
    """The distinct Han character bigrams of a text: the substring index's terms. A string
    of Han characters occurs in the text only if all its bigrams do (the converse needs
    checking for strings of 3 or more characters: the bigrams may lie apart)."""
    out: set[str] = set()
    for run in _HAN_WORD.findall(normalize(text)):
        out.update(run[i : i + 2] for i in range(len(run) - 1))
    return out


def choose_engine(wanted: str) -> str:
    """``jieba`` or ``rjieba``: what ``auto`` resolves to, or the one named."""
    if wanted == "jieba":
        return "jieba"
    have = _installed_versions()
    if wanted == "rjieba":
        if "rjieba" not in have:
            raise RuntimeError("analysis.engine is rjieba, but rjieba is not installed")
        return "rjieba"
    if have == PROVEN_VERSIONS:
        return "rjieba"
    log.info("analysis engine jieba: rjieba parity is proven only for %s", PROVEN_VERSIONS)
    return "jieba"


@lru_cache(maxsize=1)
def _installed_versions() -> dict[str, str]:
    found = {}
    for dist in PROVEN_VERSIONS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[dist] = metadata.version(dist)
    return found


def read_user_dict(path: Path) -> UserWords:
    """The usable ``(word, freq or None)`` entries of a jieba user dictionary, in order."""
    words: list[tuple[str, int | None]] = []
    skipped: list[str] = []
    for raw in path.read_text(encoding="utf-8-sig").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _USER_DICT_LINE.match(line)
        assert m is not None  # any non-empty line matches
        word = normalize(m.group(1).strip())
        freq = int(m.group(2)) if m.group(2) is not None else None
        if freq == 0 or not _HAN_WORD.fullmatch(word):
            skipped.append(line)
            continue
        words.append((word, freq))
    if skipped:
        log.warning(
            "%s: skipped %d entries that are not all-Han or have frequency 0, e.g. %r",
            path,
            len(skipped),
            skipped[:3],
        )
    return tuple(words)


def _stopwords(settings: AnalysisSettings) -> frozenset[str]:
    if settings.stopwords is None:
        text = resources.files("rtindex.indexer").joinpath("stopwords.txt").read_text("utf-8")
        words = _word_list(text)
    else:
        words = [normalize(w.strip()) for w in settings.stopwords]
    if settings.stopwords_file is not None:
        words += _word_list(settings.stopwords_file.read_text(encoding="utf-8-sig"))
    return frozenset(w for w in words if w)


def _word_list(text: str) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [normalize(line) for line in lines if line]


# --- segmenters, built once per (engine, user words) and shared: they are read-only ---

_lock = threading.Lock()
_segmenters: dict[tuple[str, UserWords], Cut] = {}


def _segmenter(engine: str, words: UserWords) -> Cut:
    with _lock:
        key = (engine, words)
        if key not in _segmenters:
            _segmenters[key] = _build_jieba(words)[0] if engine == "jieba" else _build_rjieba(words)
        return _segmenters[key]


@lru_cache(maxsize=1)
def _jieba_base() -> Any:
    import jieba

    # jieba logs its dictionary loading to its own stderr handler at DEBUG level.
    logging.getLogger("jieba").setLevel(logging.WARNING)
    tk = jieba.Tokenizer()  # an instance, never the global one: user words stay local
    cache_dir = Path(tempfile.gettempdir()) / "rtindex-jieba"
    try:
        cache_dir.mkdir(mode=0o700, exist_ok=True)
        tk.tmp_dir = str(cache_dir)
    except OSError:
        pass  # jieba falls back to the temp dir itself
    tk.initialize()
    return tk


def _build_jieba(words: UserWords) -> tuple[Cut, list[tuple[str, int, int]]]:
    """jieba's cut, and each user word as ``(word, freq jieba gave it, freq it replaced)``."""
    base = _jieba_base()
    if not words:
        return base.cut_for_search, []
    import jieba

    tk = jieba.Tokenizer()
    # Copy the loaded dictionary rather than load it again (about a second): add_word
    # changes it. Its FREQ also holds every word prefix, with frequency 0.
    tk.FREQ, tk.total, tk.initialized = dict(base.FREQ), base.total, True
    resolved = []
    for word, freq in words:
        old = tk.FREQ.get(word, 0)
        tk.add_word(word, freq)  # freq None: jieba's own suggest_freq(word)
        resolved.append((word, tk.FREQ[word], old))
    cut: Cut = tk.cut_for_search
    return cut, resolved


def _build_rjieba(words: UserWords) -> Cut:
    import rjieba

    rj = rjieba.Jieba()
    if words:
        # rjieba's suggest_freq differs from jieba's (float rounding; a character that is
        # only a word prefix counts 1 there and 0 in jieba), so jieba resolves the
        # frequencies and rjieba gets them explicitly, keeping the same total.
        balance = 0
        for word, freq, old in _build_jieba(words)[1]:
            rj.add_word(word, freq, None)
            if old:
                balance += old
                rj.add_word(_BALANCE_WORD, balance, None)

    def cut(text: str) -> list[str]:
        result: list[str] = rj.cut_for_search(text, True)
        return result

    return cut
