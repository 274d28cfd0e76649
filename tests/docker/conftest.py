"""Fixtures for the full-stack tests: a throwaway .env written by docker/new_env.py, and the
compose file as Docker Compose resolves it with that .env."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from compose_helpers import compose, write_env_file


@pytest.fixture(scope="session")
def env_file(tmp_path_factory) -> Path:
    """A .env as `make env` writes it, in a temporary folder."""
    path = tmp_path_factory.mktemp("compose") / ".env"
    write_env_file(path)
    return path


@pytest.fixture(scope="session")
def env_values(env_file) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    return {name: value for name, value in pairs if not name.startswith("#")}


@pytest.fixture(scope="session")
def compose_config(env_file) -> dict:
    """The compose file as Docker Compose resolves it (interpolated, anchors merged)."""
    result = compose(
        "--profile", "build", "--profile", "flower", "config", "--format", "json", env_file=env_file
    )
    return json.loads(result.stdout)
