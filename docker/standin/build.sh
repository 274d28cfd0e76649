#!/usr/bin/env bash
# Builds the registry-free stand-in images that let docker-compose.yaml run here:
# nightly-retrain-airflow-base:standin and nightly-retrain-services:standin, from the
# debootstrap base of the trainer image and wheels downloaded on the host. The project's
# Airflow image is then built by compose from docker/airflow/Dockerfile itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
DOCKER=${DOCKER:-docker}
CONTEXT=build/standin

# The debootstrap base (nightly-retrain-base:bookworm) is made by the trainer's build.
$DOCKER image inspect nightly-retrain-base:bookworm >/dev/null 2>&1 || docker/trainer/build-offline.sh

# Resolved for the Python of the Debian base (3.11.2), not the host's: markers differ
# and pip --python-version leaves python_full_version markers to the host (redis).
# Celery is pinned as Airflow's constraints pin it in the official image: 5.7.0 dropped
# celery.backends.database.retry, which the celery provider still imports.
docker/download-wheels.sh "$CONTEXT/wheels" --python-version 3.11.2 --only-binary=:all: \
    ".[pipeline]" apache-airflow-providers-celery apache-airflow-providers-fab \
    apache-airflow-providers-postgres "moto[server]==5.2.5" setuptools wheel \
    "async-timeout>=4.0.3" "celery[redis]==5.5.3"
rm -rf "$CONTEXT/project" && mkdir -p "$CONTEXT/project/tasks"
cp pyproject.toml README.md "$CONTEXT/project/"
touch "$CONTEXT/project/tasks/__init__.py"
cp docker/standin/airflow-entrypoint.sh docker/standin/postgres-entrypoint.sh "$CONTEXT/"

$DOCKER build --quiet -f docker/standin/Dockerfile.services -t nightly-retrain-services:standin "$CONTEXT" >/dev/null
echo "built nightly-retrain-services:standin"
$DOCKER build --quiet -f docker/standin/Dockerfile.airflow-base -t nightly-retrain-airflow-base:standin "$CONTEXT" >/dev/null
echo "built nightly-retrain-airflow-base:standin"
