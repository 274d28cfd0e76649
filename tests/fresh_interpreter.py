"""Runs a probe script in a fresh Python interpreter with exactly the environment given, for
tests of what a DAG file does at parse time under a given set of variables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_probe(probe: str, env: dict[str, str], cwd: Path | None = None) -> str:
    """The last line the probe prints; fails the test with its stderr if it fails."""
    completed = subprocess.run(
        [sys.executable, "-c", probe], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout.strip().splitlines()[-1]
