"""Structured logs: one JSON object per line, with the caller's extra fields."""

from __future__ import annotations

import io
import json
import logging

from rtindex.ops.logs import JsonFormatter, setup_logging


def test_json_lines() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("rtindex.test.json")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    log.info("batch: %d records", 7, extra={"records": 7, "topic": "t"})
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        log.exception("failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2  # a traceback stays inside its line
    first, second = (json.loads(line) for line in lines)
    assert first["msg"] == "batch: 7 records" and first["level"] == "INFO"
    assert first["records"] == 7 and first["topic"] == "t"
    assert first["logger"] == "rtindex.test.json" and first["ts"].endswith("Z")
    assert second["level"] == "ERROR" and "ValueError: boom" in second["exc"]


def test_setup_replaces_handlers() -> None:
    root = logging.getLogger()
    before = list(root.handlers), root.level
    try:
        setup_logging("WARNING", "json")
        assert len(root.handlers) == 1
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
        assert logging.getLogger("kafka").level == logging.WARNING
        setup_logging("INFO", "text")
        assert not isinstance(root.handlers[0].formatter, JsonFormatter)
    finally:
        root.handlers[:] = before[0]
        root.setLevel(before[1])
