# Two commands for a newcomer: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install lock demo ui test check lint types browser bench bench-accuracy bench-catalogue clean trainer-image engine-start engine-stop env up down \
	down-volumes logs ps standin-images

LOCK := requirements.lock

# Every package at the version the lock names, each wheel checked against the lock's hashes;
# then the project itself (editable, no dependencies of its own to resolve).
$(INSTALLED): pyproject.toml $(LOCK)
	@$(PYTHON) docker/lockfile.py check
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes --requirement $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(INSTALLED)

install: $(INSTALLED)

## Resolve requirements.lock again from pyproject.toml (Python 3.11, Linux, with hashes).
## Run it after changing a dependency and commit both files; `make test` fails until then.
lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/pip install --quiet "$$(grep -o 'uv==[0-9.]*' pyproject.toml)"
	$(BIN)/uv pip compile pyproject.toml --all-extras --universal --python-version 3.11 \
		--generate-hashes --custom-compile-command "make lock" --quiet --output-file $(LOCK)
	$(BIN)/python docker/lockfile.py stamp

## Run the whole pipeline once on a local S3 endpoint and SQLite Airflow; outputs in demo-output/.
demo: install
	$(BIN)/retrain demo --output demo-output --airflow-home .airflow

## The Airflow UI on this machine with a local S3 holding the demo data; Ctrl-C stops it all.
UI_HOME ?= .airflow-ui
UI_PORT ?= 8080
ui: install
	$(BIN)/retrain ui --airflow-home $(UI_HOME) --port $(UI_PORT)

## Lint, format and type checks, then the whole test suite against real S3 (moto server),
## Airflow, GX, TensorFlow and a real Docker engine (started here if none runs, and stopped
## again at the end). Images that rebuilds left untagged are pruned at the end, so repeated
## runs do not fill the disk. It prints this machine's training rate of the reference CNN
## first and the time per test file last, so suite times compare across machines.
test: install lint types browser
	@docker/engine.sh start || exit 1; \
	if docker info >/dev/null 2>&1; then \
		{ docker/trainer/build-offline.sh && docker/standin/build.sh; } || { docker/engine.sh stop; exit 1; }; \
	fi; \
	$(BIN)/python -m bench.training_rate || echo "reference CNN training rate: not measured"; \
	$(BIN)/python -m pytest; status=$$?; \
	docker image prune --force >/dev/null 2>&1; \
	docker/engine.sh stop; exit $$status

## Debian's chromium for the tests that open the Airflow UI in a browser (Playwright drives
## it through executable_path; it downloads no browser of its own). Needs root to install.
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

## The CPU trainer image, built without a registry (debootstrap base + host-downloaded wheels).
trainer-image: install
	docker/trainer/build-offline.sh

## The GPU trainer image from the official TensorFlow GPU image (needs a registry).
trainer-image-gpu:
	docker build -f docker/trainer/Dockerfile -t $${RETRAIN_TRAINER_IMAGE:-nightly-retrain-trainer:latest} .

## The full stack (docker-compose.yaml): Airflow on Celery, MinIO, trainer containers.
## Docker Compose v2 from the engine's plugin, else the one `make install` puts in .venv.
COMPOSE ?= docker/compose.sh

.env:
	$(PYTHON) docker/new_env.py

env: .env

up: .env
	$(COMPOSE) --profile build build
	$(COMPOSE) up --detach --wait

# Trainer containers are started by the worker, not by compose: `down` stops those on the
# stack's network too (a retried task resumes from its last epoch checkpoint).
STACK_NETWORK = $(or $(shell sed -n 's/^RETRAIN_DOCKER_NETWORK=//p' .env 2>/dev/null),nightly-retrain)
STOP_TRAINERS = docker ps -aq --filter name=^/retrain- --filter network=$(STACK_NETWORK) | xargs -r docker rm -f

down:
	$(STOP_TRAINERS)
	$(COMPOSE) down

## Also deletes the volumes: the Airflow database, MinIO's data and the task logs.
down-volumes:
	$(STOP_TRAINERS)
	$(COMPOSE) down --volumes

logs:
	$(COMPOSE) logs --follow --tail 100

ps:
	$(COMPOSE) ps

## Registry-free stand-ins that let the full-stack test run the compose file here.
standin-images: install
	docker/standin/build.sh

engine-start:
	docker/engine.sh start

engine-stop:
	docker/engine.sh stop

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: install
	$(BIN)/mypy

## The contributor's fast loop: lint, format, types, and the tests that need neither a
## Docker engine nor minutes of training.
check: lint types
	$(BIN)/python -m pytest -m "not slow and not docker" -q

## Ratios of the pipeline's throughput against baselines measured in the same run.
bench: install
	$(BIN)/python -m bench

## The reference result, measured: the whole DAG with default Params on two stratified
## 11,000-image samples of Fashion-MNIST at 128x128 (about 90 minutes a sample, 3 hours for
## both, on 2 CPU cores).
## ARGS passes options, quoted for the shell, e.g. ARGS="--samples 1 --conf '{\"epochs\":3}'".
bench-accuracy: install
	@test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || { \
		apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
		|| { apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null; } \
		|| sudo apt-get install -y -q dataset-fashion-mnist; }
	$(BIN)/python -m bench.accuracy $(ARGS)

## A night with no change at 50,000 and 200,000 objects (and at 4x the objects in general:
## ARGS='SMALL LARGE'), listed and read from an S3 Inventory report, against a local S3 seeded
## on its side (about 45 minutes on 2 CPU cores, most of it the first nights that set it up).
bench-catalogue: install
	$(BIN)/python -m bench.catalogue $(ARGS)

clean:
	rm -rf .airflow .airflow-ui demo-output .pytest_cache .ruff_cache .mypy_cache
