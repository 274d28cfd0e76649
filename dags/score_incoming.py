"""
### Score incoming images with the production model

An example consumer of the model registry. Scheduled on the `nightly_retrain_production_model`
Asset (each deployment by `image_classifier_retrain`), and triggerable by hand: it loads the
production model (only a complete version), classifies every image under `incoming/`, and
writes `predictions/<run_id>.csv` (key, class, probability, model version) to the bucket.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from retrain_airflow import pipeline_step, production_asset, retrain_params
from retrain_alerts import FailureAlert
from tasks.records import RecordJson

PARAMS = {name: param for name, param in retrain_params().items() if name in ("bucket", "model_name")} | {
    "incoming_prefix": Param("incoming/", type="string", description="Prefix of the images to score")
}


@task(retries=2, retry_delay=timedelta(seconds=30), retry_exponential_backoff=True)
def score() -> RecordJson:
    """Predicts every image under incoming_prefix and writes one CSV of predictions."""
    from tasks.layout import predictions
    from tasks.registry import Registry
    from tasks.score import score_prefix
    from tasks.storage import S3Uri

    with pipeline_step(known_params=PARAMS) as step:
        bucket = step.config.bucket
        result = score_prefix(
            step.client,
            Registry(step.client, bucket, step.config.model_name),
            S3Uri(bucket, step.context["params"]["incoming_prefix"]),
            predictions(bucket, step.run_id),
        )
    return asdict(result)


@dag(
    dag_id="score_incoming",
    schedule=[production_asset()],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    params=PARAMS,
    default_args={"owner": "ml-platform", "retries": 1},
    on_failure_callback=FailureAlert(),
    # It only runs on a deployment's Asset event (or by hand): unpaused from the start, so the
    # first deployment is scored without anyone unpausing it.
    is_paused_upon_creation=False,
    tags=["ml", "inference"],
)
def score_incoming() -> None:
    score()


score_incoming()
