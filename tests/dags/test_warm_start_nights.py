"""Warm-started nights through `dag.test()`, read from the week of nights (tests/week.py, which
runs with `warm_start=auto` and `full_retrain_every=1`): a changed night continues from the
production model when it may, and trains from scratch when production is as many warm
generations deep as allowed. One more night on the week's bucket cannot reach its threshold:
its warm attempt is retried from scratch, then the run gives up and leaves production as it
was. The other reasons to train from scratch (no production, new classes or input size, other
trainer code or settings) are decided by `choose_starting_point` and each tested in
tests/tasks/test_warm_start.py."""

from __future__ import annotations

import json

import pytest
from nights import Night
from week import CONF, MODEL_NAME

from tasks.artifacts import models_page
from tasks.card_pages import card_markdown
from tasks.config import PipelineConfig
from tasks.registry import Registry
from tasks.storage import get_json

pytestmark = pytest.mark.slow


def attempt_request(s3, night: Night, attempt: int = 1) -> dict:
    return json.loads(night.run_file(s3, f"attempt-{attempt}/train_result.json"))["request"]


def lineage(night: Night) -> tuple[int, int | None, int]:
    """(version, parent version, warm generation) of production, as production.json said
    after the night."""
    pointer = json.loads(night.pointer or b"null")
    return pointer["version"], pointer["parent_version"], pointer["warm_generation"]


@pytest.fixture(scope="module")
def unreachable_night(week_of_nights, run_night) -> Night:
    """After the week, a changed night whose threshold no model reaches. full_retrain_every 2
    lets version 6 (warm generation 1) be continued from."""
    week_of_nights.catalogue.add(20)
    return run_night(
        bucket=week_of_nights.bucket,
        model_name=MODEL_NAME,
        **{**CONF, "full_retrain_every": 2, "min_test_accuracy": 1.0, "max_attempts": 2},
    )


def test_changed_nights_continue_from_production_until_a_full_retrain_is_due(week_of_nights, s3):
    first, warm, _, due, *_ = [observed.night for observed in week_of_nights.nights]
    registry = Registry(s3, week_of_nights.bucket, MODEL_NAME)
    assert "from scratch: no production model to continue" in first.log
    assert lineage(first) == (1, None, 0)

    assert "warm start from version 1 (warm generation 1, full retrain every 1)" in warm.log
    assert "warm start from production version 1 (warm generation 1), shrunk and perturbed" in warm.log
    request = attempt_request(s3, warm)
    assert request["epochs"] == CONF["warm_epochs"] != CONF["epochs"]
    assert request["warm_start_uri"].endswith("/1/model.keras")
    assert lineage(warm) == (2, 1, 1)
    card = registry.card(2)
    assert (card.parent_version, card.warm_generation) == (1, 1)
    deployment = get_json(s3, registry.complete_version(2).root.join("deployment.json"))
    assert (deployment["parent_version"], deployment["warm_generation"]) == (1, 1)
    assert "started from version 1's weights (warm generation 1)" in card_markdown(card)
    page = models_page(s3, PipelineConfig(bucket=week_of_nights.bucket), "image_classifier_retrain")
    assert "<td>v1 (warm generation 1)</td>" in page and "<td>scratch</td>" in page

    # The generation deploy recorded in production.json is what the next changed night reads.
    assert "from scratch: version 2 is 1 warm generation(s) deep (full_retrain_every 1)" in due.log
    request = attempt_request(s3, due)
    assert request["warm_start_uri"] is None and request["parent_version"] is None
    assert lineage(due) == (3, None, 0)
    assert [lineage(observed.night)[1:] for observed in week_of_nights.nights[4:]] == [
        (3, 1),
        (None, 0),
        (5, 1),
    ]


def test_an_unblessed_warm_attempt_is_retried_from_scratch(unreachable_night, s3):
    night = unreachable_night
    assert night.states["attempt_2.train"] == "success" and night.states["deploy"] == "skipped"
    warm, retry = attempt_request(s3, night, 1), attempt_request(s3, night, 2)
    assert warm["parent_version"] == 6 and warm["warm_generation"] == 2
    assert retry["warm_start_uri"] is None and retry["parent_version"] is None
    assert retry["epochs"] == CONF["epochs"]
    assert "attempt 2: fresh model, seed 44" in night.log
    assert "(the warm start was not blessed)" in night.log


def test_unreachable_threshold_retrains_gives_up_and_keeps_production(unreachable_night, week_of_nights):
    night = unreachable_night
    assert night.state == "failed"
    assert night.states["attempt_1.train"] == night.states["attempt_2.train"] == "success"
    assert night.states["attempt_2.give_up"] == "failed"
    assert night.states["deploy"] == "skipped"
    assert night.states["attempt_3.train"] == "skipped"
    assert night.pointer == week_of_nights.nights[-1].night.pointer
