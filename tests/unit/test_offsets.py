"""Which offsets a consumer commits, after a batch and after a refused commit."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st
from kafka import TopicPartition

from rtindex.consumers.offsets import batch_offsets, forget_committed, merge_refused, to_recommit

T0, T1, T2 = (TopicPartition("t", p) for p in range(3))


def rec(partition: int, offset: int) -> SimpleNamespace:
    return SimpleNamespace(topic="t", partition=partition, offset=offset)


def test_a_batch_commits_one_past_its_last_record_per_partition() -> None:
    records = [rec(0, 4), rec(1, 9), rec(0, 5), rec(0, 3)]
    assert batch_offsets(records) == {T0: 6, T1: 10}


def test_refusals_merge_to_the_highest_offset() -> None:
    assert merge_refused({T0: 6, T1: 3}, {T0: 4, T2: 8}) == {T0: 6, T1: 3, T2: 8}


def test_a_later_commit_covers_refused_offsets_up_to_it() -> None:
    assert forget_committed({T0: 6, T1: 3}, {T0: 6, T1: 2}) == {T1: 3}


def plan(
    refused: dict[TopicPartition, int],
    assigned: set[TopicPartition],
    positions: dict[TopicPartition, int | None],
    committed: dict[TopicPartition, int | None],
) -> dict[TopicPartition, int]:
    return to_recommit(refused, assigned, positions.__getitem__, committed.__getitem__)


def test_a_kept_partition_past_the_offset_is_committed_again() -> None:
    assert plan({T0: 6}, {T0}, {T0: 6}, {T0: None}) == {T0: 6}
    assert plan({T0: 6}, {T0}, {T0: 9}, {T0: 2}) == {T0: 6}


def test_a_partition_that_moved_is_left_to_its_new_owner() -> None:
    assert plan({T0: 6}, {T1}, {}, {}) == {}


def test_a_reset_position_means_the_records_come_again() -> None:
    assert plan({T0: 6}, {T0}, {T0: 2}, {T0: 2}) == {}
    assert plan({T0: 6}, {T0}, {T0: None}, {T0: 2}) == {}


def test_never_behind_what_another_owner_committed() -> None:
    assert plan({T0: 6}, {T0}, {T0: 20}, {T0: 20}) == {}
    assert plan({T0: 6}, {T0}, {T0: 6}, {T0: 6}) == {}


offset = st.integers(min_value=0, max_value=1_000)
maybe = st.one_of(st.none(), offset)
parts = st.sampled_from([T0, T1, T2])


@given(
    st.dictionaries(parts, offset),
    st.sets(parts),
    st.dictionaries(parts, maybe),
    st.dictionaries(parts, maybe),
)
def test_recommits_only_move_committed_offsets_forward_on_owned_applied_records(
    refused: dict[TopicPartition, int],
    assigned: set[TopicPartition],
    positions: dict[TopicPartition, int | None],
    committed: dict[TopicPartition, int | None],
) -> None:
    due = to_recommit(refused, assigned, positions.get, committed.get)
    for tp, o in due.items():
        assert o == refused[tp]
        assert tp in assigned
        pos = positions.get(tp)
        assert pos is not None and pos >= o
        done = committed.get(tp)
        assert done is None or done < o
