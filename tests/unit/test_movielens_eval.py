"""The MovieLens-100K hit-rate evaluation (benchmarks/movielens.py): loaders, baselines,
metric. Toy cases have hand-computed expectations; the nightly similarity snapshot is
checked against a from-scratch recomputation on random interaction sequences."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
from helpers import load_benchmark
from hypothesis import given, settings
from hypothesis import strategies as st

ml = load_benchmark("movielens")
DAY = ml.DAY_MS


def it(user: str, item: str, day: int, sec: int = 0) -> ml.Interaction:
    return ml.Interaction(user, item, 4.0, day * DAY + sec * 1000)


# -- Popularity ------------------------------------------------------------------------
def test_popularity_counts_in_real_time_with_id_ties() -> None:
    pop = ml.Popularity()
    assert pop.recommend("u1", 5, set()) == []
    for user, item in [("u1", "m9"), ("u2", "m10"), ("u3", "m9"), ("u1", "m2"), ("u2", "m3")]:
        pop.observe(it(user, item, 0))
    # m9 twice; m10, m2, m3 once each, tied: id order is string order ("m10" < "m2").
    assert pop.recommend("u9", 10, set()) == ["m9", "m10", "m2", "m3"]
    assert pop.recommend("u9", 2, set()) == ["m9", "m10"]
    assert pop.recommend("u9", 10, {"m9", "m2", "unknown"}) == ["m10", "m3"]
    assert pop.recommend("u9", 0, set()) == []
    # Real time: the very next observation changes the order, no daily batching.
    pop.observe(it("u4", "m3", 0))
    pop.observe(it("u5", "m3", 0))
    assert pop.recommend("u9", 2, set()) == ["m3", "m9"]


def test_popularity_counts_repeats() -> None:
    pop = ml.Popularity()
    for item in ["m1", "m2", "m2", "m2", "m1"]:
        pop.observe(it("u1", item, 0))
    assert pop.recommend("u1", 5, set()) == ["m2", "m1"]


# -- DailyItemCF -----------------------------------------------------------------------
# Day 0: u1 {a, b}, u2 {a, b, c}, u3 {a, c, d}. N: a 3, b 2, c 2, d 1.
# C: ab 2, ac 2, ad 1, bc 1, bd 0, cd 1.
A, B, C, D = "m1", "m2", "m3", "m4"
DAY0 = [("u1", A), ("u1", B), ("u2", A), ("u2", B), ("u2", C), ("u3", A), ("u3", C), ("u3", D)]
SIM = {
    (A, B): 2 / math.sqrt(6),
    (A, C): 2 / math.sqrt(6),
    (A, D): 1 / math.sqrt(3),
    (B, C): 1 / math.sqrt(4),
    (B, D): 0.0,
    (C, D): 1 / math.sqrt(2),
}


def toy_cf() -> ml.DailyItemCF:
    cf = ml.DailyItemCF()
    for sec, (user, item) in enumerate(DAY0):
        cf.observe(it(user, item, 0, sec))
    return cf


def test_cf_similarities_by_hand() -> None:
    cf = toy_cf()
    cf.advance(1 * DAY)
    assert cf.snapshot_day == 1
    for (a, b), s in SIM.items():
        assert cf.similarity(a, b) == s
        assert cf.similarity(b, a) == s
    assert cf.similarity(A, A) == 0.0
    assert cf.similarity(A, "m99") == 0.0


def test_cf_ranking_by_hand() -> None:
    cf = toy_cf()
    now = 1 * DAY + 5
    # u1 has {a, b}: c = sim(a,c) + sim(b,c) = 1.316, d = sim(a,d) + sim(b,d) = 0.577.
    assert cf.recommend("u1", 10, {A, B}, now, live_history=False) == [C, D]
    # Without the exclusion the history items are ranked too: a = sim(b,a) and
    # b = sim(a,b) are the same 0.816, so the id breaks the tie.
    assert cf.recommend("u1", 10, set(), now, live_history=False) == [C, A, B, D]
    # u3 has {a, c, d}: b = 0.816 + 0.5 + 0 is the only candidate left.
    assert cf.recommend("u3", 10, {A, C, D}, now, live_history=False) == [B]
    assert cf.recommend("u1", 1, {A, B}, now, live_history=False) == [C]


def test_cf_unknown_user_gets_daily_popularity() -> None:
    cf = toy_cf()
    # N: a 3, then b and c tied at 2 (id order), then d 1.
    assert cf.recommend("u9", 10, set(), DAY, live_history=False) == [A, B, C, D]
    assert cf.recommend("u9", 10, {B}, DAY, live_history=True) == [A, C, D]


def test_cf_zero_scores_are_filled_by_popularity_not_id() -> None:
    cf = ml.DailyItemCF()
    # u1 {x, y}; five others watch z alone, so z is the most popular but never co-occurs.
    x, y, z = "m7", "m8", "m9"
    cf.observe(it("u1", x, 0))
    cf.observe(it("u1", y, 0))
    for u in range(2, 7):
        cf.observe(it(f"u{u}", z, 0))
    cf.observe(it("u2", "m5", 0))  # m5 has N 1 and no link to x
    # u1: y scores 1 (sim(x,y) = 1); z (N 5) and m5 (N 1) score 0 and follow by popularity
    # (by id, m5 would come first).
    assert cf.recommend("u1", 10, {x}, DAY, live_history=False) == [y, z, "m5"]


def test_cf_equal_positive_scores_tie_by_id_not_popularity() -> None:
    cf = ml.DailyItemCF()
    x, p, q = "m9", "m1", "m2"
    # N(x) 2, N(p) 1, N(q) 4, C(x,p) 1, C(x,q) 2: sim(x,p) = 1/sqrt(2) = 2/sqrt(8) = sim(x,q).
    for user, item in [("u1", x), ("u1", p), ("u1", q), ("u2", x), ("u2", q)]:
        cf.observe(it(user, item, 0))
    cf.observe(it("u3", q, 0))
    cf.observe(it("u4", q, 0))
    cf.observe(it("u9", x, 1))
    assert cf.similarity(x, p) == 0.0  # no snapshot yet
    assert cf.recommend("u9", 10, {x}, DAY, live_history=True) == [p, q]
    assert cf.similarity(x, p) == cf.similarity(x, q) > 0
    # Nightly, u9 has no history yet: daily popularity, q (N 4) before p (N 1).
    assert cf.recommend("u9", 10, {x}, DAY, live_history=False) == [q, p]


def test_cf_nothing_before_the_first_day_ends() -> None:
    cf = toy_cf()
    # The first call is on day 0 itself: the snapshot for day 0 has no data at all.
    assert cf.recommend("u1", 10, set(), 5 * 1000, live_history=True) == []
    assert cf.snapshot_day == 0
    assert cf.recommend("u1", 10, set(), DAY, live_history=True) == [C, A, B, D]


def test_cf_daily_boundary() -> None:
    cf = toy_cf()
    assert cf.recommend("u4", 10, set(), DAY, live_history=False) == [A, B, C, D]
    # Day 1: u4 watches b and d; e appears for the first time.
    cf.observe(it("u4", B, 1, 10))
    cf.observe(it("u4", D, 1, 11))
    cf.observe(it("u5", "m5", 1, 12))
    later = DAY + 20_000
    assert cf.similarity(B, D) == 0.0  # today's co-occurrence is not in today's model
    # Nightly history is as of the snapshot: u4 had none, so daily popularity.
    assert cf.recommend("u4", 10, {B, D}, later, live_history=False) == [A, C]
    # Live history {b, d} against the day-0 similarities: a = 0.816 + 0.577 = 1.394,
    # c = 0.5 + 0.707 = 1.207.
    assert cf.recommend("u4", 10, {B, D}, later, live_history=True) == [A, C]
    # Only d in the live history: c = 0.707 beats a = 0.577 (popularity would say a).
    cf2 = toy_cf()
    cf2.observe(it("u4", D, 1, 10))
    assert cf2.recommend("u4", 10, {D}, later, live_history=True) == [C, A, B]
    assert cf2.recommend("u4", 10, {D}, later, live_history=False) == [A, B, C]
    # m5 is new today: a nightly model cannot recommend it yet.
    assert "m5" not in cf.recommend("u9", 10, set(), later, live_history=True)
    assert cf.snapshot_day == 1

    # Day 2: the day-1 interactions are in. N: a 3, b 3, c 2, d 2, m5 1; C(b,d) = 1.
    day2 = 2 * DAY
    assert cf.recommend("u4", 10, {B, D}, day2, live_history=False) == [A, C, "m5"]
    assert cf.snapshot_day == 2
    assert cf.similarity(B, D) == 1 / math.sqrt(3 * 2)
    assert cf.similarity(A, B) == 2 / math.sqrt(3 * 3)
    assert "m5" in cf.recommend("u9", 10, set(), day2, live_history=True)


def test_cf_lazy_rebuild_excludes_today_even_if_observed_first() -> None:
    """The first call of day 1 comes after day-1 interactions were observed: the snapshot
    still holds days before 1 only."""
    cf = toy_cf()
    cf.observe(it("u4", B, 1, 10))
    cf.observe(it("u4", D, 1, 11))
    assert cf.recommend("u4", 10, set(), DAY + 20_000, live_history=False) == [A, B, C, D]
    assert cf.similarity(B, D) == 0.0
    ids, _ = cf.snapshot()
    assert ids == [A, B, C, D]


def test_cf_no_rebuild_within_a_day_or_backwards() -> None:
    cf = toy_cf()
    cf.advance(DAY)
    cf.observe(it("u4", B, 1))
    cf.observe(it("u4", D, 1))
    cf.advance(2 * DAY - 1)
    cf.advance(0)
    assert cf.snapshot_day == 1
    assert cf.similarity(B, D) == 0.0


def test_cf_repeats_count_once_and_new_items_pair_with_old() -> None:
    cf = ml.DailyItemCF()
    for user, item in [("u1", A), ("u1", B), ("u1", A), ("u2", A)]:
        cf.observe(it(user, item, 0))
    cf.advance(DAY)
    assert cf.similarity(A, B) == 1 / math.sqrt(2 * 1)
    cf.observe(it("u1", A, 1))  # a repeat in a later snapshot changes nothing either
    cf.observe(it("u1", B, 1))
    cf.observe(it("u1", C, 1))  # new for u1: pairs with its day-0 items a and b
    cf.advance(2 * DAY)
    assert cf.snapshot_day == 2
    assert cf.similarity(A, B) == 1 / math.sqrt(2 * 1)
    assert cf.similarity(A, C) == 1 / math.sqrt(2 * 1)
    assert cf.similarity(C, B) == 1.0


# -- snapshot == recomputation from scratch --------------------------------------------
def reference(observed: list[tuple[str, str, int]], day: int) -> dict[tuple[str, str], float]:
    """Cosine similarity from scratch over the observed interactions of days before ``day``."""
    users: dict[str, set[str]] = {}
    for user, item, d in observed:
        if d < day:
            users.setdefault(user, set()).add(item)
    n: dict[str, int] = {}
    c: dict[tuple[str, str], int] = {}
    for items in users.values():
        for i in items:
            n[i] = n.get(i, 0) + 1
            for j in items:
                if i != j:
                    c[i, j] = c.get((i, j), 0) + 1
    return {
        (i, j): c.get((i, j), 0) / math.sqrt(n[i] * n[j]) if i != j else 0.0 for i in n for j in n
    }


step = st.one_of(
    # Few users, items and days, so histories span several rebuilds and pairs repeat.
    st.tuples(st.just("observe"), st.integers(0, 3), st.integers(0, 6), st.integers(0, 4)),
    st.tuples(st.just("advance"), st.just(0), st.just(0), st.integers(0, 5)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(step, max_size=80))
def test_snapshot_equals_recomputation(steps: list[tuple[str, int, int, int]]) -> None:
    """Observations may arrive out of day order; each rebuild must still equal the
    recomputation over everything observed by then with an earlier day."""
    cf = ml.DailyItemCF()
    observed: list[tuple[str, str, int]] = []
    expected: dict[tuple[str, str], float] = {}
    for kind, u, i, day in steps:
        if kind == "observe":
            observed.append((f"u{u}", f"m{i}", day))
            cf.observe(it(f"u{u}", f"m{i}", day, sec=u + i))
            continue
        if cf.snapshot_day is None or day > cf.snapshot_day:
            expected = reference(observed, day)
        cf.advance(day * DAY + 123)
        ids, sim = cf.snapshot()
        assert sorted(ids) == sorted({i for i, _ in expected})
        got = {(a, b): float(sim[x, y]) for x, a in enumerate(ids) for y, b in enumerate(ids)}
        assert got == expected  # exact: the same integer counts, the same float formula


# -- HitRate ---------------------------------------------------------------------------
def test_hit_rate_math() -> None:
    hr = ml.HitRate()
    assert hr.n == 0
    assert all(math.isnan(hr.summary()[k]) for k in ("hr@10", "hr@50", "mrr"))
    recs = [f"m{i}" for i in range(1, 51)]
    hr.add(recs, "m1")  # rank 1
    hr.add(recs, "m10")  # rank 10
    hr.add(recs, "m11")  # rank 11
    hr.add(recs, "m50")  # rank 50
    hr.add(recs, "m51")  # absent
    hr.add([], "m1")  # empty list
    s = hr.summary()
    assert s["n"] == 6.0 and hr.n == 6
    assert s["hr@10"] == pytest.approx(2 / 6)
    assert s["hr@50"] == pytest.approx(4 / 6)
    assert s["mrr"] == pytest.approx((1 + 1 / 10 + 1 / 11 + 1 / 50) / 6)


def test_hit_rate_short_lists() -> None:
    hr = ml.HitRate()
    hr.add(["m3", "m2"], "m2")
    assert hr.summary() == {"hr@10": 1.0, "hr@50": 1.0, "mrr": 0.5, "n": 1.0}


# -- the real data ---------------------------------------------------------------------
def test_load_interactions_real_file() -> None:
    data = ml.load_interactions()
    assert len(data) == 100_000
    assert len({x.user for x in data}) == 943
    assert len({x.item for x in data}) == 1682
    ts = [x.ts_ms for x in data]
    assert ts == sorted(ts)
    assert ts[0] == 874_724_710_000 and ts[-1] == 893_286_638_000
    assert all(t % 1000 == 0 for t in ts)
    assert all(x.user.startswith("u") and x.item.startswith("m") for x in data)
    assert {x.rating for x in data} == {1.0, 2.0, 3.0, 4.0, 5.0}
    # Stable: equal timestamps keep their file order.
    lines = (ml.data_dir() / "ml-100k.inter").read_text().splitlines()[1:]
    line_no = {(f"u{f[0]}", f"m{f[1]}"): n for n, f in enumerate(x.split("\t") for x in lines)}
    for a, b in pairwise(data):
        if a.ts_ms == b.ts_ms:
            assert line_no[a.user, a.item] < line_no[b.user, b.item]
    assert ml.load_interactions(limit=10) == data[:10]
    assert ml.load_interactions(limit=0) == []


def test_load_movies_real_file() -> None:
    movies = ml.load_movies()
    assert len(movies) == 1682
    toy = movies["m1"]
    assert toy == ml.Movie("m1", "Toy Story", "1995", ("Animation", "Children's", "Comedy"))
    genres = {g for m in movies.values() for g in m.genres}
    assert genres == {
        "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
        "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
        "Thriller", "War", "Western", "unknown",
    }  # fmt: skip
    assert all(m.genres for m in movies.values())
    assert all(m.year == "" or (m.year.isdigit() and len(m.year) == 4) for m in movies.values())
    # The placeholder movie and the title the converter split at the wrong parenthesis.
    assert movies["m267"] == ml.Movie("m267", "", "", ("unknown",))
    assert movies["m1412"].year == "1995"
    assert movies["m1412"].title == "Land Before Time III: The Time of the Great Giving"
    assert movies["m2"].genres == ("Action", "Adventure", "Thriller")


def test_missing_recbole_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ml.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps recbole"):
        ml.data_dir()
