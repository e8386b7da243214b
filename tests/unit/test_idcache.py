"""The query service's docnum -> id memory (pure)."""

from __future__ import annotations

from rtindex.query.idcache import DocIdCache


def test_remembers_forgets_and_drops_the_oldest_when_full() -> None:
    c = DocIdCache(capacity=2)
    c.put(0, 1, "a")
    c.put(0, 2, "b")
    assert (c.get(0, 1), c.get(0, 2), c.get(1, 1)) == ("a", "b", None)
    c.put(0, 2, "b")  # already there: nothing is dropped
    assert len(c) == 2 and c.get(0, 1) == "a"
    c.put(1, 1, "c")  # full: the oldest goes
    assert (c.get(0, 1), c.get(0, 2), c.get(1, 1)) == (None, "b", "c")
    c.forget(0, 2)
    c.forget(0, 9)  # unknown: no error
    assert c.get(0, 2) is None and len(c) == 1


def test_capacity_zero_remembers_nothing() -> None:
    c = DocIdCache(capacity=0)
    c.put(0, 1, "a")
    assert c.get(0, 1) is None and len(c) == 0
