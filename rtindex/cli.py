"""The ``rtindex`` command line. Each subcommand is a thin shell over a module's entry point."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rtindex.settings import Settings, load_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except Exception as e:  # settings errors are user errors: say what, exit non-zero
        print(f"rtindex: invalid settings: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def _logging(settings: Settings) -> None:
    from rtindex.ops.logs import setup_logging

    setup_logging(settings.log_level, settings.log_format)


def cmd_up(args: argparse.Namespace) -> int:
    from rtindex.runtime.up import run_up

    settings = _settings()
    _logging(settings)
    return run_up(
        settings,
        data_dir=Path(args.data_dir),
        api_port=args.api_port,
        kafka_port=args.kafka_port,
        redis_port=args.redis_port,
        demo=not args.no_demo,
        demo_limit=args.demo_limit,
    )


def cmd_consume(args: argparse.Namespace) -> int:
    settings = _settings()
    _logging(settings)
    if args.stream == "documents":
        from rtindex.consumers.documents import run_document_consumer

        return run_document_consumer(settings, args.metrics_port)
    from rtindex.consumers.behaviors import run_behavior_consumer

    return run_behavior_consumer(settings, args.metrics_port)


def cmd_topics(args: argparse.Namespace) -> int:
    from rtindex.consumers.topics import ensure_topics, rtindex_topics

    settings = _settings()
    _logging(settings)
    ensure_topics(settings, partitions=args.partitions)
    print(
        f"topics ready: {', '.join(rtindex_topics(settings))}"
        f" (new ones with {args.partitions} partitions)",
        file=sys.stderr,
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from rtindex.query.server import serve

    settings = _settings()
    _logging(settings)
    return serve(settings, host=args.host, port=args.port)


def cmd_produce(args: argparse.Namespace) -> int:
    from rtindex.consumers.publish import publish_jsonl

    settings = _settings()
    _logging(settings)
    topic = {
        "documents": settings.kafka.documents_topic,
        "behaviors": settings.kafka.behaviors_topic,
    }[args.stream]
    key_field = "id" if args.stream == "documents" else "user_id"
    if args.file == "-":
        n = publish_jsonl(settings, topic, sys.stdin.buffer, key_field=key_field)
    else:
        with Path(args.file).open("rb") as source:
            n = publish_jsonl(settings, topic, source, key_field=key_field)
    print(f"published {n} events to {topic}", file=sys.stderr)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from rtindex.query.search import Searcher, SearchRequest

    settings = _settings()
    searcher = Searcher.connect(settings)
    try:
        req = SearchRequest(q=args.query, k=args.k, op=args.op)
        result = searcher.search(req)
    finally:
        searcher.close()
    print(json.dumps(result, ensure_ascii=False, indent=2 if args.pretty else None))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from rtindex.indexer.events import behavior_json_schema, document_json_schema

    schema = document_json_schema() if args.stream == "documents" else behavior_json_schema()
    print(json.dumps(schema, ensure_ascii=False, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rtindex", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the whole system on this machine, in the foreground")
    up.add_argument("--data-dir", default="./rtindex-data", help="where Redis keeps its data")
    up.add_argument("--api-port", type=int, default=8080)
    up.add_argument("--kafka-port", type=int, default=9092)
    up.add_argument("--redis-port", type=int, default=6379)
    up.add_argument("--no-demo", action="store_true", help="do not load the demo corpus")
    up.add_argument("--demo-limit", type=int, default=5000, help="demo documents to load")
    up.set_defaults(func=cmd_up)

    c = sub.add_parser("consume", help="run one consumer (documents or behaviors)")
    c.add_argument("stream", choices=["documents", "behaviors"])
    c.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="Prometheus /metrics port (default: settings ops.metrics_port_<stream>; 0: any)",
    )
    c.set_defaults(func=cmd_consume)

    t = sub.add_parser("topics", help="create the topics if missing (one-shot, idempotent)")
    t.add_argument(
        "--partitions", type=int, default=3, help="partitions of topics it creates (default 3)"
    )
    t.set_defaults(func=cmd_topics)

    s = sub.add_parser("serve", help="run the query service")
    s.add_argument("--host", default=None, help="default: settings api.host (127.0.0.1)")
    s.add_argument("--port", type=int, default=None, help="default: settings api.port (8080)")
    s.set_defaults(func=cmd_serve)

    pr = sub.add_parser("produce", help="publish events from a JSON-lines file ('-' = stdin)")
    pr.add_argument("stream", choices=["documents", "behaviors"])
    pr.add_argument("file")
    pr.set_defaults(func=cmd_produce)

    q = sub.add_parser("search", help="keyword search from the terminal")
    q.add_argument("query")
    q.add_argument("-k", type=int, default=10)
    q.add_argument("--op", choices=["or", "and"], default="or")
    q.add_argument("--pretty", action="store_true")
    q.set_defaults(func=cmd_search)

    sc = sub.add_parser("schema", help="print the JSON Schema of document or behavior events")
    sc.add_argument("stream", nargs="?", choices=["documents", "behaviors"], default="documents")
    sc.set_defaults(func=cmd_schema)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rc: int = args.func(args)
    return rc
