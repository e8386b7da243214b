"""The document consumer: topic -> decoded, analyzed events -> Redis index -> committed offsets.

The loop and its delivery guarantee are :mod:`rtindex.consumers.pipeline`'s; here is how
document events are decoded, pre-analyzed (analysis is a pure function of the text, so it
runs while the previous batch is being written) and applied (versions decide: applying a
batch again changes nothing).
"""

from __future__ import annotations

from typing import Any

from rtindex.consumers.dlq import DeadLetter
from rtindex.consumers.pipeline import (
    Applied,
    PipelinedConsumer,
    Prepared,
    decode_records,
    run_consumer,
)
from rtindex.indexer.analysis import Analyzer
from rtindex.indexer.batch import index_documents
from rtindex.indexer.events import DeleteEvent, decode_document_event
from rtindex.indexer.plan import Event, Outcome
from rtindex.indexer.store import DocumentStore
from rtindex.settings import Settings


def decode_batch(records: list[Any], settings: Settings) -> tuple[list[Event], list[DeadLetter]]:
    """Split records into valid document events and dead letters, each in record order."""
    schema, limit = settings.index.schema_, settings.index.max_message_bytes
    return decode_records(records, lambda r: decode_document_event(r.value, schema, limit))


class DocumentConsumer(PipelinedConsumer[Event]):
    kind = "document"
    stream = "documents"
    outcomes = ("applied", "stale", "duplicate", "invalid")

    def __init__(self, settings: Settings, *, group: str | None = None) -> None:
        k = settings.kafka
        super().__init__(settings, k.documents_topic, group or k.documents_group)
        self.store = DocumentStore(self.redis, settings)
        self.analyzer = Analyzer(settings.analysis)

    def ensure_layout(self) -> None:
        self.store.ensure_layout()

    def prepare(self, records: list[Any]) -> Prepared[Event]:
        """Decode, and analyze every text field value."""
        events, dead = decode_batch(records, self.settings)
        text_fields = self.settings.index.schema_.text_fields
        texts = {
            v
            for e in events
            if not isinstance(e, DeleteEvent)
            for f in text_fields
            if isinstance(v := e.doc.get(f), str)
        }
        return Prepared(records, events, dead, {t: self.analyzer.tokens(t) for t in texts})

    def apply_events(self, batch: Prepared[Event]) -> Applied:
        analyzed, analyze = batch.extra, self.analyzer.tokens

        def tokens(text: str) -> list[str]:
            return analyzed[text] if text in analyzed else analyze(text)

        result = index_documents(self.store, batch.events, tokens)
        return Applied(
            result.counts(),
            [
                e.ts
                for e, o in zip(batch.events, result.outcomes, strict=True)
                if o is Outcome.APPLIED
            ],
        )


def run_document_consumer(settings: Settings, metrics_port: int | None = None) -> int:
    port = settings.ops.metrics_port_documents if metrics_port is None else metrics_port
    return run_consumer(DocumentConsumer(settings), port)
