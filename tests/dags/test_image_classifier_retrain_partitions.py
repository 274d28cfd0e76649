"""The mapped data plane through `dag.test()`: the same manifest, splits and dataset at one
and at four partitions, each partition a mapped instance named in the grid, and a failed
partition retried alone."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pandas as pd
import pytest

from tasks.collect import read_manifest
from tasks.config import PipelineConfig
from tasks.demo.data import upload_digits
from tasks.layout import dataset_layout, run_layout
from tasks.partitions import Partition, content_slot
from tasks.storage import S3Uri, StorageError, create_bucket, get_bytes, get_json, iter_objects

pytestmark = pytest.mark.slow

# Everything after the dataset is marked done without running: these tests are about the data.
AFTER_THE_DATASET = r"attempt_\d+\..*|nothing_to_train|deploy|cleanup|night_report"
CONF = {"image_size": 32, "min_images": 100, "epochs": 1}


@pytest.fixture(scope="module")
def twin_buckets(s3_endpoint) -> tuple[str, str]:
    """Two buckets holding the same 300 digits, so each run decodes everything itself."""
    from tasks.storage import make_client

    client = make_client(s3_endpoint)
    names = ("partitions-one", "partitions-four")
    for name in names:
        create_bucket(client, name)
        upload_digits(client, name, "raw/", image_size=32, limit=300)
    return names


def data_plane_run(retrain_dag, pristine_params, **conf):
    dag_run = retrain_dag.test(
        run_conf={**pristine_params, **CONF, **conf}, mark_success_pattern=AFTER_THE_DATASET
    )
    instances = {(ti.task_id, ti.map_index): ti for ti in dag_run.get_task_instances()}
    return dag_run, instances


def test_one_and_four_partitions_give_the_same_manifest_splits_and_dataset(
    retrain_dag, pristine_params, s3, twin_buckets, monkeypatch
):
    one, four = twin_buckets
    runs = {}
    for bucket, partitions in ((one, 1), (four, 4)):
        dag_run, instances = data_plane_run(
            retrain_dag, pristine_params, bucket=bucket, partitions=partitions
        )
        assert dag_run.state == "success", {key: ti.state for key, ti in instances.items()}
        for task_id in ("collect", "preprocess"):
            mapped = sorted(index for (name, index) in instances if name == task_id)
            assert mapped == list(range(partitions))
            labels = {instances[task_id, index].rendered_map_index for index in mapped}
            assert labels == {f"part {n + 1} of {partitions}" for n in range(partitions)}
        layout = run_layout(PipelineConfig(bucket=bucket), dag_run.run_id)
        dataset = get_json(s3, S3Uri.parse(get_json(s3, layout.dataset_ref)["dataset_uri"]))
        labelled = get_bytes(s3, dataset_layout(bucket, dataset["dataset_id"]).labels)
        # The buckets got their copies at different times: all else must be equal.
        manifest = read_manifest(s3, str(layout.manifest)).drop(columns="last_modified")
        runs[partitions] = (manifest, dataset, labelled)
    (manifest_1, dataset_1, labels_1), (manifest_4, dataset_4, labels_4) = runs[1], runs[4]
    pd.testing.assert_frame_equal(manifest_1, manifest_4)
    assert dataset_1["fingerprint"] == dataset_4["fingerprint"]
    assert dataset_1["dataset_id"] == dataset_4["dataset_id"]
    assert labels_1 == labels_4  # the split (and label) of every image
    assert dataset_1["split_counts"] == dataset_4["split_counts"]


def test_a_failed_partition_is_retried_alone(retrain_dag, pristine_params, s3, bucket, monkeypatch):
    """A transient read error in one preprocess partition fails that instance once; Airflow
    retries it and no other instance runs twice."""
    import tasks.examples

    # Airflow waits 30 s before the retry of an S3 task; the drill keeps a quick one.
    preprocess = retrain_dag.get_task("preprocess")
    monkeypatch.setattr(preprocess, "retry_delay", timedelta(seconds=1))
    monkeypatch.setattr(preprocess, "retry_exponential_backoff", False)

    upload_digits(s3, bucket, "raw/", image_size=32, limit=200)
    victim = next(item["Key"] for item in iter_objects(s3, S3Uri(bucket, "raw/three/")))
    victim_partition = content_slot(hashlib.sha256(get_bytes(s3, S3Uri(bucket, victim))).hexdigest()) % 4
    real_get_bytes, failures = tasks.examples.get_bytes, []

    def flaky_get_bytes(client, uri):
        if uri.key == victim and not failures:
            failures.append(uri.key)
            raise StorageError(f"{uri}: connection reset by peer")
        return real_get_bytes(client, uri)

    monkeypatch.setattr(tasks.examples, "get_bytes", flaky_get_bytes)
    dag_run, instances = data_plane_run(retrain_dag, pristine_params, bucket=bucket, partitions=4)
    assert dag_run.state == "success", {key: ti.state for key, ti in instances.items()}
    assert failures == [victim]
    tries = {key: ti.try_number for key, ti in instances.items() if key[0] in ("collect", "preprocess")}
    assert tries == {
        **{("collect", n): 1 for n in range(4)},
        **{("preprocess", n): 2 if n == victim_partition else 1 for n in range(4)},
    }
    assert instances["validate", -1].try_number == instances["assemble_dataset", -1].try_number == 1
    assert (
        Partition(victim_partition, 4).label == instances["preprocess", victim_partition].rendered_map_index
    )


def test_partitions_failing_together_send_one_alert(
    retrain_dag, pristine_params, s3, bucket, monkeypatch, alert_sink
):
    """Four mapped collect instances fail in the same run: the run sends one alert, naming the
    first failed instance in the DAG's order, its reason and how many others failed."""
    import tasks.collect
    from tasks.storage import PermanentStorageError

    upload_digits(s3, bucket, "raw/", image_size=32, limit=120)

    def refused(client, config, partition, run_id):
        raise PermanentStorageError(f"s3://{config.bucket}/raw/: partition {partition.number} refused")

    monkeypatch.setattr(tasks.collect, "collect_partition", refused)
    dag_run, instances = data_plane_run(retrain_dag, pristine_params, bucket=bucket, partitions=4)
    assert dag_run.state == "failed"
    assert [index for (task_id, index), ti in instances.items() if ti.state == "failed"] == [0, 1, 2, 3]
    (alert,) = alert_sink.messages
    assert (alert["task_id"], alert["map_index"]) == ("collect", 0)
    assert alert["reason"] == f"s3://{bucket}/raw/: partition 0 refused (and 3 more failed task(s))"
