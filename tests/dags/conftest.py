"""Fixtures for DAG tests: a migrated SQLite metadata database and the parsed DagBag."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


@pytest.fixture(scope="session")
def retrain_dag(dagbag):
    return dagbag.get_dag("image_classifier_retrain")


@pytest.fixture(scope="session")
def pristine_params(retrain_dag) -> dict:
    """The Params' defaults as parsed. dag.test() runs tasks in this process and writes each
    run's conf into the shared DAG object's params, so every run passes a complete conf."""
    import copy

    return copy.deepcopy(retrain_dag.params.dump())


@pytest.fixture
def run_retrain(retrain_dag, pristine_params):
    """Runs the DAG with `conf` over the defaults, then puts the parsed defaults back, so no
    other test (test_dag_integrity's included) sees one run's conf, whatever the order."""

    def run(**conf):
        try:
            dag_run = retrain_dag.test(run_conf={**pristine_params, **conf})
        finally:
            for name, value in pristine_params.items():
                retrain_dag.params[name] = value
        states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
        return dag_run, states

    return run
