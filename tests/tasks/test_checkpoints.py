"""Crash and resume: a trainer killed after some epochs continues from its S3 checkpoint when
retried, trains no epoch twice, and removes its checkpoints when the attempt finishes."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

from tasks.storage import S3Uri, get_json, iter_objects
from tasks.train import TrainRequest, parse_request, run_training

EPOCHS = 6
S3_ENVIRONMENT = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")


def kill_after_epoch_two(lines, kill) -> None:
    for line in lines:
        if f"epoch 2/{EPOCHS}" in line:
            kill()
            return
    raise AssertionError("the trainer ended before finishing epoch 2")


def assert_resumed_without_repeating(s3, output_uri: str) -> None:
    result = get_json(s3, S3Uri.parse(f"{output_uri}/train_result.json"))
    assert 2 <= result["resumed_after_epoch"] < EPOCHS
    assert result["epochs_trained"] == EPOCHS
    history = get_json(s3, S3Uri.parse(f"{output_uri}/history.json"))
    assert history["epochs"] == list(range(1, EPOCHS + 1))
    assert len(history["metrics"]["loss"]) == EPOCHS
    assert not list(iter_objects(s3, S3Uri.parse(f"{output_uri}/checkpoints/")))


def test_killed_cli_trainer_resumes_on_retry(s3, s3_endpoint, dataset):
    request = TrainRequest(dataset.dataset_uri, f"{dataset.dataset_uri}-crash-cli/attempt-1", epochs=EPOCHS)
    trainer = subprocess.Popen(
        [sys.executable, "-m", "tasks.train", *request.to_cli_args()],
        env={**os.environ, "AWS_ENDPOINT_URL": s3_endpoint},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        kill_after_epoch_two(trainer.stderr, trainer.kill)
    finally:
        trainer.kill()
        trainer.wait(timeout=60)
    assert trainer.returncode != 0
    run_training(s3, parse_request(request.to_cli_args()))
    assert_resumed_without_repeating(s3, request.output_uri)


def test_killed_trainer_container_resumes_when_the_task_is_retried(s3, dataset, trainer_image, docker_client):
    from trainer_operator import TrainerOperator

    request = TrainRequest(
        dataset.dataset_uri, f"{dataset.dataset_uri}-crash-docker/attempt-1", epochs=EPOCHS
    )
    container = docker_client.containers.run(
        trainer_image,
        request.to_cli_args(),
        detach=True,
        network_mode="host",
        environment={name: os.environ[name] for name in S3_ENVIRONMENT},
    )
    try:
        lines = (chunk.decode() for chunk in container.logs(stream=True, follow=True))
        kill_after_epoch_two(lines, container.kill)
        assert container.wait(timeout=60)["StatusCode"] != 0
    finally:
        container.remove(force=True)
    retry = TrainerOperator(
        task_id="train",
        train_request=request.__dict__,
        backend="docker",
        gpus="0",
        image=trainer_image,
        network_mode="host",
        docker_url="unix://var/run/docker.sock",
    )
    retry.execute({"ti": SimpleNamespace(run_id="crash", task_id="attempt_1.train", try_number=2)})
    assert_resumed_without_repeating(s3, request.output_uri)
