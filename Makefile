# Two commands for a newcomer: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(INSTALLED)

install: $(INSTALLED)

## Run the whole pipeline once on a local S3 endpoint and SQLite Airflow; outputs in demo-output/.
demo: install
	$(BIN)/retrain demo --output demo-output --airflow-home .airflow

## Lint, then the whole test suite against real S3 (moto server), Airflow, GX and TensorFlow.
test: install lint
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .

## Ratios of the pipeline's throughput against baselines measured in the same run.
bench: install
	$(BIN)/python -m bench

clean:
	rm -rf .airflow demo-output .pytest_cache .ruff_cache
