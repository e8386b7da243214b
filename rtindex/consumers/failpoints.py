"""Fault injection for crash tests (in the manner of TiKV's fail points).

``RTINDEX_FAILPOINTS="after_apply_before_commit=kill@3"`` makes this process SIGKILL
itself the 3rd time it reaches that point: a real crash, with no cleanup, no flush
and no commit. Unset (always, outside tests) a fail point costs one dict lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "RTINDEX_FAILPOINTS"


def _parse(spec: str) -> dict[str, int]:
    points: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, action = part.partition("=")
        verb, _, nth = action.partition("@")
        if verb != "kill" or not nth.isdigit() or int(nth) < 1:
            raise ValueError(f"{ENV}: expected name=kill@N, got {part!r}")
        points[name] = int(nth)
    return points


_POINTS = _parse(os.environ.get(ENV, ""))
_HITS: Counter[str] = Counter()


def failpoint(name: str) -> None:
    nth = _POINTS.get(name)
    if nth is None:
        return
    _HITS[name] += 1
    if _HITS[name] == nth:
        os.kill(os.getpid(), signal.SIGKILL)
