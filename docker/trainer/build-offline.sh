#!/usr/bin/env bash
# Builds the CPU trainer image with no registry: a debootstrap Debian base (built once and
# kept as an image), wheels downloaded on the host at the lock's versions (kept in build/wheels
# while requirements.lock is unchanged), then `docker build` with layer caching. A second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
IMAGE=${RETRAIN_TRAINER_IMAGE:-nightly-retrain-trainer:latest}
BASE_IMAGE=nightly-retrain-base:bookworm
DOCKER=${DOCKER:-docker}

if ! $DOCKER image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    command -v debootstrap >/dev/null || { echo "debootstrap missing: apt-get install debootstrap" >&2; exit 1; }
    rootfs=$(mktemp -d /tmp/retrain-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    echo "building $BASE_IMAGE with debootstrap (about a minute, once)"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,passwd \
        bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | $DOCKER import - "$BASE_IMAGE" >/dev/null
fi

# Debian bookworm's Python: the lock's markers are decided for it.
TARGET_PYTHON=3.11.2 docker/download-wheels.sh build/wheels ".[train]" setuptools wheel

$DOCKER build --quiet -f docker/trainer/Dockerfile.offline --build-arg BASE_IMAGE="$BASE_IMAGE" \
    -t "$IMAGE" . >/dev/null
echo "built $IMAGE"
