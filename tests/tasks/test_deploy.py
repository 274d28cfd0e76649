"""Publishing: immutable integer versions, the marker, and the pointer written last."""

from __future__ import annotations

import pytest

from tasks.config import PipelineConfig
from tasks.deploy import MARKER, Candidate, pointer_uri, publish, versions
from tasks.storage import (
    S3Uri,
    WriteConflictError,
    exists,
    get_bytes,
    get_json,
    head_etag,
)

DATASET = "runs/r1/dataset/dataset.json"


def test_first_publication_is_version_1_with_marker_and_pointer(s3, bucket, candidate):
    config = PipelineConfig(bucket=bucket)
    publication = publish(s3, config, candidate, "run-1", "fp", f"s3://{bucket}/{DATASET}")
    assert publication.version == 1
    version = S3Uri.parse(publication.version_uri)
    for name in (
        "model.keras",
        "labels.json",
        "evaluation.json",
        "blessing.json",
        "history.json",
        "confusion_matrix.png",
        "model_card.json",
        "model_card.md",
        "deployment.json",
        "serving/1/saved_model.pb",
        MARKER,
    ):
        assert exists(s3, version.join(name)), name
    card = get_json(s3, version.join("model_card.json"))
    assert (card["version"], card["run_id"], card["dataset"]["fingerprint"]) == (1, "run-1", "fp")
    assert card["metrics"]["accuracy"] == 0.97 and card["champion"] is None
    assert "# digits-cnn version 1" in get_bytes(s3, version.join("model_card.md")).decode()
    assert get_json(s3, version.join("labels.json")) == list(config.class_names)
    pointer = get_json(s3, pointer_uri(config))
    assert pointer["version"] == 1
    assert pointer["model_uri"] == f"s3://{bucket}/models/digits-cnn/1/model.keras"
    assert pointer["metrics"]["accuracy"] == 0.97
    assert pointer["dataset_fingerprint"] == "fp"
    assert pointer["run_id"] == "run-1"


def test_versions_only_grow_and_old_ones_stay(s3, bucket, candidate):
    config = PipelineConfig(bucket=bucket)
    publish(s3, config, candidate, "run-1", "fp", f"s3://{bucket}/{DATASET}")
    second = publish(s3, config, candidate, "run-2", "fp", f"s3://{bucket}/{DATASET}")
    assert second.version == 2
    assert versions(s3, config) == [1, 2]
    assert get_json(s3, pointer_uri(config))["version"] == 2
    assert exists(s3, S3Uri(bucket, f"models/digits-cnn/1/{MARKER}"))


def test_a_retried_deploy_finishes_its_own_version(s3, bucket, candidate):
    config = PipelineConfig(bucket=bucket)
    first = publish(s3, config, candidate, "run-1", "fp", f"s3://{bucket}/{DATASET}")
    again = publish(s3, config, candidate, "run-1", "fp", f"s3://{bucket}/{DATASET}")
    assert again.version == first.version == 1
    assert versions(s3, config) == [1]


def test_a_stale_pointer_write_loses_without_overwriting(
    s3, bucket, candidate, writer_between_read_and_write
):
    """Another run moves the pointer between our read of its ETag and our write."""
    import tasks.deploy as deploy

    config = PipelineConfig(bucket=bucket)
    publish(s3, config, candidate, "run-1", "fp", f"s3://{bucket}/{DATASET}")
    writer_between_read_and_write(deploy, {"version": 99, "written_by": "the other run"})
    with pytest.raises(WriteConflictError, match="production.json: changed by another writer"):
        publish(s3, config, candidate, "run-2", "fp", f"s3://{bucket}/{DATASET}")
    assert get_json(s3, pointer_uri(config))["written_by"] == "the other run"


def test_pointer_is_untouched_until_the_version_is_complete(s3, bucket, candidate):
    config = PipelineConfig(bucket=bucket)
    publish(s3, config, candidate, "run-1", "fp", f"s3://{bucket}/{DATASET}")
    before = get_bytes(s3, pointer_uri(config))
    broken = Candidate(2, f"s3://{bucket}/runs/missing/attempt-2", "x", "y", 0.99, 0.99)
    with pytest.raises(Exception, match="runs/missing/attempt-2/model.keras"):
        publish(s3, config, broken, "run-2", "fp", f"s3://{bucket}/{DATASET}")
    assert get_bytes(s3, pointer_uri(config)) == before
    assert head_etag(s3, S3Uri(bucket, f"models/digits-cnn/2/{MARKER}")) is None


def test_two_deploys_racing_for_the_pointer_one_wins(s3, bucket, candidate, monkeypatch):
    """Both runs read the pointer's ETag before either writes (a barrier holds them there);
    the conditional write lets exactly one through."""
    import threading

    import tasks.deploy as deploy

    config = PipelineConfig(bucket=bucket)
    publish(s3, config, candidate, "run-0", "fp", f"s3://{bucket}/{DATASET}")
    both_read = threading.Barrier(2, timeout=60)
    real_head_etag = deploy.head_etag

    def read_then_wait(client, uri):
        etag = real_head_etag(client, uri)
        both_read.wait()
        return etag

    monkeypatch.setattr(deploy, "head_etag", read_then_wait)
    outcomes: dict[str, object] = {}

    def deploy_run(run_id: str) -> None:
        try:
            outcomes[run_id] = publish(s3, config, candidate, run_id, "fp", f"s3://{bucket}/{DATASET}")
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
    assert "production.json: changed by another writer since it was read" in str(losers[0])
    pointer = get_json(s3, pointer_uri(config))
    assert pointer["run_id"] == winners[0]
    assert exists(s3, S3Uri.parse(pointer["version_uri"]).join(MARKER))
    assert sorted(versions(s3, config)) == [1, 2, 3]  # each run claimed its own version
