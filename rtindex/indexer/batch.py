"""Index one batch of decoded document events: read, plan, write, re-plan the losers of a race."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from rtindex.indexer.docview import Tokenize
from rtindex.indexer.plan import DocPlan, Event, Outcome, group_by_id, plan_document
from rtindex.indexer.store import DocumentStore

# Compare-and-set conflicts need two writers on one document at once (a producer that
# sends no key, or a partition moving). A few rounds settle them; endless ones are a bug.
MAX_ROUNDS = 50


@dataclass(frozen=True, slots=True)
class BatchResult:
    outcomes: list[Outcome]  # one per event, in batch order
    documents_written: int
    conflicts: int

    def counts(self) -> Counter[str]:
        return Counter(o.value for o in self.outcomes)


def index_documents(
    store: DocumentStore, events: Sequence[Event], tokenize: Tokenize
) -> BatchResult:
    """Apply ``events`` (in arrival order) exactly once in effect. Idempotent: running the
    same batch again finds every event stale or duplicate and writes nothing."""
    groups = group_by_id(events)
    outcomes: dict[int, Outcome] = {}
    pending = list(groups)
    written = conflicts = 0
    for _ in range(MAX_ROUNDS):
        stored = store.read(pending)
        plans: list[DocPlan] = []
        for doc_id in pending:
            plan, decided = plan_document(
                doc_id,
                stored[doc_id],
                groups[doc_id],
                store.schema,
                tokenize,
                bigrams=store.han_bigrams,
            )
            outcomes.update(decided)
            if plan is not None:
                plans.append(plan)
        lost = store.apply(plans) if plans else []
        written += len(plans) - len(lost)
        conflicts += len(lost)
        if not lost:
            return BatchResult([outcomes[i] for i in range(len(events))], written, conflicts)
        pending = [p.doc_id for p in lost]
    raise RuntimeError(f"documents still conflicting after {MAX_ROUNDS} rounds: {pending[:5]}")
