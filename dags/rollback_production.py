"""
### Roll production back to an earlier model version

Triggered by hand with the version to serve: moves `models/<model_name>/production.json` to
that complete version (a conditional write, as every pointer move) and emits an event on the
`nightly_retrain_production_model` Asset, so consumers scheduled on it (such as
`score_incoming`) pick up the rollback as they pick up a deployment. `retrain models rollback`
moves the pointer the same way but, running outside Airflow, emits no Asset event.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from retrain_airflow import pipeline_step, production_asset, retrain_params
from retrain_alerts import FailureAlert
from tasks.records import RecordJson

PRODUCTION_MODEL = production_asset()
PARAMS = {name: param for name, param in retrain_params().items() if name in ("bucket", "model_name")} | {
    "version": Param(1, type="integer", minimum=1, description="The complete version to serve")
}


@task(outlets=[PRODUCTION_MODEL], retries=2)
def rollback() -> RecordJson:
    """Points production at the chosen version and tells the Asset's consumers."""
    from tasks.registry import Registry

    with pipeline_step(known_params=PARAMS) as step:
        registry = Registry(step.client, step.config.bucket, step.config.model_name)
        pointer = registry.rollback(int(step.context["params"]["version"]))
    step.context["outlet_events"][PRODUCTION_MODEL].extra = {
        "version": pointer.version,
        "version_uri": pointer.version_uri,
        "accuracy": pointer.metrics["accuracy"],
        "bucket": step.config.bucket,
        "rollback": True,
    }
    return pointer.to_json()


@dag(
    dag_id="rollback_production",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    params=PARAMS,
    default_args={"owner": "ml-platform"},
    on_failure_callback=FailureAlert(),
    # Only ever triggered by hand: unpaused, so a trigger from the UI runs at once.
    is_paused_upon_creation=False,
    tags=["ml", "registry"],
)
def rollback_production() -> None:
    rollback()


rollback_production()
