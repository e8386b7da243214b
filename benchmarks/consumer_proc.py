"""`rtindex consume documents`, optionally profiled: the benchmark's consumer process.
Settings come from RTINDEX_*; --fetch-max-wait-ms overrides kafka.fetch_max_wait_ms.

    python benchmarks/consumer_proc.py [--fetch-max-wait-ms MS] [--profile FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import logging

import rtindex.consumers.documents as documents
from rtindex.settings import load_settings


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fetch-max-wait-ms", type=int, default=None, help="default: the setting")
    ap.add_argument("--profile", default=None, help="write a cProfile of the run to this file")
    args = ap.parse_args()
    settings = load_settings()
    if args.fetch_max_wait_ms is not None:
        settings = settings.with_overrides({"kafka": {"fetch_max_wait_ms": args.fetch_max_wait_ms}})
    logging.basicConfig(level=settings.log_level)
    if not args.profile:
        return documents.run_document_consumer(settings, 0)
    prof = cProfile.Profile()
    try:
        return prof.runcall(documents.run_document_consumer, settings, 0)
    finally:
        prof.dump_stats(args.profile)


if __name__ == "__main__":
    raise SystemExit(main())
