"""Planning a batch of document events: versions decide, views are diffed. Pure logic.

Given what the store holds for each document now and the batch's events in arrival
order, decide each event's outcome (applied, stale, duplicate) exactly as if the events
were applied one by one, and produce one :class:`DocPlan` per document whose state
changes. Several events for one document in a batch collapse into one write and one
analysis, which is where most of the indexing speed comes from.

Version rules (the contract): an event whose version is not greater than the version
already applied (a delete's included) changes nothing. Equal is a *duplicate*, lower
is *stale*. A patch of a document that does not exist (never seen, or deleted by an
older version) creates it from the patch's fields, like Elasticsearch's
``doc_as_upsert``: the patch is newer than anything seen, so dropping it would lose data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from rtindex.indexer.docview import (
    IndexedView,
    Tokenize,
    ViewDiff,
    apply_patch,
    build_view,
    clean_upsert,
    diff_views,
    text_bigrams,
)
from rtindex.indexer.events import DeleteEvent, PatchEvent, UpsertEvent
from rtindex.settings import IndexSchema

Event = UpsertEvent | PatchEvent | DeleteEvent


class Outcome(StrEnum):
    APPLIED = "applied"
    STALE = "stale"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class Stored:
    """What the store holds for one id: nothing, a live document, or a tombstone."""

    version: int | None = None
    deleted: bool = False
    docnum: int | None = None
    src: dict[str, Any] | None = None
    view: IndexedView | None = None

    @property
    def live(self) -> bool:
        return self.version is not None and not self.deleted


@dataclass(slots=True)
class DocPlan:
    doc_id: str
    base: Stored  # the state this plan was computed from (compare-and-set on its version)
    version: int
    ts: int
    deleted: bool
    src: dict[str, Any] | None
    view: IndexedView | None
    diff: ViewDiff
    docnum: int | None  # the live document's docnum; None until allocated for a new doc
    events: list[int] = field(default_factory=list)  # positions of the events it applies

    @property
    def needs_docnum(self) -> bool:
        return not self.deleted and self.docnum is None


def plan_document(
    doc_id: str,
    base: Stored,
    events: Sequence[tuple[int, Event]],
    schema: IndexSchema,
    tokenize: Tokenize,
    *,
    bigrams: bool,
) -> tuple[DocPlan | None, dict[int, Outcome]]:
    """Fold one document's events (in arrival order) over its stored state. ``bigrams``:
    also diff the Han bigram postings (``index.han_bigrams``)."""
    outcomes: dict[int, Outcome] = {}
    version, deleted, src, ts = base.version, base.deleted, base.src, 0
    applied: list[int] = []
    for pos, ev in events:
        if version is not None and ev.version <= version:
            outcomes[pos] = Outcome.DUPLICATE if ev.version == version else Outcome.STALE
            continue
        outcomes[pos] = Outcome.APPLIED
        applied.append(pos)
        version, ts = ev.version, ev.ts
        if isinstance(ev, DeleteEvent):
            deleted, src = True, None
        elif isinstance(ev, UpsertEvent):
            deleted, src = False, clean_upsert(ev.doc)
        else:
            current = src if (src is not None and not deleted) else {}
            deleted, src = False, apply_patch(current, ev.doc)
    if not applied:
        return None, outcomes
    assert version is not None
    old_view = base.view if base.live else None
    new_view: IndexedView | None = None
    if not deleted:
        assert src is not None
        old_src = base.src if base.live and base.src is not None else None
        unchanged = frozenset(
            f
            for f in schema.text_fields
            if old_src is not None and old_view is not None and old_src.get(f) == src.get(f)
        )
        new_view = build_view(src, schema, tokenize, reuse=old_view, unchanged_text=unchanged)
    diff = diff_views(old_view, new_view, len(schema.text_fields))
    if bigrams:
        old_src = base.src if base.live else None
        new_src = None if deleted else src
        if not (
            old_src is not None and new_src is not None and _same_text(old_src, new_src, schema)
        ):
            old_bg = text_bigrams(old_src, schema, old_view.terms if old_view else ())
            new_bg = text_bigrams(new_src, schema, new_view.terms if new_view else ())
            diff = replace(
                diff,
                bigrams_add=tuple(sorted(new_bg - old_bg)),
                bigrams_remove=tuple(sorted(old_bg - new_bg)),
            )
    plan = DocPlan(
        doc_id=doc_id,
        base=base,
        version=version,
        ts=ts,
        deleted=deleted,
        src=src,
        view=new_view,
        diff=diff,
        docnum=base.docnum if base.live and not deleted else None,
        events=applied,
    )
    return plan, outcomes


def _same_text(a: dict[str, Any], b: dict[str, Any], schema: IndexSchema) -> bool:
    return all(a.get(f) == b.get(f) for f in schema.text_fields)


def group_by_id(events: Sequence[Event]) -> dict[str, list[tuple[int, Event]]]:
    """Events per document id, each list in arrival order, with their batch positions."""
    groups: dict[str, list[tuple[int, Event]]] = {}
    for pos, ev in enumerate(events):
        groups.setdefault(ev.id, []).append((pos, ev))
    return groups
