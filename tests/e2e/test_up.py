"""``rtindex up`` end to end: embedded servers, consumer and API as real processes; demo
documents become searchable over HTTP; SIGTERM stops everything cleanly."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from helpers import wait_until

from rtindex.demo import demo_events
from rtindex.runtime.servers import free_port, port_in_use, valkey_binary

pytestmark = pytest.mark.e2e

DEMO_LIMIT = 200
WORD = "经济"  # checked below to occur in the first DEMO_LIMIT demo documents


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time) for every live (non-zombie) process."""
    table: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited while we looked
        state, ppid, starttime = fields[0], int(fields[1]), fields[19]
        if state != "Z":
            table[int(entry.name)] = (ppid, starttime)
    return table


def _descendants(root: int) -> dict[int, str]:
    """pid -> start time of every live descendant of ``root`` (start time guards pid reuse)."""
    table = _proc_table()
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, start) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = start
                frontier.append(pid)
    return found


def _cmdline(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")).decode()
    except FileNotFoundError:
        return ""


def _search_total(api: str) -> int:
    try:
        response = httpx.get(f"{api}/search", params={"q": WORD, "k": 5}, timeout=2.0)
    except httpx.TransportError:
        return 0  # not listening yet
    if response.status_code != 200:
        return 0  # not ready yet
    total: int = response.json()["total"]
    return total


def test_up_serves_the_demo_and_stops_cleanly(tmp_path: Path) -> None:
    assert any(WORD in e["doc"]["body"] for e in demo_events(DEMO_LIMIT))
    api_port, kafka_port, redis_port = free_port(), free_port(), free_port()
    # Embedded servers only: no RTINDEX_* setting from the caller's environment leaks in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTINDEX_")}
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "rtindex", "up",
                "--data-dir", str(tmp_path / "data"),
                "--api-port", str(api_port),
                "--kafka-port", str(kafka_port),
                "--redis-port", str(redis_port),
                "--demo-limit", str(DEMO_LIMIT),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )  # fmt: skip
    api = f"http://127.0.0.1:{api_port}"
    try:
        wait_until(
            lambda: _search_total(api) > 0 or proc.poll() is not None,
            timeout=180,
            interval=0.25,
            message=lambda: f"no hits for {WORD!r}; log:\n{log_path.read_text()[-3000:]}",
        )
        assert proc.poll() is None, f"rtindex up exited early:\n{log_path.read_text()[-3000:]}"
        assert _search_total(api) > 0

        # The operator's view: /stats counts the demo, the dashboard and every /metrics
        # endpoint `rtindex up` printed answer.
        def metrics_line() -> str | None:
            lines = log_path.read_text().splitlines()
            return next((x for x in lines if x.startswith("  metrics ")), None)

        line = wait_until(metrics_line, timeout=60, message=lambda: log_path.read_text())
        printed = log_path.read_text()
        metrics_urls = re.findall(r"http://127\.0\.0\.1:\d+/metrics", line)
        assert len(metrics_urls) == 3, line
        for url in metrics_urls:
            assert "rtindex_" in httpx.get(url, timeout=5).text, url
        assert f"{api}/dashboard" in printed
        assert httpx.get(f"{api}/dashboard").headers["content-type"].startswith("text/html")
        stats = httpx.get(f"{api}/stats").json()
        assert stats["headline"]["documents"] > 0
        assert set(stats["consumers"]) == {"documents", "behaviors"}, stats["consumers"]

        children = _descendants(proc.pid)
        commands = " | ".join(_cmdline(pid) for pid in children)
        redis_bin = Path(valkey_binary()).name  # valkey-server, unless REDIS_SERVER_BIN says
        for part in ("tansu", redis_bin, "consume documents", "serve"):
            assert part in commands, commands

        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        assert code == 0, log_path.read_text()[-3000:]

        table = _proc_table()
        left = [pid for pid, start in children.items() if table.get(pid, (0, ""))[1] == start]
        assert not left, [_cmdline(pid) for pid in left]
        for port in (api_port, kafka_port, redis_port):
            assert not port_in_use(port)
        assert (tmp_path / "data" / "demo-loaded.rti.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()  # its children die with it (they are started with a parent-death signal)
            proc.wait()


def test_up_reports_a_taken_port_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTINDEX_")}
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable, "-m", "rtindex", "up",
                "--data-dir", str(tmp_path / "data"),
                "--api-port", str(free_port()),
                "--kafka-port", str(free_port()),
                "--redis-port", str(taken),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"rtindex up: Redis port {taken} on 127.0.0.1 is already in use"
        " (choose another with --redis-port)"
    )
    assert not (tmp_path / "data").exists()  # nothing was started or written
