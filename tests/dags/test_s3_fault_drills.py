"""Drills with a flaky S3: the whole DAG through `dag.test()` with a fault-injecting proxy
(tests/fault_proxy.py) between the pipeline and the S3 server. The test itself reads and
writes the server directly, as a consumer would. The endpoint-gone night and the flaky night
after it run once (`endpoint_drills`): the flaky night is also the later run that succeeds."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from fault_proxy import FaultProxy, Faults
from nights import Night
from reliability import record
from steps import collect_and_build

from tasks.config import PipelineConfig
from tasks.demo.data import DIGIT_CLASS_NAMES, DIGIT_PARAMS, upload_digits
from tasks.layout import run_layout
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


@pytest.fixture(scope="module")
def proxy(s3_endpoint):
    """The proxy in front of the S3 server; the DAG's connection points at the proxy."""
    with FaultProxy(urlsplit(s3_endpoint).port, seed=13) as running, pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_AWS_DEFAULT", running.airflow_connection())
        yield running


def dataset_of(client, bucket: str, run_id: str) -> dict:
    layout = run_layout(PipelineConfig(bucket=bucket), run_id)
    return get_json(client, S3Uri.parse(get_json(client, layout.dataset_ref)["dataset_uri"]))


@dataclass(frozen=True)
class EndpointDrills:
    gone: Night  # the endpoint refused every connection for the whole run
    flaky: Night  # the next run: the endpoint back, but slow and dropping connections
    flaky_counts: dict[str, int]  # what the proxy did to the flaky night's requests


@pytest.fixture(scope="module")
def endpoint_drills(run_night, retrain_dag, twin_buckets, proxy) -> EndpointDrills:
    _, flaky_bucket = twin_buckets
    with pytest.MonkeyPatch.context() as patch:
        # Airflow retries the first task (and the night report, which finds the endpoint gone
        # too) after 30 s, then longer: the drill keeps one quick retry each.
        for task_id in ("plan_partitions", "night_report"):
            task = retrain_dag.get_task(task_id)
            patch.setattr(task, "retries", 1)
            patch.setattr(task, "retry_delay", timedelta(seconds=1))
            patch.setattr(task, "retry_exponential_backoff", False)
        proxy.stop_listening()
        gone = run_night(bucket=flaky_bucket, model_name="drill-gone", **CONF)
    proxy.start_listening()
    proxy.set_faults(Faults(delay_fraction=0.1, delay_seconds=0.5, reset_fraction=0.05))
    flaky = run_night(bucket=flaky_bucket, model_name="drill-gone", **CONF)
    counts = dict(proxy.counts)
    proxy.set_faults(Faults())
    return EndpointDrills(gone, flaky, counts)


def test_slow_and_dropped_requests_give_the_same_dataset_and_a_green_run(s3, twin_buckets, endpoint_drills):
    clean_bucket, flaky_bucket = twin_buckets
    config = PipelineConfig(bucket=clean_bucket, image_size=32, class_names=DIGIT_CLASS_NAMES)
    clean = collect_and_build(s3, config, f"clean-{uuid.uuid4().hex[:6]}")

    night, counts = endpoint_drills.flaky, endpoint_drills.flaky_counts
    assert night.state == "success", night.states
    assert dataset_of(s3, flaky_bucket, night.run_id)["fingerprint"] == clean.fingerprint
    assert counts["reset"] >= 5 and counts["delay"] >= 10, counts
    assert night.log.count(": retry 1 of ") >= counts["reset"] // 2, (
        "botocore's retries do not show in the log"
    )
    assert json.loads(night.pointer or b"null")["version"] == 1
    record(
        "flaky-endpoint",
        f"{counts['requests']} requests: {counts['delay']} delayed 0.5 s (10%), {counts['reset']} reset (5%)",
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
    run_night, s3, twin_buckets, proxy
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
        night = run_night(bucket=flaky_bucket, model_name=model_name, force_retrain=True, **CONF)
    finally:
        watch.stop.set()
        watch.join()
        counts = dict(proxy.counts)
        proxy.set_faults(Faults())
    assert night.state == "success", night.states
    assert counts["slowdown"] >= 3, counts
    assert "retry 1 of" in night.log
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
    s3, twin_buckets, proxy, endpoint_drills
):
    _, flaky_bucket = twin_buckets
    gone = endpoint_drills.gone
    assert gone.state == "failed"
    assert gone.states["plan_partitions"] == "failed" and gone.states["deploy"] != "success"
    expected = (
        f"s3://{flaky_bucket}: S3 endpoint unreachable (Could not connect to the endpoint URL: "
        f'"{proxy.endpoint_url}/{flaky_bucket}"); check endpoint_url'
    )
    assert expected in gone.log
    assert gone.pointer is None  # nothing published

    later = endpoint_drills.flaky  # the next run of the same model, once the endpoint is back
    assert later.state == "success", later.states
    assert json.loads(later.pointer or b"null")["version"] == 1
    record(
        "endpoint-gone",
        "S3 endpoint refusing connections for a whole run (2 tries of the first task)",
        2,
        "first run failed at plan_partitions in one line naming the endpoint; "
        "nothing published; the next run deployed version 1",
    )
