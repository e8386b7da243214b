"""`rtindex serve` stops on SIGTERM gracefully and exits 0 (what supervisors expect)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest
from helpers import wait_until

from rtindex.runtime.servers import free_port
from rtindex.settings import Settings

pytestmark = pytest.mark.e2e


def test_serve_exits_zero_on_sigterm(settings: Settings) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTINDEX_")}
    env |= {"RTINDEX_REDIS_URL": settings.redis.url, "RTINDEX_NAMESPACE": settings.redis.namespace}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtindex", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
            except httpx.TransportError:
                return proc.poll() is not None  # exited: fail below with its stderr

        wait_until(ready, timeout=30)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
