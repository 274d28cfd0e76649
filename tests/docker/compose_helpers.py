"""Helpers for the full-stack tests: Docker Compose v2 (the engine's plugin or the .venv
binary) over the project's compose file, isolated from the test session's own settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = [str(ROOT / "docker" / "compose.sh")]
AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
)


# The test session's own settings (moto endpoint, host network, ...) must not leak into the
# compose file: the shell's environment outranks the env file in compose's interpolation.
OWN_PREFIXES = ("RETRAIN_", "AIRFLOW", "_AIRFLOW", "AWS_", "COMPOSE_", "MINIO_", "POSTGRES_")


def compose(*args: str, env_file: Path, env: dict[str, str] | None = None, check: bool = True):
    """`docker compose --env-file <env_file> <args>` in the repository root; `env` adds
    variables on top of the env file."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith(OWN_PREFIXES)}
    return subprocess.run(
        [*COMPOSE, "--env-file", str(env_file), *args],
        cwd=ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        check=check,
        timeout=900,
    )


def write_env_file(output: Path) -> str:
    """`make env` into `output` (from the committed .env.example); returns what it printed."""
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "docker" / "new_env.py"),
            "--example",
            str(ROOT / ".env.example"),
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
