"""Warm-started nights through `dag.test()`: a changed night continues from the production
model when it may, and trains from scratch when the classes, the trainer code or the depth of
warm generations say so, or when the warm attempt is not blessed."""

from __future__ import annotations

import logging
import uuid

import pytest
from sklearn.datasets import load_digits

from tasks.artifacts import models_page
from tasks.config import PipelineConfig
from tasks.demo.data import DIGIT_CLASS_NAMES, digit_png
from tasks.layout import run_segment
from tasks.model_card import card_markdown
from tasks.registry import Registry
from tasks.storage import S3Uri, create_bucket, get_json, put_bytes, put_json

pytestmark = pytest.mark.slow

IMAGE_SIZE = 24
NIGHT = {
    "image_size": IMAGE_SIZE,
    "epochs": 2,
    "warm_epochs": 1,
    "warm_start": "auto",
    "min_images": 60,
    "augment_flip": False,
    # Each night's outcome follows from where it started, not from one epoch's accuracy.
    "min_test_accuracy": 0.0,
    "max_regression": None,
    "max_attempts": 1,
}


class Digits:
    """Real digits added to raw/<class>/ night by night, each image once."""

    def __init__(self, client, bucket: str) -> None:
        self.client, self.bucket = client, bucket
        self.digits = load_digits()
        self.next_index = 0
        create_bucket(client, bucket)

    def add(self, per_class: int, labels: range) -> None:
        wanted = dict.fromkeys(labels, per_class)
        while any(wanted.values()):
            index, self.next_index = self.next_index, self.next_index + 1
            label = int(self.digits.target[index])
            if wanted.get(label):
                wanted[label] -= 1
                key = f"raw/{DIGIT_CLASS_NAMES[label]}/digit-{index:04d}.png"
                put_bytes(
                    self.client, S3Uri(self.bucket, key), digit_png(self.digits.images[index], IMAGE_SIZE)
                )


def night(run_retrain, caplog, **conf) -> tuple[str, dict, str]:
    """Runs one night; returns its run id, task states and log."""
    caplog.set_level(logging.INFO)
    caplog.clear()
    dag_run, states = run_retrain(**{**NIGHT, **conf})
    assert dag_run.state == "success", states
    return dag_run.run_id, states, caplog.text


def attempt_request(s3, bucket: str, run_id: str, attempt: int = 1) -> dict:
    folder = f"runs/{run_segment(run_id)}/attempt-{attempt}"
    return get_json(s3, S3Uri(bucket, f"{folder}/train_result.json"))["request"]


def lineage(registry: Registry) -> tuple[int, int | None, int]:
    """(version, parent version, warm generation) of production, as production.json says."""
    pointer = registry.pointer()
    assert pointer is not None
    return pointer.version, pointer.parent_version, pointer.warm_generation


def test_changed_nights_continue_from_production_until_a_full_retrain_is_due(run_retrain, s3, caplog):
    bucket, model_name = f"warm-{uuid.uuid4().hex[:8]}", "warm-cnn"
    digits = Digits(s3, bucket)
    registry = Registry(s3, bucket, model_name)
    conf = {"bucket": bucket, "model_name": model_name, "full_retrain_every": 1}

    digits.add(25, range(3))
    _, _, log = night(run_retrain, caplog, **conf)
    assert "from scratch: no production model to continue" in log
    assert lineage(registry) == (1, None, 0)

    digits.add(5, range(3))
    second, _, log = night(run_retrain, caplog, **conf)
    assert "warm start from version 1 (warm generation 1, full retrain every 1)" in log
    assert "warm start from production version 1 (warm generation 1), shrunk and perturbed" in log
    request = attempt_request(s3, bucket, second)
    assert request["epochs"] == NIGHT["warm_epochs"] and request["warm_start_uri"].endswith("/1/model.keras")
    assert lineage(registry) == (2, 1, 1)
    card = registry.card(2)
    assert (card["parent_version"], card["warm_generation"]) == (1, 1)
    deployment = get_json(s3, S3Uri.parse(registry.pointer().version_uri).join("deployment.json"))
    assert (deployment["parent_version"], deployment["warm_generation"]) == (1, 1)
    assert "started from version 1's weights (warm generation 1)" in card_markdown(card)
    page = models_page(s3, PipelineConfig(bucket=bucket), "image_classifier_retrain")
    assert "<td>v1 (warm generation 1)</td>" in page and "<td>scratch</td>" in page

    digits.add(5, range(3))
    third, _, log = night(run_retrain, caplog, **conf)
    assert "from scratch: version 2 is 1 warm generation(s) deep (full_retrain_every 1)" in log
    assert attempt_request(s3, bucket, third)["warm_start_uri"] is None
    assert lineage(registry) == (3, None, 0)

    # Production trained by other trainer code (an earlier release): the next night starts afresh.
    pointer = registry.pointer().to_json() | {"trainer_code": "0" * 16}
    put_json(s3, registry.pointer_uri, pointer)
    digits.add(5, range(3))
    fourth, _, log = night(run_retrain, caplog, **conf)
    assert "from scratch: the trainer code changed since version 3" in log
    assert attempt_request(s3, bucket, fourth)["parent_version"] is None
    assert lineage(registry) == (4, None, 0)


def test_new_classes_train_from_scratch_and_an_unblessed_warm_attempt_is_retried_from_scratch(
    run_retrain, s3, caplog
):
    bucket, model_name = f"warm-{uuid.uuid4().hex[:8]}", "warm-cnn"
    digits = Digits(s3, bucket)
    registry = Registry(s3, bucket, model_name)
    conf = {"bucket": bucket, "model_name": model_name}

    digits.add(25, range(3))
    night(run_retrain, caplog, **conf)
    digits.add(25, range(3, 4))  # a fourth class
    _, _, log = night(run_retrain, caplog, **conf)
    assert "from scratch: the classes or the input size changed since version 1" in log
    assert lineage(registry) == (2, None, 0)

    # A warm attempt that misses the bar is followed by one from scratch, not from the warm model.
    digits.add(5, range(4))
    unblessed = {**conf, "min_test_accuracy": 1.0, "max_attempts": 2, "fail_on_give_up": False}
    run_id, states, log = night(run_retrain, caplog, **unblessed)
    assert states["attempt_2.train"] == "success" and states["deploy"] == "skipped"
    warm, retry = attempt_request(s3, bucket, run_id, 1), attempt_request(s3, bucket, run_id, 2)
    assert warm["parent_version"] == 2 and warm["warm_generation"] == 1
    assert retry["warm_start_uri"] is None and retry["parent_version"] is None
    assert retry["epochs"] == NIGHT["epochs"]
    assert "attempt 2: fresh model, seed 44" in log and "(the warm start was not blessed)" in log
    assert lineage(registry) == (2, None, 0)
