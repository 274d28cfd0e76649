"""Runs of the retrain DAG through dag.test() that leave its parsed Params as they were."""

from __future__ import annotations


def run_with_defaults_restored(retrain_dag, pristine_params: dict, **conf):
    """Runs the DAG with `conf` over the defaults, then puts the parsed defaults back, so no
    other test (test_dag_integrity's included) sees one run's conf, whatever the order.
    Returns the run and its task states."""
    try:
        dag_run = retrain_dag.test(run_conf={**pristine_params, **conf})
    finally:
        for name, value in pristine_params.items():
            retrain_dag.params[name] = value
    return dag_run, {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
