"""
### Score incoming images with the production model

An example consumer of the model registry. Scheduled on the `nightly_retrain_production_model`
Asset (each deployment by `image_classifier_retrain`), and triggerable by hand: it loads the
production model (only a complete version), classifies every image under `incoming/`, and
writes `predictions/<run_id>.csv` (key, class, probability, model version) to the bucket.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from retrain_airflow import failing_fast, production_asset, run_config, s3_client
from tasks.config import PipelineConfig, run_partition

AWS_CONN_ID = os.environ.get("RETRAIN_AWS_CONN_ID", "aws_default")
DEFAULTS = PipelineConfig()


@task(retries=2, retry_delay=timedelta(seconds=30), retry_exponential_backoff=True)
def score() -> dict[str, Any]:
    """Predicts every image under incoming_prefix and writes one CSV of predictions."""
    from dataclasses import asdict

    from tasks.registry import Registry
    from tasks.score import score_prefix
    from tasks.storage import S3Uri

    context = get_current_context()
    config = run_config(context)
    client = s3_client(AWS_CONN_ID)
    with failing_fast():
        result = score_prefix(
            client,
            Registry(client, config.bucket, config.model_name, config.models_prefix),
            S3Uri(config.bucket, context["params"]["incoming_prefix"]),
            S3Uri(config.bucket, f"predictions/{run_partition(context['run_id'])}.csv"),
        )
    return asdict(result)


@dag(
    dag_id="score_incoming",
    schedule=[production_asset()],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    params={
        "bucket": Param(DEFAULTS.bucket, type="string", description="Bucket with models/ and incoming/"),
        "model_name": Param(DEFAULTS.model_name, type="string"),
        "incoming_prefix": Param("incoming/", type="string", description="Images to score"),
    },
    default_args={"owner": "ml-platform", "retries": 1},
    tags=["ml", "inference"],
)
def score_incoming() -> None:
    score()


score_incoming()
