"""Under CI (CI=true) the suite cannot go green by skipping its Docker tests: a missing engine
fails `docker/engine.sh start` and the `docker_client` fixture; elsewhere both only warn."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def path_without_docker(tmp_path) -> str:
    """A PATH holding only the tools engine.sh needs besides Docker itself: no docker, no
    dockerd, no apt-get, so the script can neither reach nor install an engine."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("dirname", "timeout", "id", "seq", "sleep", "cat", "mkdir"):
        (tools / tool).symlink_to(shutil.which(tool))
    return str(tools)


@pytest.mark.parametrize(("ci", "status", "said"), [("true", 1, "needs a Docker engine"), ("", 0, "SKIPPED")])
def test_engine_script_fails_without_an_engine_only_under_ci(path_without_docker, ci, status, said):
    result = subprocess.run(
        ["/bin/bash", str(ROOT / "docker" / "engine.sh"), "start"],
        env={"PATH": path_without_docker, "CI": ci},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == status, result
    assert said in result.stdout + result.stderr


@pytest.mark.parametrize(("ci", "outcome"), [("true", "1 error"), ("", "1 skipped")])
def test_docker_fixture_fails_without_an_engine_only_under_ci(ci, outcome):
    """A Docker test in a child pytest whose DOCKER_HOST answers nothing."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "tests/plugins/test_trainer_operator.py::test_a_failing_container_is_reported_in_one_line",
        ],
        cwd=ROOT,
        env={**os.environ, "CI": ci, "DOCKER_HOST": "tcp://127.0.0.1:9"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert outcome in result.stdout, result.stdout[-2000:]
    assert "NO DOCKER ENGINE REACHABLE" in result.stdout
