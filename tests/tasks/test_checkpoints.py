"""Crash and resume: a trainer killed after some epochs continues from its S3 checkpoint when
retried, trains no epoch twice, and removes its checkpoints when the attempt finishes."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from tasks.checkpoints import ResumableAttempt
from tasks.layout import AttemptLayout
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


@pytest.mark.slow
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


@pytest.mark.slow
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


def ledger_attempt(s3, bucket, scratch, name: str, **settings) -> ResumableAttempt:
    """An attempt of run `name`, with its local files under `scratch` (one per try)."""
    return ResumableAttempt(s3, AttemptLayout.at(f"s3://{bucket}/runs/{name}/attempt-1"), scratch, **settings)


def weights_of(model) -> float:
    return float(model.get_layer("dense").get_weights()[1][0])


def test_best_epoch_weights_are_kept_and_survive_a_resume(s3, bucket, tmp_path):
    from tasks.model import build_reference_cnn

    model = build_reference_cnn(image_size=24, class_count=3)
    attempt = ledger_attempt(s3, bucket, tmp_path / "try-1", "keep", keep_epoch_by="val_accuracy")
    attempt.backup_dir.mkdir(parents=True)
    for epoch, val_accuracy in enumerate([0.5, 0.8, 0.7]):
        bias = model.get_layer("dense").get_weights()
        bias[1][:] = epoch  # each epoch's weights are recognisable by the dense bias
        model.get_layer("dense").set_weights(bias)
        attempt.record_epoch(
            epoch, {"loss": 1.0, "val_accuracy": val_accuracy, "val_loss": 1 - val_accuracy}, model
        )
    assert attempt.kept_epoch() == 2
    # Only the kept epoch's weights stay in S3.
    stored = [
        item["Key"] for item in iter_objects(s3, S3Uri(bucket, "runs/keep/attempt-1/checkpoints/best/"))
    ]
    assert [key.rsplit("/", 1)[-1] for key in stored] == ["epoch-2.weights.h5"]

    resumed = ledger_attempt(s3, bucket, tmp_path / "try-2", "keep", keep_epoch_by="val_accuracy")
    assert resumed.restore() == 3
    resumed.keep_best(model)
    assert weights_of(model) == 1.0  # epoch 2's weights, not the last epoch's
    assert resumed.history().kept_epoch == 2 and resumed.history().kept_by == "val_accuracy"


def test_kept_epoch_and_patience_follow_the_ledger(s3, bucket, tmp_path):
    ledger = [
        {"epoch": n + 1, "val_accuracy": accuracy, "val_loss": loss}
        for n, (accuracy, loss) in enumerate([(0.6, 0.9), (0.7, 0.5), (0.7, 0.6), (0.65, 0.4)])
    ]
    by_accuracy = ledger_attempt(s3, bucket, tmp_path / "a", "a", keep_epoch_by="val_accuracy", patience=2)
    by_accuracy.epochs = ledger
    assert by_accuracy.kept_epoch() == 2  # a tie is not better: the earlier epoch stays
    assert by_accuracy.patience_ran_out()
    by_loss = ledger_attempt(s3, bucket, tmp_path / "l", "l", keep_epoch_by="val_loss", patience=2)
    by_loss.epochs = ledger
    assert by_loss.kept_epoch() == 4 and not by_loss.patience_ran_out()
    last = ledger_attempt(s3, bucket, tmp_path / "z", "z", keep_epoch_by="last")
    last.epochs = ledger
    assert last.kept_epoch() == 4
