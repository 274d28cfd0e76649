#!/usr/bin/env bash
# Downloads wheels for an offline image build into DEST at the versions requirements.lock
# names (DEST/constraints.txt, used again by the image's install), again only when the lock,
# pyproject.toml or the arguments change (a stamp in DEST records them).
#   [TARGET_PYTHON=3.11.2] docker/download-wheels.sh DEST PIP_DOWNLOAD_ARGS...
# TARGET_PYTHON: wheels for that Python (the images' Debian 3.11), with the lock's markers
# decided for it rather than for this machine's Python.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-.venv/bin/pip}
PYTHON=${PYTHON:-.venv/bin/python}
dest=$1
shift
target=()
if [ -n "${TARGET_PYTHON:-}" ]; then
    target=(--python-version "$TARGET_PYTHON" --only-binary=:all:)
fi
stamp=$dest/.inputs.sha256
wanted=$( (cat pyproject.toml requirements.lock; echo "${TARGET_PYTHON:-}" "$@") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "downloading wheels into $dest"
    mkdir -p "$dest"
    $PYTHON docker/lockfile.py constraints ${TARGET_PYTHON:+--python-full-version "$TARGET_PYTHON"} \
        >"$dest/constraints.txt"
    $PIP download --quiet --dest "$dest" --constraint "$dest/constraints.txt" "${target[@]}" "$@"
    echo "$wanted" >"$stamp"
fi
