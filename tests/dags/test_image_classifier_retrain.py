"""The whole DAG through `dag.test()` against the moto server, on real digits."""

from __future__ import annotations

import os
import uuid

import pytest

from tasks.config import PipelineConfig
from tasks.deploy import MARKER, pointer_uri
from tasks.storage import S3Uri, exists, get_bytes, get_json, put_json

pytestmark = pytest.mark.slow

FAST = {"image_size": 32, "epochs": 3, "batch_size": 32, "min_images": 100}


def run(dag, **conf):
    dag_run = dag.test(run_conf=conf)
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    return dag_run.state, states


def test_nightly_run_deploys_a_complete_version(retrain_dag, s3, digits_bucket):
    model_name = f"e2e-{uuid.uuid4().hex[:6]}"
    state, states = run(retrain_dag, bucket=digits_bucket, model_name=model_name,
                        min_test_accuracy=0.5, max_attempts=2, **FAST)
    assert state == "success", states
    assert states["deploy"] == "success"
    assert states["attempt_1.accept"] == "success"
    assert states["attempt_2.plan"] == states["attempt_2.train"] == "skipped"
    config = PipelineConfig(bucket=digits_bucket, model_name=model_name)
    pointer = get_json(s3, pointer_uri(config))
    assert pointer["version"] == 1
    assert pointer["metrics"]["accuracy"] >= 0.5
    for name in ("model.keras", "evaluation.json", "history.json", MARKER):
        assert exists(s3, S3Uri.parse(pointer["version_uri"]).join(name)), name


def test_unreachable_threshold_retrains_gives_up_and_keeps_production(retrain_dag, s3, digits_bucket):
    model_name = f"e2e-{uuid.uuid4().hex[:6]}"
    config = PipelineConfig(bucket=digits_bucket, model_name=model_name)
    put_json(s3, pointer_uri(config), {"version": 7, "note": "the production model before this run"})
    before = get_bytes(s3, pointer_uri(config))
    state, states = run(retrain_dag, bucket=digits_bucket, model_name=model_name,
                        min_test_accuracy=1.0, max_attempts=2, **{**FAST, "epochs": 1})
    assert state == "failed"
    assert states["attempt_1.train"] == states["attempt_2.train"] == "success"
    assert states["attempt_2.give_up"] == "failed"
    assert states["deploy"] == "skipped"
    assert states["attempt_3.train"] == "skipped"
    assert get_bytes(s3, pointer_uri(config)) == before


def test_empty_raw_prefix_fails_at_collection_and_nothing_runs_after(retrain_dag, bucket, capfd):
    state, states = run(retrain_dag, bucket=bucket, **FAST)
    assert state == "failed"
    assert states["collect"] == "failed"
    assert states["validate"] == "upstream_failed"
    logged = "".join(capfd.readouterr())
    assert f"AirflowFailException: s3://{bucket}/raw/: no objects to train on" in logged


def test_docker_backend_deploys_and_no_secret_leaks(retrain_dag, s3, digits_bucket, trainer_image, capfd):
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    model_name = f"e2e-docker-{uuid.uuid4().hex[:6]}"
    dag_run = retrain_dag.test(run_conf={
        "bucket": digits_bucket, "model_name": model_name, "min_test_accuracy": 0.5, "max_attempts": 1,
        "trainer_backend": "docker", "trainer_image": trainer_image, "gpus": "0", **FAST,
    })
    logged = "".join(capfd.readouterr())
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert dag_run.state == "success", states
    assert "trainer container retrain-" in logged
    config = PipelineConfig(bucket=digits_bucket, model_name=model_name)
    assert get_json(s3, pointer_uri(config))["version"] == 1

    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    with create_session() as session:
        rendered = session.query(RenderedTaskInstanceFields).filter_by(run_id=dag_run.run_id).all()
        xcoms = session.query(XComModel).filter_by(run_id=dag_run.run_id).all()
        stored = repr([r.rendered_fields for r in rendered]) + repr([x.value for x in xcoms])
    assert any(r.task_id == "attempt_1.train" for r in rendered)
    assert secret not in logged
    assert secret not in stored
