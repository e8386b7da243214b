"""Behavior events -> per-event operations on one user shard (pure: no Redis here).

Given the stored state of a chunk's users, :func:`plan_chunk` decides each event's fate
(applied, a re-sent duplicate by ``event_id``, or a Kafka redelivery below the shard's
applied offset) and emits, for every applied event in order, the operations that record
it: the user's recent list, counters, exclusions, preference profile, trending and
popularity, and the co-occurrence links of its item with the user's recent window.
``behavior.lua`` executes them one event after another, so the resulting state depends
only on the sequence of events, never on how a stream was cut into batches.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from rtindex.indexer.decay import halvings, log_weight
from rtindex.indexer.events import BehaviorEvent
from rtindex.indexer.keys import BehaviorKeys
from rtindex.settings import BehaviorSettings

SEP = "\x1f"  # ids cannot contain control characters, so this never appears in one

# Operations are one flat list: opcode, key, then the opcode's arguments. Numbers the
# script computes with are numbers; what it stores verbatim is already a string.
Op = str | int | float

APPLIED, DUPLICATE, REDELIVERED = "applied", "duplicate", "redelivered"

# Item attributes (document keyword values) used by profiles and trending.
ItemAttributes = Mapping[str, Mapping[str, tuple[str, ...]]]


@dataclass(frozen=True, slots=True)
class Located:
    """An event and where it came from (its Kafka coordinates decide redelivery)."""

    event: BehaviorEvent
    topic: str
    partition: int
    offset: int
    # A hash of the record's value: proves, after a restart, that the record Redis says
    # was applied last is still the one at that offset (a recreated topic restarts at 0).
    fingerprint: str = ""


@dataclass(frozen=True, slots=True)
class Recent:
    ts: int
    action: str
    event_id: str
    item: str

    def pack(self) -> str:
        return f"{self.ts}{SEP}{self.action}{SEP}{self.event_id}{SEP}{self.item}"

    @staticmethod
    def unpack(raw: bytes | str) -> Recent:
        text = raw.decode() if isinstance(raw, bytes) else raw
        ts, action, event_id, item = text.split(SEP, 3)
        return Recent(int(ts), action, event_id, item)


@dataclass(slots=True)
class UserState:
    """What planning needs of a user: the events counts (``seq`` is the compare-and-set
    token) and the recent list, newest first (the co-occurrence window and the
    de-duplication memory)."""

    n: int = 0  # events since the user was last forgotten (activity damping)
    last: int = 0  # the time of their latest event
    recent: list[Recent] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    # Events ever applied: the compare-and-set token. Never reset (a reset count could
    # come back to the value another writer read, and its stale plan would pass).
    seq: int = 0

    @classmethod
    def of(cls, n: int, last: int, recent: Iterable[Recent], seq: int | None = None) -> UserState:
        entries = list(recent)
        return cls(n, last, entries, {r.event_id for r in entries}, n if seq is None else seq)

    def reset(self) -> None:
        self.n, self.last = 0, 0
        self.recent.clear()
        self.seen.clear()

    def push(self, entry: Recent, cap: int) -> None:
        self.recent.insert(0, entry)
        self.seen.add(entry.event_id)
        while len(self.recent) > cap:
            self.seen.discard(self.recent.pop().event_id)
        self.n += 1
        self.seq += 1
        self.last = max(self.last, entry.ts)


def window(
    recent: Sequence[Recent], item: str, ts: int, max_items: int, window_ms: float
) -> list[Recent]:
    """The user's latest event on each of their last ``max_items`` distinct other items
    acted on within ``window_ms`` of ``ts`` (either side: events can arrive late)."""
    out: list[Recent] = []
    taken = {item}
    for r in recent:
        if len(out) >= max_items:
            break
        if r.item in taken or abs(ts - r.ts) > window_ms:
            continue
        taken.add(r.item)
        out.append(r)
    return out


def pair_weight(
    w_a: float, w_b: float, gap_ms: float, user_events: int, cfg: BehaviorSettings
) -> float:
    """Co-occurrence weight of one pair from one user: both actions' weights, the time
    between them (half-life ``pair_half_life_s``), and the user's activity damping
    (inverse user frequency: a user who acts on everything says little about any pair)."""
    damping = math.pow(math.log2(2 + user_events), cfg.activity_damping)
    return w_a * w_b * halvings(gap_ms, cfg.pair_half_life_s) / damping


@dataclass(slots=True)
class ChunkPlan:
    cas: dict[str, int]  # user key -> the seq (events ever applied) it must still have
    ops: list[Op]
    outcomes: list[str]  # one per event of the chunk
    counts: Counter[str]
    offsets: dict[tuple[str, int], int]  # the highest offset per partition it covers
    keys: list[str]  # every key the operations may touch (declared to the script)


def plan_chunk(
    shard: int,
    events: Sequence[Located],
    users: dict[str, UserState],
    applied_offsets: Mapping[tuple[str, int], int],
    attributes: ItemAttributes,
    keys: BehaviorKeys,
    cfg: BehaviorSettings,
) -> ChunkPlan:
    """Plan ``events`` (all of one shard, in stream order). ``users`` holds every user of
    the chunk and is advanced in place, so the next chunk is planned on top of this one."""
    weights = {a: cfg.actions.of(a) for a in ("view", "click", "like", "cart", "purchase")}
    excluded = set(cfg.exclude_actions)
    window_ms = cfg.window_s * 1000.0
    ttl_ms = None if cfg.user_ttl_s is None else int(cfg.user_ttl_s * 1000)
    i2i_h, tr_h, pr_h = cfg.i2i_half_life_s, cfg.trending_half_life_s, cfg.profile_half_life_s
    n_cap, t_cap, p_cap = cfg.neighbours_cap, cfg.trending_cap, cfg.profile_cap
    tr_field = cfg.trending_field
    cas: dict[str, int] = {}
    ops: list[Op] = []
    outcomes: list[str] = []
    counts: Counter[str] = Counter()
    pushed: dict[str, list[str]] = {}
    last_ts: dict[str, int] = {}
    offsets: dict[tuple[str, int], int] = {}
    prints: dict[tuple[str, int], str] = {}
    popularity, trending = keys.popularity(shard), keys.trending(shard)
    touched_items: set[str] = set()
    touched_values: set[str] = set()
    for loc in events:
        e = loc.event
        coords = (loc.topic, loc.partition)
        done = max(applied_offsets.get(coords, -1), offsets.get(coords, -1))
        if loc.offset <= done:
            outcomes.append(REDELIVERED)  # applied before a crash, then delivered again
            continue
        offsets[coords] = loc.offset
        prints[coords] = loc.fingerprint
        user_key = keys.user(shard, e.user_id)
        state = users[e.user_id]
        cas.setdefault(user_key, state.seq)
        if e.event_id in state.seen:
            outcomes.append(DUPLICATE)
            continue
        outcomes.append(APPLIED)
        item, ts, w = e.item_id, e.ts, weights[e.action]
        touched_items.add(item)
        if ttl_ms is not None and state.n and ts - state.last > ttl_ms:
            # Back after longer than the TTL: forgotten, whether or not the lazy expiry
            # got to them first (so the state never depends on batch boundaries).
            ops += ("r", keys.users(shard), e.user_id, *keys.user_keys(shard, e.user_id))
            state.reset()
            pushed.pop(e.user_id, None)
            last_ts.pop(e.user_id, None)
        ops += ("h", keys.counters(shard, item), e.action, 1)
        if w > 0:
            ops += ("z", popularity, 0, item, log_weight(w, ts, i2i_h))
            lw = log_weight(w, ts, tr_h)
            ops += ("z", trending, t_cap, item, lw)
            attrs = attributes.get(item, {})
            for value in attrs.get(tr_field, ()):
                touched_values.add(value)
                ops += ("z", keys.trending(shard, value), t_cap, item, lw)
            profile = keys.profile(shard, e.user_id)
            lw = log_weight(w, ts, pr_h)
            for name, values in attrs.items():
                for value in values:
                    ops += ("z", profile, p_cap, f"{name}={value}", lw)
            linked = window(state.recent, item, ts, cfg.window_items, window_ms)
            pairs: list[Op] = []
            for r in linked:
                wb = weights[r.action]
                if wb <= 0:
                    continue
                pw = pair_weight(w, wb, ts - r.ts, state.n, cfg)
                if pw <= 0:
                    continue  # decayed below a double's range: no link
                lp = log_weight(pw, ts, i2i_h)
                pairs += (r.item, lp)
                touched_items.add(r.item)
                ops += ("z", keys.neighbours(shard, r.item), n_cap, item, lp)
            if pairs:
                ops += ("Z", keys.neighbours(shard, item), n_cap, len(pairs) // 2, *pairs)
        if e.action in excluded:
            ops += ("x", keys.excluded(shard, e.user_id), cfg.exclude_cap, item, str(ts))
        entry = Recent(ts, e.action, e.event_id, item)
        state.push(entry, cfg.recent_cap)
        pushed.setdefault(e.user_id, []).append(entry.pack())
        last_ts[e.user_id] = max(last_ts.get(e.user_id, ts), ts)
    # Per-user and per-shard totals are order-free: once per chunk.
    for user, entries in pushed.items():
        ops += ("l", keys.recent(shard, user), cfg.recent_cap, len(entries), *entries)
        u = users[user]
        ops += ("u", keys.user(shard, user), str(u.n), str(last_ts[user]), str(u.seq))
        ops += ("a", keys.users(shard), user, str(last_ts[user]))
    stats = keys.stats(shard)
    for (topic, partition), offset in offsets.items():
        field_o, field_f = keys.offset_fields(topic, partition)
        ops += ("o", stats, field_o, str(offset), field_f, prints[(topic, partition)])
    counts.update(outcomes)
    # Redeliveries are the consumer's business (a metric), not part of the state: a
    # crash must leave the same state as a clean pass.
    for name in (APPLIED, DUPLICATE):
        if counts[name]:
            ops += ("h", stats, name, counts[name])
    declared = [stats, keys.users(shard), popularity, trending]
    declared += [keys.trending(shard, v) for v in touched_values]
    for user in {loc.event.user_id for loc in events}:
        declared += keys.user_keys(shard, user)
    for item in touched_items:
        declared += (keys.counters(shard, item), keys.neighbours(shard, item))
    return ChunkPlan(cas, ops, outcomes, counts, offsets, declared)


def expiry_ops(shard: int, expired: Iterable[str], cutoff_ms: int, keys: BehaviorKeys) -> list[Op]:
    """Forget users whose last event is older than ``cutoff_ms`` (event time): the script
    re-checks, so a user who acted meanwhile is kept."""
    ops: list[Op] = []
    for user in expired:
        ops += ("e", keys.users(shard), user, cutoff_ms, *keys.user_keys(shard, user))
    return ops


AttributeReader = Callable[[Iterable[str]], ItemAttributes]
