"""Publishing: immutable integer versions, the marker, and the pointer written last."""

from __future__ import annotations

from dataclasses import replace

import pytest
from steps import judge_and_publish

from tasks.config import PipelineConfig
from tasks.deploy import publish_version
from tasks.layout import MARKER_FILE as MARKER
from tasks.layout import model_layout
from tasks.recipe import Recipe
from tasks.registry import ProductionMovedError, Registry
from tasks.storage import (
    S3Uri,
    StorageError,
    WriteConflictError,
    exists,
    get_bytes,
    get_json,
    head_etag,
)

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def test_first_publication_is_version_1_with_marker_and_pointer(s3, bucket, candidate):
    config = PipelineConfig(bucket=bucket)
    publication = publish_version(s3, config, candidate, run_id="run-1")
    assert publication.version == 1
    version = S3Uri.parse(publication.version_uri)
    for name in (
        "model.keras",
        "labels.json",
        "evaluation.json",
        "blessing.json",
        "history.json",
        "confusion_matrix.png",
        "training_curves.png",
        "model_card.json",
        "model_card.md",
        "model_card.html",
        "deployment.json",
        "serving/1/saved_model.pb",
        MARKER,
    ):
        assert exists(s3, version.join(name)), name
    card = get_json(s3, version.join("model_card.json"))
    assert (card["version"], card["run_id"], card["dataset"]["fingerprint"]) == (1, "run-1", "fp")
    assert card["metrics"]["accuracy"] == 0.97 and card["champion"] is None
    card_text = get_bytes(s3, version.join("model_card.md")).decode()
    assert "# digits-cnn version 1" in card_text
    assert "![training curves](training_curves.png)" in card_text
    assert "![confusion matrix](confusion_matrix.png)" in card_text
    assert f"recipe: {Recipe().summary()}" in card_text and card["training"]["kept_epoch"] == 1
    assert get_json(s3, version.join("labels.json")) == list(DIGITS)
    pointer = get_json(s3, model_layout(config).pointer)
    assert pointer["version"] == 1
    assert pointer["model_uri"] == f"s3://{bucket}/models/digits-cnn/1/model.keras"
    assert pointer["metrics"]["accuracy"] == 0.97
    assert pointer["dataset_fingerprint"] == "fp"
    assert pointer["run_id"] == "run-1"


def test_versions_only_grow_and_old_ones_stay(s3, bucket, candidate):
    config = PipelineConfig(bucket=bucket)
    judge_and_publish(s3, config, candidate, "run-1")
    second = judge_and_publish(s3, config, candidate, "run-2")
    assert second.version == 2
    assert Registry(s3, bucket, config.model_name).version_numbers() == [1, 2]
    assert get_json(s3, model_layout(config).pointer)["version"] == 2
    assert exists(s3, S3Uri(bucket, f"models/digits-cnn/1/{MARKER}"))


def test_a_retried_deploy_finishes_its_own_version(s3, bucket, candidate):
    config = PipelineConfig(bucket=bucket)
    first = publish_version(s3, config, candidate, run_id="run-1")
    again = publish_version(s3, config, candidate, run_id="run-1")
    assert again.version == first.version == 1
    assert Registry(s3, bucket, config.model_name).version_numbers() == [1]


def test_pointer_is_untouched_until_the_version_is_complete(s3, bucket, candidate):
    config = PipelineConfig(bucket=bucket)
    publish_version(s3, config, candidate, run_id="run-1")
    before = get_bytes(s3, model_layout(config).pointer)
    broken = replace(candidate, attempt=2, attempt_uri=f"s3://{bucket}/runs/missing/attempt-2")
    with pytest.raises(StorageError, match=r"runs/missing/attempt-2/.* does not exist"):
        publish_version(s3, config, broken, run_id="run-2")
    assert get_bytes(s3, model_layout(config).pointer) == before
    assert head_etag(s3, S3Uri(bucket, f"models/digits-cnn/2/{MARKER}")) is None


def test_two_deploys_racing_for_the_pointer_one_wins(s3, bucket, candidate):
    """Two runs judged their candidates against the same production; the conditional write
    lets exactly one promotion through."""
    import threading

    config = PipelineConfig(bucket=bucket)
    judge_and_publish(s3, config, candidate, "run-0")
    _, judged_against = Registry(s3, bucket, config.model_name).production()
    judged = replace(candidate, production_etag=judged_against)
    outcomes: dict[str, object] = {}

    def deploy_run(run_id: str) -> None:
        try:
            outcomes[run_id] = publish_version(s3, config, judged, run_id=run_id)
        except WriteConflictError as error:
            outcomes[run_id] = error

    threads = [threading.Thread(target=deploy_run, args=(run_id,)) for run_id in ("run-a", "run-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    winners = [run for run, outcome in outcomes.items() if not isinstance(outcome, Exception)]
    losers = [outcome for outcome in outcomes.values() if isinstance(outcome, Exception)]
    assert len(winners) == 1 and len(losers) == 1
    assert isinstance(losers[0], ProductionMovedError) and "production moved to version" in str(losers[0])
    pointer = get_json(s3, model_layout(config).pointer)
    assert pointer["run_id"] == winners[0]
    assert exists(s3, S3Uri.parse(pointer["version_uri"]).join(MARKER))
    assert sorted(Registry(s3, bucket, config.model_name).version_numbers()) == [
        1,
        2,
        3,
    ]  # each run claimed its own version
