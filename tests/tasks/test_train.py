"""Training through the CLI (as a container runs it) and the retrain schedule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial

import pytest
from steps import collect_and_build

from tasks.config import PipelineConfig
from tasks.records import DatasetRecord
from tasks.storage import S3Uri, exists, get_json
from tasks.train import TrainRequest, TrainResult, parse_request, plan_attempt, run_training
from tasks.warm_start import StartingPoint


@pytest.fixture(scope="module")
def dataset_128(s3_endpoint, digits_bucket):
    """A small real dataset at the default 128x128, so the reference model path is exercised."""
    from tasks.storage import make_client

    client = make_client(s3_endpoint)
    config = PipelineConfig(bucket=digits_bucket, image_size=128)
    return collect_and_build(client, config, "train-128")


def test_a_request_defaults_to_the_params_defaults():
    from dataclasses import fields

    from tasks.recipe import Recipe

    request = TrainRequest("s3://b/dataset.json", "s3://b/runs/r/attempt-1")
    shared = ["epochs", "batch_size", "learning_rate", "seed", *Recipe.names()]
    assert {field.name for field in fields(TrainRequest)} >= set(shared)
    config = PipelineConfig()
    for name in shared:
        assert getattr(request, name) == getattr(config, name), name


@pytest.mark.parametrize(
    ("options", "refusal"),
    [
        (["--epochs", "0"], "epochs: 0 is less than the minimum of 1"),
        (["--learning-rate", "1.5"], "learning_rate: 1.5 is greater than or equal to the maximum of 1"),
        (["--dropout", "0.95"], "dropout: 0.95 is greater than the maximum of 0.9"),
        (["--lr-schedule", "step"], "lr_schedule: 'step' is not one of ['constant', 'cosine']"),
    ],
)
def test_the_trainer_cli_refuses_what_the_params_refuse(options, refusal, capsys):
    with pytest.raises(SystemExit) as raised:
        parse_request(["--dataset-uri", "s3://b/d.json", "--output-uri", "s3://b/out", *options])
    assert raised.value.code == 2
    assert refusal in capsys.readouterr().err


def trained(request: TrainRequest, model_uri: str) -> TrainResult:
    """What an attempt that ran `request` reports (only what planning a retry reads matters)."""
    return TrainResult(
        model_uri=model_uri,
        history_uri=model_uri.replace("model.keras", "history.json"),
        epochs_trained=request.epochs,
        kept_epoch=request.epochs,
        final_val_accuracy=0.5,
        train_seconds=1.0,
        images_per_second=1.0,
        resumed_after_epoch=0,
        request=request.to_json(),
    )


def test_plan_attempt_changes_something_on_each_retry():
    config = PipelineConfig(epochs=5)
    plan = partial(plan_attempt, dataset_uri="s3://b/d.json")
    first, why_first = plan(config, attempt_uri="s3://b/a1", attempt=1)
    second, why_second = plan(
        config, attempt_uri="s3://b/a2", attempt=2, previous=trained(first, "s3://b/a1/model.keras")
    )
    assert first.warm_start_uri is None and "fresh model" in why_first
    assert second.warm_start_uri == "s3://b/a1/model.keras"
    assert second.learning_rate == pytest.approx(5e-4)
    assert "warm start from the kept epoch" in why_second and "lr 0.0005" in why_second
    colder = PipelineConfig(epochs=5, retry_learning_rate_factor=0.1, retry_warm_start=False)
    third, why_third = plan(
        colder, attempt_uri="s3://b/a3", attempt=3, previous=trained(second, "s3://b/a2/model.keras")
    )
    assert third.warm_start_uri is None and third.learning_rate == pytest.approx(1e-5)
    assert "fresh model, seed 45" in why_third


def test_a_warm_night_trains_warm_epochs_from_production_and_its_retry_from_scratch():
    config = PipelineConfig(epochs=40, warm_epochs=8)
    start = StartingPoint(
        "warm start from version 3",
        parent_version=3,
        parent_model_uri="s3://b/v3/model.keras",
        warm_generation=2,
    )
    plan = partial(plan_attempt, config, dataset_uri="s3://b/d.json")
    warm, why_warm = plan(attempt_uri="s3://b/a1", attempt=1, start=start)
    assert (warm.epochs, warm.warm_start_uri) == (8, "s3://b/v3/model.keras")
    assert (warm.parent_version, warm.warm_generation, warm.learning_rate) == (3, 2, 1e-3)
    assert "warm start from production version 3 (warm generation 2)" in why_warm
    retry, why_retry = plan(
        attempt_uri="s3://b/a2", attempt=2, previous=trained(warm, "s3://b/a1/model.keras")
    )
    assert retry.warm_start_uri is None and retry.parent_version is None and retry.warm_generation == 0
    assert (retry.epochs, retry.learning_rate, retry.seed) == (40, 1e-3, 44)
    assert "fresh model, seed 44" in why_retry and "the warm start was not blessed" in why_retry


def test_a_warm_request_travels_through_the_trainer_cli():
    request = TrainRequest(
        "s3://b/d.json",
        "s3://b/a1",
        warm_start_uri="s3://b/v3/model.keras",
        parent_version=3,
        warm_generation=2,
    )
    assert parse_request(request.to_cli_args()) == request


@pytest.mark.slow
def test_cli_trains_the_reference_model_at_128_pixels(s3_endpoint, digits_bucket, dataset_128):
    output_uri = f"s3://{digits_bucket}/runs/train-128/attempt-1"
    request = TrainRequest(dataset_128.dataset_uri, output_uri, epochs=1, batch_size=32)
    completed = subprocess.run(
        [sys.executable, "-m", "tasks.train", *request.to_cli_args()],
        env={**os.environ, "AWS_ENDPOINT_URL": s3_endpoint},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "epoch 1/1: loss" in completed.stderr and "images/s" in completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["epochs_trained"] == 1
    assert 0.0 <= result["final_val_accuracy"] <= 1.0
    from tasks.storage import make_client

    client = make_client(s3_endpoint)
    assert get_json(client, S3Uri.parse(f"{output_uri}/train_result.json")) == result
    assert exists(client, S3Uri.parse(result["model_uri"]))
    history = get_json(client, S3Uri.parse(result["history_uri"]))
    assert set(history["metrics"]) >= {"loss", "accuracy", "val_loss", "val_accuracy"}


@pytest.mark.slow
def test_warm_start_continues_from_the_previous_model(s3, digits_bucket):
    config = PipelineConfig(bucket=digits_bucket, image_size=32)
    dataset = collect_and_build(s3, config, "warm")
    base = f"s3://{digits_bucket}/runs/warm"
    first = run_training(s3, TrainRequest(dataset.dataset_uri, f"{base}/attempt-1", epochs=3))
    second_request, _ = plan_attempt(
        PipelineConfig(epochs=1),
        dataset_uri=dataset.dataset_uri,
        attempt_uri=f"{base}/attempt-2",
        attempt=2,
        previous=first,
    )
    second = run_training(s3, second_request)
    first_history = get_json(s3, S3Uri.parse(first.history_uri))["metrics"]
    second_history = get_json(s3, S3Uri.parse(second.history_uri))["metrics"]
    # A fresh model's first epoch starts near chance; a warm one starts where the last one ended.
    assert second_history["loss"][0] < first_history["loss"][0]
    assert second.request["warm_start_uri"] == first.model_uri


@pytest.mark.slow
def test_the_published_model_is_the_kept_epoch(s3, digits_bucket, tmp_path):
    import keras
    import numpy as np

    from tasks.storage import download_file
    from tasks.train import open_split

    config = PipelineConfig(bucket=digits_bucket, image_size=32)
    dataset = collect_and_build(s3, config, "kept")
    # Without flip averaging the published model computes exactly what validation measured.
    request = TrainRequest(
        dataset.dataset_uri, f"s3://{digits_bucket}/runs/kept/attempt-1", epochs=4, average_flips=False
    )
    result = run_training(s3, request)
    history = get_json(s3, S3Uri.parse(result.history_uri))
    accuracies = history["metrics"]["val_accuracy"]
    assert history["kept_by"] == "val_accuracy" and not history["stopped_early"]
    assert result.kept_epoch == history["kept_epoch"] == 1 + int(np.argmax(accuracies))
    local = download_file(s3, S3Uri.parse(result.model_uri), tmp_path / "kept.keras")
    model = keras.models.load_model(local)
    validation = open_split(s3, DatasetRecord.read(s3, dataset.dataset_uri), "validation", local.parent, 64)
    _, accuracy = model.evaluate(validation, verbose=0)
    assert accuracy == pytest.approx(accuracies[result.kept_epoch - 1], abs=1e-6)
    assert result.final_val_accuracy == accuracies[result.kept_epoch - 1]


@pytest.mark.slow
def test_patience_stops_an_attempt_that_stopped_improving(s3, digits_bucket):
    config = PipelineConfig(bucket=digits_bucket, image_size=32)
    dataset = collect_and_build(s3, config, "patience")
    # A learning rate too small to move any weight: epoch 1 stays the best, so patience 1 stops
    # the attempt after epoch 2 of 5.
    request = TrainRequest(
        dataset.dataset_uri,
        f"s3://{digits_bucket}/runs/patience/attempt-1",
        epochs=5,
        learning_rate=1e-15,
        keep_epoch_by="val_loss",
        early_stopping_patience=1,
        augment_flip=False,
        augment_shift=0.0,
    )
    result = run_training(s3, request)
    history = get_json(s3, S3Uri.parse(result.history_uri))
    assert history["epochs"] == [1, 2] and history["stopped_early"] and history["kept_epoch"] == 1
    assert result.epochs_trained == 2 and result.kept_epoch == 1
