"""Warm-started nights through `dag.test()`: a changed night continues from the production
model when it may, and trains from scratch when the classes, the trainer code or the depth of
warm generations say so, or when the warm attempt is not blessed; a night that cannot reach
its threshold gives up and leaves production as it was. One chain of four nights on one bucket
(each night needs the one before). The other reasons to train from scratch (new classes or
input size, other trainer code or settings) are decided by `choose_starting_point`, tested
in tests/tasks/test_warm_start.py."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import pytest
from nights import Night
from sklearn.datasets import load_digits

from tasks.artifacts import models_page
from tasks.config import PipelineConfig
from tasks.demo.data import DIGIT_CLASS_NAMES, digit_png
from tasks.model_card import card_markdown
from tasks.registry import Registry
from tasks.storage import S3Uri, create_bucket, get_json, make_client, put_bytes

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
MODEL_NAME = "warm-cnn"


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


def attempt_request(s3, night: Night, attempt: int = 1) -> dict:
    return json.loads(night.run_file(s3, f"attempt-{attempt}/train_result.json"))["request"]


def lineage(night: Night) -> tuple[int, int | None, int]:
    """(version, parent version, warm generation) of production, as production.json said
    after the night."""
    pointer = json.loads(night.pointer or b"null")
    return pointer["version"], pointer["parent_version"], pointer["warm_generation"]


@dataclass(frozen=True)
class WarmNights:
    """Four nights on one bucket whose digits grow night by night."""

    bucket: str
    first: Night  # 3 classes, no production yet: from scratch
    warm: Night  # more digits: continues from version 1
    due: Night  # version 2 is as deep as full_retrain_every 1: from scratch
    # An unreachable threshold: a warm attempt, then one from scratch, then the run gives up
    # (and fails, fail_on_give_up being true) and production stays.
    unblessed: Night


@pytest.fixture(scope="module")
def warm_nights(run_night, s3_endpoint) -> WarmNights:
    s3 = make_client(s3_endpoint)
    bucket = f"warm-{uuid.uuid4().hex[:8]}"
    digits = Digits(s3, bucket)
    conf = {**NIGHT, "bucket": bucket, "model_name": MODEL_NAME, "full_retrain_every": 1}
    nights = []
    for per_class in (25, 5, 5):
        digits.add(per_class, range(3))
        nights.append(run_night(**conf))
        assert nights[-1].state == "success", nights[-1].states
    digits.add(5, range(3))
    # full_retrain_every 2 lets version 3 (warm generation 0) be continued from.
    unreachable = {"full_retrain_every": 2, "min_test_accuracy": 1.0, "max_attempts": 2}
    nights.append(run_night(**{**conf, **unreachable}))
    return WarmNights(bucket, *nights)


def test_changed_nights_continue_from_production_until_a_full_retrain_is_due(warm_nights, s3):
    registry = Registry(s3, warm_nights.bucket, MODEL_NAME)
    assert "from scratch: no production model to continue" in warm_nights.first.log
    assert lineage(warm_nights.first) == (1, None, 0)

    warm = warm_nights.warm
    assert "warm start from version 1 (warm generation 1, full retrain every 1)" in warm.log
    assert "warm start from production version 1 (warm generation 1), shrunk and perturbed" in warm.log
    request = attempt_request(s3, warm)
    assert request["epochs"] == NIGHT["warm_epochs"] and request["warm_start_uri"].endswith("/1/model.keras")
    assert lineage(warm) == (2, 1, 1)
    card = registry.card(2)
    assert (card["parent_version"], card["warm_generation"]) == (1, 1)
    deployment = get_json(s3, registry.complete_version(2).root.join("deployment.json"))
    assert (deployment["parent_version"], deployment["warm_generation"]) == (1, 1)
    assert "started from version 1's weights (warm generation 1)" in card_markdown(card)
    page = models_page(s3, PipelineConfig(bucket=warm_nights.bucket), "image_classifier_retrain")
    assert "<td>v1 (warm generation 1)</td>" in page and "<td>scratch</td>" in page

    # The generation deploy recorded in production.json is what the next night reads.
    due = warm_nights.due
    assert "from scratch: version 2 is 1 warm generation(s) deep (full_retrain_every 1)" in due.log
    request = attempt_request(s3, due)
    assert request["warm_start_uri"] is None and request["parent_version"] is None
    assert lineage(due) == (3, None, 0)


def test_an_unblessed_warm_attempt_is_retried_from_scratch(warm_nights, s3):
    unblessed = warm_nights.unblessed
    assert unblessed.states["attempt_2.train"] == "success" and unblessed.states["deploy"] == "skipped"
    warm, retry = attempt_request(s3, unblessed, 1), attempt_request(s3, unblessed, 2)
    assert warm["parent_version"] == 3 and warm["warm_generation"] == 1
    assert retry["warm_start_uri"] is None and retry["parent_version"] is None
    assert retry["epochs"] == NIGHT["epochs"]
    assert "attempt 2: fresh model, seed 44" in unblessed.log
    assert "(the warm start was not blessed)" in unblessed.log


def test_unreachable_threshold_retrains_gives_up_and_keeps_production(warm_nights):
    night = warm_nights.unblessed
    assert night.state == "failed"
    assert night.states["attempt_1.train"] == night.states["attempt_2.train"] == "success"
    assert night.states["attempt_2.give_up"] == "failed"
    assert night.states["deploy"] == "skipped"
    assert night.states["attempt_3.train"] == "skipped"
    assert night.pointer == warm_nights.due.pointer
