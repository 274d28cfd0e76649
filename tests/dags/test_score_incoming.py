"""The example consumer DAG through dag.test(): scores incoming/ with the production model."""

from __future__ import annotations

import csv
import io

from images_factory import digit_like, encode
from steps import judge_and_publish

from tasks.config import PipelineConfig
from tasks.storage import S3Uri, get_bytes, iter_objects, put_bytes


def test_consumer_scores_incoming_images(dagbag, s3, bucket, candidate):
    judge_and_publish(s3, PipelineConfig(bucket=bucket), candidate, "run-1")
    for index in range(5):
        put_bytes(s3, S3Uri(bucket, f"incoming/new-{index}.png"), encode(digit_like(index)))
    consumer = dagbag.get_dag("score_incoming")
    dag_run = consumer.test(
        run_conf={"bucket": bucket, "model_name": "digits-cnn", "incoming_prefix": "incoming/"}
    )
    assert dag_run.state == "success"
    (predictions_key,) = [item["Key"] for item in iter_objects(s3, S3Uri(bucket, "predictions/"))]
    rows = list(csv.DictReader(io.StringIO(get_bytes(s3, S3Uri(bucket, predictions_key)).decode())))
    assert [row["key"] for row in rows] == [f"incoming/new-{index}.png" for index in range(5)]
    assert {row["model_version"] for row in rows} == {"1"}


def test_consumer_is_scheduled_on_the_production_asset(dagbag):
    from retrain_airflow import production_asset

    producer = dagbag.get_dag("image_classifier_retrain").get_task("deploy")
    assert production_asset() in producer.outlets
    assert list(dagbag.get_dag("score_incoming").timetable.asset_condition.objects) == [production_asset()]
