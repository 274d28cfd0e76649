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
# Everything in requirements.lock comes at its locked version. The official image's own
# extras, which the project does not use, are pinned here as Airflow 3.3.2's constraints pin
# them (celery 5.7.0 dropped celery.backends.database.retry, which the provider imports).
OFFICIAL_IMAGE_EXTRAS=(apache-airflow-providers-celery==3.26.0 apache-airflow-providers-fab==3.10.2
    apache-airflow-providers-postgres==7.1.1 "celery[redis]==5.5.3" "async-timeout>=4.0.3")
TARGET_PYTHON=3.11.2 docker/download-wheels.sh "$CONTEXT/wheels" \
    ".[pipeline]" "${OFFICIAL_IMAGE_EXTRAS[@]}" "moto[server]" setuptools wheel
rm -rf "$CONTEXT/project" && mkdir -p "$CONTEXT/project/tasks"
cp pyproject.toml README.md "$CONTEXT/project/"
touch "$CONTEXT/project/tasks/__init__.py"
printf '%s\n' "${OFFICIAL_IMAGE_EXTRAS[@]}" >"$CONTEXT/official-image-extras.txt"
cp docker/standin/airflow-entrypoint.sh docker/standin/postgres-entrypoint.sh "$CONTEXT/"

$DOCKER build --quiet -f docker/standin/Dockerfile.services -t nightly-retrain-services:standin "$CONTEXT" >/dev/null
echo "built nightly-retrain-services:standin"
$DOCKER build --quiet -f docker/standin/Dockerfile.airflow-base -t nightly-retrain-airflow-base:standin "$CONTEXT" >/dev/null
echo "built nightly-retrain-airflow-base:standin"
