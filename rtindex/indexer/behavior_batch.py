"""Apply one batch of behavior events: per user shard, read, plan chunks, write, and
re-plan from fresh state when a compare-and-set lost a race."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from rtindex.indexer.behavior import ChunkPlan, Located, expiry_ops, plan_chunk
from rtindex.indexer.behavior_store import BehaviorStore, ShardState

# Conflicts need two writers on one user at once (a producer that sends no key, or a
# partition moving). A few rounds settle them; endless ones are a bug.
MAX_ROUNDS = 50


@dataclass(frozen=True, slots=True)
class BehaviorResult:
    outcomes: list[str]  # one per event, in batch order
    conflicts: int

    def counts(self) -> Counter[str]:
        return Counter(self.outcomes)


def index_behaviors(store: BehaviorStore, events: Sequence[Located]) -> BehaviorResult:
    """Apply ``events`` (in stream order) exactly once in effect: an event at or below its
    shard's applied offset is a redelivery, a known ``event_id`` a duplicate; each chunk
    is written atomically with the offsets it covers.

    Chunk k+1 is planned while chunk k's script runs (optimistically: on top of k's
    effects); if k lost a compare-and-set race, that plan is dropped and planning starts
    again from freshly read state."""
    cfg, keys = store.cfg, store.keys
    by_shard: dict[int, list[int]] = {}
    for i, loc in enumerate(events):
        by_shard.setdefault(keys.shard_of(loc.event.user_id), []).append(i)
    attributes = store.item_attributes(loc.event.item_id for loc in events)
    outcomes: list[str] = [""] * len(events)
    conflicts = 0
    for shard, idx in by_shard.items():
        chunks = [idx[j : j + cfg.apply_chunk] for j in range(0, len(idx), cfg.apply_chunk)]
        cutoff = None
        if cfg.user_ttl_s is not None:
            # Twice the TTL: lazy expiry judges by the shard's newest event, another user's
            # clock. A user's own events decide their reset (at one TTL, in plan_chunk);
            # the margin keeps lazy expiry from wiping a user whose events run late.
            cutoff = max(events[i].event.ts for i in idx) - 2 * int(cfg.user_ttl_s * 1000)
        pos, rounds = 0, 0
        state: ShardState | None = None
        running: tuple[int, ChunkPlan, Future[list[str]]] | None = None
        while pos < len(chunks) or running is not None:
            plan = None
            if pos < len(chunks):
                if state is None:
                    users = list(
                        dict.fromkeys(events[i].event.user_id for c in chunks[pos:] for i in c)
                    )
                    state = store.read(shard, users, cutoff)
                plan = plan_chunk(
                    shard,
                    [events[i] for i in chunks[pos]],
                    state.users,
                    state.offsets,
                    attributes,
                    keys,
                    cfg,
                )
                state.offsets.update(plan.offsets)  # as if the running chunk succeeds
            if running is not None:
                done_pos, done_plan, future = running
                running = None
                lost = future.result()
                if lost:
                    conflicts += 1
                    rounds += 1
                    if rounds >= MAX_ROUNDS:
                        raise RuntimeError(f"behavior shard {shard}: conflicting: {lost[:5]}")
                    state, pos = None, done_pos  # states were advanced in place: re-read
                    continue
                for i, outcome in zip(chunks[done_pos], done_plan.outcomes, strict=True):
                    outcomes[i] = outcome
                rounds = 0  # the budget is per chunk
            if plan is not None and state is not None:
                expire = []
                if cutoff is not None and state.expired:
                    expire = expiry_ops(shard, state.expired, cutoff, keys)
                    state.expired = []
                running = (pos, plan, store.apply_async(plan, expire))
                pos += 1
    return BehaviorResult(outcomes, conflicts)
