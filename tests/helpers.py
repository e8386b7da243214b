"""Test helpers: wait on conditions (never sleep as synchronization)."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

T = TypeVar("T")
C = TypeVar("C")


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str | Callable[[], str] = "condition not met",
) -> T:
    """Poll ``predicate`` until it returns something truthy; return that value.

    Raises AssertionError after ``timeout`` seconds, with ``message`` (a string or a
    callable giving one, for a description of the state at that moment).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout:.1f} s: {text}")
        time.sleep(interval)


@contextmanager
def running(c: C) -> Iterator[C]:
    """Run a consumer (a ``PipelinedConsumer``) in a thread until the block ends; then it
    must stop cleanly."""
    consumer: Any = c
    stop = threading.Event()
    t = threading.Thread(
        target=consumer.run, args=(stop,), name=f"{consumer.kind}-consumer", daemon=True
    )
    t.start()
    try:
        yield c
    finally:
        stop.set()
        t.join(timeout=30)
        consumer.close()
        assert not t.is_alive(), "the consumer did not stop"


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """An ASGI app served by uvicorn on a free loopback port; yields its base URL."""
    import uvicorn

    from rtindex.runtime.servers import free_port

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", log_config=None)
    )
    t = threading.Thread(target=server.run, name="query-service", daemon=True)
    t.start()
    wait_until(lambda: server.started, timeout=20, message="query service did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(timeout=10)


def load_benchmark(name: str) -> ModuleType:
    """A module of benchmarks/ (not a package), loaded from its file once per session."""
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while decorating
    spec.loader.exec_module(module)
    return module
