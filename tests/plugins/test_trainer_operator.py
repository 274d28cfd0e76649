"""TrainerOperator against a real Docker engine and the moto server."""

from __future__ import annotations

import os
import re
import uuid
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from tasks.storage import S3Uri, iter_objects
from tasks.train import TrainRequest, TrainResult
from trainer_operator import TrainerOperator, container_name, gpu_device_requests


def operator(
    request: TrainRequest, backend: str, image: str = "nightly-retrain-trainer:latest", gpus: str = "0"
) -> TrainerOperator:
    return TrainerOperator(
        task_id=f"train-{uuid.uuid4().hex[:6]}",
        train_request=request.__dict__,
        backend=backend,
        gpus=gpus,
        image=image,
        aws_conn_id="aws_default",
        network_mode="host",
        docker_url="unix://var/run/docker.sock",
    )


def context(task_id: str = "attempt_1.train") -> dict:
    run_id = f"manual__{uuid.uuid4().hex[:8]}"
    return {"ti": SimpleNamespace(run_id=run_id, task_id=task_id, try_number=1)}


def relative_keys(s3, output_uri: str) -> set[str]:
    """Keys under the attempt; TensorBoard names event files by time, host and pid."""
    prefix = S3Uri.parse(output_uri)
    keys = {item["Key"][len(prefix.key) + 1 :] for item in iter_objects(s3, prefix)}
    return {re.sub(r"events\.out\.tfevents\..*", "events.out.tfevents.*", key) for key in keys}


def leftover_containers(docker_client) -> list[str]:
    return [c.name for c in docker_client.containers.list(all=True) if c.name.startswith("retrain-")]


def test_gpu_setting_maps_to_device_requests():
    assert gpu_device_requests("0") is None
    (every,) = gpu_device_requests("all")
    assert every["Count"] == -1 and every["Capabilities"] == [["gpu"]]
    assert gpu_device_requests("2")[0]["Count"] == 2
    with pytest.raises(AirflowFailException, match="gpus='many'"):
        gpu_device_requests("many")


def test_container_names_are_unique_per_try_and_valid():
    name = container_name("manual__2026-11-28T12:00:00+00:00", "attempt_2.train", 3)
    assert name == "retrain-manual__2026-11-28T12-00-00-00-00-attempt_2.train-try3"


def test_docker_and_local_backends_write_the_same_layout(s3, dataset, trainer_image, docker_client):
    base = f"s3://{S3Uri.parse(dataset.dataset_uri).bucket}/runs/same-layout"
    results = {}
    for backend in ("docker", "local"):
        request = TrainRequest(dataset.dataset_uri, f"{base}/{backend}/attempt-1", epochs=1)
        results[backend] = operator(request, backend, trainer_image).execute(context())
    assert relative_keys(s3, f"{base}/docker/attempt-1") == relative_keys(s3, f"{base}/local/attempt-1")
    assert relative_keys(s3, f"{base}/docker/attempt-1") == {
        "model.keras",
        "history.json",
        "train_result.json",
        "tensorboard/train/events.out.tfevents.*",
        "tensorboard/validation/events.out.tfevents.*",
    }
    docker, local = (TrainResult.from_json(results[backend]) for backend in ("docker", "local"))
    assert docker.model_uri.endswith("/docker/attempt-1/model.keras")
    assert docker.epochs_trained == local.epochs_trained == 1
    assert not leftover_containers(docker_client)


def test_gpu_request_on_an_engine_without_gpus_fails_clearly_and_cleans_up(
    dataset, trainer_image, docker_client
):
    if "nvidia" in docker_client.info().get("Runtimes", {}):
        pytest.skip("this engine has the NVIDIA runtime: a GPU request would be granted")
    request = TrainRequest(dataset.dataset_uri, f"{dataset.dataset_uri}-gpu/attempt-1", epochs=1)
    with pytest.raises(AirflowFailException, match="gpus=all requested, but the Docker engine") as raised:
        operator(request, "docker", trainer_image, gpus="all").execute(context())
    assert "NVIDIA Container Toolkit" in str(raised.value)
    assert not leftover_containers(docker_client)


def test_a_failing_container_is_reported_in_one_line(bucket, trainer_image, docker_client):
    request = TrainRequest(f"s3://{bucket}/runs/none/dataset/dataset.json", f"s3://{bucket}/out", epochs=1)
    expected = r"trainer container retrain-.* failed .*last line: .*dataset\.json"
    with pytest.raises(RuntimeError, match=expected):
        operator(request, "docker", trainer_image).execute(context())
    assert not leftover_containers(docker_client)


def test_a_missing_image_names_the_fix(dataset, docker_client):
    request = TrainRequest(dataset.dataset_uri, f"{dataset.dataset_uri}-x/attempt-1", epochs=1)
    with pytest.raises(AirflowFailException, match="make trainer-image"):
        operator(request, "docker", "nightly-retrain-no-such-image:0").execute(context())


def test_credentials_travel_only_in_private_environment(dataset, trainer_image):
    request = TrainRequest(dataset.dataset_uri, f"{dataset.dataset_uri}-env/attempt-1", epochs=1)
    task = operator(request, "docker", trainer_image)
    task.execute(context())
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    assert task._private_environment["AWS_SECRET_ACCESS_KEY"] == secret
    assert secret not in repr(task.environment)
    assert task.environment["AWS_ENDPOINT_URL"] == os.environ["AWS_ENDPOINT_URL"]
