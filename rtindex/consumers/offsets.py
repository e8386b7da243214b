"""Which offsets to commit: after a batch, and again after a commit the group refused.

kafka-python 3 keeps a partition's fetch position across a rebalance that leaves the
partition with the same member. So when a rebalance refuses a batch's commit and the
member keeps the partition, nothing redelivers the batch: its records were applied,
but the committed offset stays behind them (a lag that never drains) until the next
record arrives. The refused offsets are therefore kept and committed again once the
group is stable, for the partitions this member still reads from past them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kafka import TopicPartition


def batch_offsets(records: Iterable[Any]) -> dict[TopicPartition, int]:
    """The offset to commit per partition: one past the batch's last record there."""
    offsets: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        nxt = r.offset + 1
        if offsets.get(tp, -1) < nxt:
            offsets[tp] = nxt
    return offsets


def merge_refused(
    refused: Mapping[TopicPartition, int], batch: Mapping[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """Refused offsets so far plus a newly refused batch: the highest per partition."""
    merged = dict(refused)
    for tp, offset in batch.items():
        if merged.get(tp, -1) < offset:
            merged[tp] = offset
    return merged


def forget_committed(
    refused: Mapping[TopicPartition, int], committed: Mapping[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """Drop the refused offsets a later successful commit covers."""
    return {tp: o for tp, o in refused.items() if committed.get(tp, -1) < o}


def to_recommit(
    refused: Mapping[TopicPartition, int],
    assigned: set[TopicPartition],
    position: Callable[[TopicPartition], int | None],
    committed: Callable[[TopicPartition], int | None],
) -> dict[TopicPartition, int]:
    """The refused offsets that are safe to commit now.

    Only for partitions still assigned (a partition that moved is redelivered to its new
    owner); only where this member's position is at or past the offset (it kept its
    state, so it applied those records; a reset position means they come again and get
    committed as a normal batch); and only above the group's committed offset (another
    member may have owned the partition meanwhile and committed further: never go back).
    """
    due: dict[TopicPartition, int] = {}
    for tp, offset in refused.items():
        if tp not in assigned:
            continue
        pos = position(tp)
        if pos is None or pos < offset:
            continue
        done = committed(tp)
        if done is not None and done >= offset:
            continue
        due[tp] = offset
    return due
