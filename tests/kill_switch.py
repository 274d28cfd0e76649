"""Kill drills: runs a task's code in a child process that SIGKILLs itself at a chosen call,
as the kernel's OOM killer or a lost worker ends a task, with nothing flushed or cleaned up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def kill_on_call(owner: Any, name: str, call_number: int = 1, after: bool = False) -> None:
    """Replaces `owner.name` so that its `call_number`-th call (counted across threads) kills
    the process with SIGKILL, before the original runs or, with `after`, once it returned."""
    original: Callable[..., Any] = getattr(owner, name)
    calls = 0
    lock = threading.Lock()

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        with lock:
            calls += 1
            fatal = calls == call_number
        if fatal and not after:
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        if fatal:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, name, wrapper)


def run_killed(script: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """Runs `script` in a fresh interpreter with this environment (the tests' S3 endpoint and
    credentials) and checks that it died of SIGKILL."""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == -signal.SIGKILL, (result.returncode, result.stderr[-3000:])
    return result
