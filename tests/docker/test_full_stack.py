"""The full stack, run for real: docker-compose.yaml (with docker/standin/compose.standin.yaml
swapping in registry-free images) comes up healthy with two Celery workers, and a run
triggered through the REST API with Params spreads its mapped collect and preprocess
partitions over both workers, trains in a trainer container that a worker starts through the
socket proxy, on the compose network, and publishes the model to the stack's S3."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import asdict

import pytest
from compose_helpers import compose

from tasks.demo.data import upload_digits
from tasks.demo.local_s3 import free_port
from tasks.recipe import REFERENCE_RECIPE
from tasks.registry import Registry
from tasks.storage import make_client

pytestmark = pytest.mark.slow
DAG_ID = "image_classifier_retrain"
STANDIN_IMAGES = ("nightly-retrain-airflow-base:standin", "nightly-retrain-services:standin")
# The stack's mechanics, not accuracy: the reference recipe clears 0.3 in 2 epochs on these
# 600 digits; the augmented default needs more epochs than this test can afford.
RUN_CONF = {
    **asdict(REFERENCE_RECIPE),
    "image_size": 32,
    "epochs": 2,
    "min_images": 100,
    "min_test_accuracy": 0.3,
    "max_attempts": 1,
    "partitions": 4,
}
WORKERS = 2


class Api:
    """The Airflow REST API of the stack, logged in as the admin from .env."""

    def __init__(self, base_url: str, username: str, password: str, login_timeout_s: float = 180):
        self.base_url = base_url
        self.token: str | None = None
        # A healthy API server may still refuse the admin (401) for a while after start-up,
        # until the login it checks against has the user airflow-init created.
        deadline = time.monotonic() + login_timeout_s
        while True:
            try:
                login = self.call("POST", "/auth/token", {"username": username, "password": password})
                break
            except urllib.error.HTTPError as error:
                if error.code != 401 or time.monotonic() > deadline:
                    raise
                time.sleep(5)
        self.token = login["access_token"]

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            self.base_url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                **({"Authorization": f"Bearer {self.token}"} if self.token else {}),
            },
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"{}")

    def wait_for_dag(self, dag_id: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.call("GET", f"/api/v2/dags/{dag_id}")
                return
            except urllib.error.HTTPError as error:
                if error.code != 404 or time.monotonic() > deadline:
                    raise
            time.sleep(5)


@pytest.fixture(scope="module")
def stack(docker_client, trainer_image, env_file, env_values):
    """The stack under a project name of its own, on free ports; torn down with its volumes."""
    for image in STANDIN_IMAGES:
        if not docker_client.images.list(name=image):
            pytest.fail(f"{image} is not built; run `make standin-images`")
    name = f"nightly-retrain-test-{uuid.uuid4().hex[:6]}"
    settings = {
        "COMPOSE_PROJECT_NAME": name,
        "RETRAIN_DOCKER_NETWORK": name,
        "AIRFLOW_IMAGE_NAME": "nightly-retrain-airflow:standin",
        "AIRFLOW_BASE_IMAGE": "nightly-retrain-airflow-base:standin",
        "AIRFLOW_API_PORT": str(free_port()),
        "MINIO_API_PORT": str(free_port()),
        "MINIO_CONSOLE_PORT": str(free_port()),
        # One task at a time per worker: four partitions queued at once must use both workers.
        "AIRFLOW_WORKER_CONCURRENCY": "1",
        # Unpausing a scheduled DAG starts the latest slot's run first; this test wants its own.
        "RETRAIN_SCHEDULE": "none",
    }
    files = ("-f", "docker-compose.yaml", "-f", "docker/standin/compose.standin.yaml")

    def run(*args: str, check: bool = True):
        return compose(*files, *args, env_file=env_file, env=settings, check=check)

    run("build")
    try:
        started = time.monotonic()
        up = run(
            "up",
            "--detach",
            "--wait",
            "--wait-timeout",
            "600",
            "--scale",
            f"airflow-worker={WORKERS}",
            check=False,
        )
        assert up.returncode == 0, up.stderr[-3000:] + run("logs", "--tail", "60", check=False).stdout[-8000:]
        print(f"stack healthy in {time.monotonic() - started:.0f} s")
        yield {**settings, "run": run}
    finally:
        # As `make down`: trainer containers are the worker's, not compose's.
        for trainer in docker_client.containers.list(all=True, filters={"network": name, "name": "retrain-"}):
            trainer.remove(force=True)
        run("down", "--volumes", "--remove-orphans", "--timeout", "20", check=False)


def test_a_run_triggered_with_params_trains_in_a_container_and_publishes_to_minio(stack, env_values):
    # The stand-in S3 (moto) does not check credentials; MinIO checks the stack's access key.
    s3 = make_client(f"http://127.0.0.1:{stack['MINIO_API_PORT']}")
    bucket = env_values["RETRAIN_BUCKET"]
    upload_digits(s3, bucket, "raw/", image_size=32, limit=600)
    model_name = f"stack-{uuid.uuid4().hex[:6]}"

    api = Api(
        f"http://127.0.0.1:{stack['AIRFLOW_API_PORT']}",
        env_values["AIRFLOW_ADMIN_USER"],
        env_values["AIRFLOW_ADMIN_PASSWORD"],
    )
    api.wait_for_dag(DAG_ID, timeout_s=300)
    api.call("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    run = api.call(
        "POST",
        f"/api/v2/dags/{DAG_ID}/dagRuns",
        {"logical_date": None, "conf": {**RUN_CONF, "model_name": model_name}},
    )
    run_path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}"
    started = time.monotonic()
    while (state := api.call("GET", run_path)["state"]) in ("queued", "running"):
        assert time.monotonic() - started < 1500, "the run did not finish within 25 minutes"
        time.sleep(10)
    print(f"run {state} in {time.monotonic() - started:.0f} s")
    instances = api.call("GET", f"{run_path}/taskInstances?limit=100")["task_instances"]
    tasks = {ti["task_id"]: ti["state"] for ti in instances}
    assert state == "success", (
        {task: task_state for task, task_state in tasks.items() if task_state != "success"},
        stack["run"]("logs", "--tail", "80", "airflow-worker", check=False).stdout[-6000:],
    )
    assert tasks["attempt_1.train"] == "success"
    assert tasks["deploy"] == "success"

    # Each partition ran as a mapped instance, and the workers shared them.
    mapped = [ti for ti in instances if ti["task_id"] in ("collect", "preprocess")]
    assert sorted((ti["task_id"], ti["map_index"]) for ti in mapped) == [
        (task_id, index) for task_id in ("collect", "preprocess") for index in range(RUN_CONF["partitions"])
    ]
    assert {ti["rendered_map_index"] for ti in mapped} == {f"part {n} of 4" for n in range(1, 5)}
    hostnames = {ti["hostname"] for ti in mapped}
    print("mapped instances ran on:", sorted(hostnames))
    assert len(hostnames) == WORKERS, [(ti["task_id"], ti["map_index"], ti["hostname"]) for ti in mapped]
    assert api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns")["total_entries"] == 1

    pointer = Registry(s3, bucket, model_name).pointer()
    assert pointer is not None and pointer.version == 1

    # The night report, through the API server's plugin and behind its login.
    assert tasks["night_report"] == "success"
    report_url = (
        f"{api.base_url}/retrain/runs/{DAG_ID}/{urllib.parse.quote(run['dag_run_id'], safe='')}/report"
    )
    request = urllib.request.Request(report_url, headers={"Authorization": f"Bearer {api.token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert b"Deployed version 1" in response.read()

    # The worker reached the engine only through the proxy, and the trainer container ran there.
    proxy_log = stack["run"]("logs", "--no-log-prefix", "docker-socket-proxy", check=False).stdout
    calls = re.findall(r'\s(\d{3})\s.*"([A-Z]+) (?:/v[0-9.]+)?(/[^ ?]*)', proxy_log)
    print(
        "docker API calls through the proxy:",
        sorted({(method, path, status) for status, method, path in calls}),
    )
    assert any(method == "POST" and path == "/containers/create" for _, method, path in calls), proxy_log
    assert all(status != "403" for status, _, _ in calls), "the worker needed a call the proxy refuses"
    train_log = api.call("GET", f"{run_path}/taskInstances/attempt_1.train/logs/1?full_content=true")
    assert "trainer container" in json.dumps(train_log)
    assert f"network={stack['RETRAIN_DOCKER_NETWORK']}" in json.dumps(train_log)
