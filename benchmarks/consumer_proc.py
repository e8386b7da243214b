"""`rtindex consume documents` with kafka-python's fetch_max_wait_ms overridable (the
settings do not expose it): the benchmark's consumer process. Settings come from RTINDEX_*.

    python benchmarks/consumer_proc.py [--fetch-max-wait-ms MS] [--profile FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import logging
from typing import Any

import rtindex.consumers.documents as documents
from rtindex.settings import Settings, load_settings


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fetch-max-wait-ms", type=int, default=None, help="kafka-python default 500")
    ap.add_argument("--profile", default=None, help="write a cProfile of the run to this file")
    args = ap.parse_args()
    if args.fetch_max_wait_ms is not None:
        base = documents.kafka_client_config

        def config(settings: Settings, **kw: Any) -> dict[str, Any]:
            return base(settings, **kw, fetch_max_wait_ms=args.fetch_max_wait_ms)

        documents.kafka_client_config = config  # only the consumer's, not the DLQ producer's
    settings = load_settings()
    logging.basicConfig(level=settings.log_level)
    if not args.profile:
        return documents.run_document_consumer(settings)
    prof = cProfile.Profile()
    try:
        return prof.runcall(documents.run_document_consumer, settings)
    finally:
        prof.dump_stats(args.profile)


if __name__ == "__main__":
    raise SystemExit(main())
