"""The code-quality gates run with the tests, so the one test command enforces them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["rtindex", "tests", "benchmarks"]


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize(
    "argv",
    [("ruff", "check", *PATHS), ("ruff", "format", "--check", *PATHS), ("mypy",)],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_gate(argv: tuple[str, ...]) -> None:
    result = run(*argv)
    assert result.returncode == 0, result.stdout + result.stderr
