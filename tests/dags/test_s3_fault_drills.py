"""Drills with a flaky S3: the whole DAG through `dag.test()` with a fault-injecting proxy
(tests/fault_proxy.py) between the pipeline and the S3 server. The test itself reads and
writes the server directly, as a consumer would."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from fault_proxy import FaultProxy, Faults
from reliability import record
from steps import collect_and_build

from tasks.config import PipelineConfig
from tasks.demo.data import DIGIT_CLASS_NAMES, DIGIT_PARAMS, upload_digits
from tasks.layout import model_layout, run_layout
from tasks.registry import Registry
from tasks.storage import S3Uri, create_bucket, exists, get_json

pytestmark = pytest.mark.slow

CONF = {
    "image_size": 32,
    "epochs": 1,
    "min_images": 100,
    "min_test_accuracy": 0.0,
    "max_attempts": 1,
    **DIGIT_PARAMS,
}


@pytest.fixture(scope="module")
def twin_buckets(s3_endpoint) -> tuple[str, str]:
    """Two buckets holding the same 200 digits: one for a clean reference, one for the drills."""
    from tasks.storage import make_client

    client = make_client(s3_endpoint)
    names = (f"drill-clean-{uuid.uuid4().hex[:6]}", f"drill-flaky-{uuid.uuid4().hex[:6]}")
    for name in names:
        create_bucket(client, name)
        upload_digits(client, name, "raw/", image_size=32, limit=200)
    return names


@pytest.fixture
def proxy(s3_endpoint, monkeypatch):
    """The proxy in front of the S3 server; the DAG's connection points at the proxy."""
    with FaultProxy(urlsplit(s3_endpoint).port, seed=13) as running:
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", running.airflow_connection())
        yield running


def dataset_of(client, bucket: str, run_id: str) -> dict:
    layout = run_layout(PipelineConfig(bucket=bucket), run_id)
    return get_json(client, S3Uri.parse(get_json(client, layout.dataset_ref)["dataset_uri"]))


def test_slow_and_dropped_requests_give_the_same_dataset_and_a_green_run(
    run_retrain, s3, twin_buckets, proxy, capfd, caplog
):
    clean_bucket, flaky_bucket = twin_buckets
    config = PipelineConfig(bucket=clean_bucket, image_size=32, class_names=DIGIT_CLASS_NAMES)
    clean = collect_and_build(s3, config, f"clean-{uuid.uuid4().hex[:6]}")

    proxy.set_faults(Faults(delay_fraction=0.2, delay_seconds=1.0, reset_fraction=0.05))
    dag_run, states = run_retrain(bucket=flaky_bucket, model_name="drill-flaky", **CONF)
    logged = "".join(capfd.readouterr()) + caplog.text
    counts = dict(proxy.counts)
    assert dag_run.state == "success", states
    assert dataset_of(s3, flaky_bucket, dag_run.run_id)["fingerprint"] == clean.fingerprint
    assert counts["reset"] >= 5 and counts["delay"] >= 20, counts
    assert logged.count(": retry 1 of ") >= counts["reset"] // 2, "botocore's retries do not show in the log"
    assert get_json(s3, model_layout(PipelineConfig(bucket=flaky_bucket, model_name="drill-flaky")).pointer)
    record(
        "flaky-endpoint",
        f"{counts['requests']} requests: {counts['delay']} delayed 1 s (20%), {counts['reset']} reset (5%)",
        1,
        "green; same dataset fingerprint as a clean run; retries in the log",
    )


class ConsumerWatch(threading.Thread):
    """Reads the registry as a consumer would, straight from S3, until stopped; records every
    moment the pointer named a version without `_COMPLETE`."""

    def __init__(self, registry: Registry) -> None:
        super().__init__(daemon=True)
        self.registry = registry
        self.stop = threading.Event()
        self.reads = 0
        self.violations: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            pointer = self.registry.pointer()
            if pointer is not None and not exists(
                self.registry.client, S3Uri.parse(pointer.version_uri).join("_COMPLETE")
            ):
                self.violations.append(f"pointer names incomplete version {pointer.version}")
            self.reads += 1
            self.stop.wait(0.02)


def test_a_burst_of_slowdown_on_deploy_puts_is_retried_and_consumers_see_only_complete_versions(
    run_retrain, s3, twin_buckets, proxy, capfd, caplog
):
    _, flaky_bucket = twin_buckets
    model_name = "drill-slowdown"
    watch = ConsumerWatch(Registry(s3, flaky_bucket, model_name))
    watch.start()
    # Every write of the deploy, and only those, meets SlowDown three times in ten.
    proxy.set_faults(
        Faults(slowdown_fraction=0.3, methods=frozenset({"PUT", "POST"}), path=f"/{model_name}/")
    )
    try:
        dag_run, states = run_retrain(bucket=flaky_bucket, model_name=model_name, force_retrain=True, **CONF)
    finally:
        watch.stop.set()
        watch.join()
    logged = "".join(capfd.readouterr()) + caplog.text
    counts = dict(proxy.counts)
    assert dag_run.state == "success", states
    assert counts["slowdown"] >= 3, counts
    assert "retry 1 of" in logged
    assert watch.reads > 10 and watch.violations == []
    versions = Registry(s3, flaky_bucket, model_name).versions()
    assert [(v.version, v.complete, v.in_production) for v in versions] == [(1, True, True)]
    record(
        "slowdown-on-deploy",
        f"503 SlowDown on {counts['slowdown']} of {counts['matched']} deploy requests (30%)",
        1,
        f"green; deploy retried; consumer read the pointer {watch.reads} times, never an incomplete version",
    )


def test_an_endpoint_gone_for_longer_than_the_retries_fails_in_one_line_and_a_later_run_succeeds(
    run_retrain, retrain_dag, s3, twin_buckets, proxy, capfd, caplog, monkeypatch
):
    _, flaky_bucket = twin_buckets
    model_name = "drill-gone"
    # Airflow retries the first task (and the night report, which finds the endpoint gone
    # too) after 30 s, then longer: the drill keeps one quick retry each.
    for task_id in ("plan_partitions", "night_report"):
        task = retrain_dag.get_task(task_id)
        monkeypatch.setattr(task, "retries", 1)
        monkeypatch.setattr(task, "retry_delay", timedelta(seconds=1))
        monkeypatch.setattr(task, "retry_exponential_backoff", False)
    proxy.stop_listening()
    failed, states = run_retrain(bucket=flaky_bucket, model_name=model_name, **CONF)
    logged = "".join(capfd.readouterr()) + caplog.text
    assert failed.state == "failed"
    assert states["plan_partitions"] == "failed" and states["deploy"] != "success"
    expected = (
        f"s3://{flaky_bucket}: S3 endpoint unreachable (Could not connect to the endpoint URL: "
        f'"{proxy.endpoint_url}/{flaky_bucket}"); check endpoint_url'
    )
    assert expected in logged
    pointer_uri = model_layout(PipelineConfig(bucket=flaky_bucket, model_name=model_name)).pointer
    assert not exists(s3, pointer_uri)

    proxy.start_listening()
    later, states = run_retrain(bucket=flaky_bucket, model_name=model_name, **CONF)
    assert later.state == "success", states
    assert get_json(s3, pointer_uri)["version"] == 1
    record(
        "endpoint-gone",
        "S3 endpoint refusing connections for a whole run (2 tries of the first task)",
        2,
        "first run failed at plan_partitions in one line naming the endpoint; "
        "nothing published; the next run deployed version 1",
    )
