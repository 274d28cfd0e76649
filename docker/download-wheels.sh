#!/usr/bin/env bash
# Downloads wheels for an offline image build into DEST, again only when pyproject.toml or
# the pip arguments change (a stamp in DEST records both).
#   docker/download-wheels.sh DEST PIP_DOWNLOAD_ARGS...
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-.venv/bin/pip}
dest=$1
shift
stamp=$dest/.pyproject.sha256
wanted=$( (cat pyproject.toml; echo "$@") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "downloading wheels into $dest"
    mkdir -p "$dest"
    $PIP download --quiet --dest "$dest" "$@"
    echo "$wanted" >"$stamp"
fi
