"""The consumer contract: list, show, load (complete versions only), predict, roll back."""

from __future__ import annotations

import pytest
from images_factory import digit_like, encode
from steps import judge_and_publish

from tasks.config import PipelineConfig
from tasks.registry import Registry, predict
from tasks.storage import S3Uri, StorageError, WriteConflictError, delete_prefix


@pytest.fixture
def published(s3, bucket, candidate) -> Registry:
    """Two published versions of the same (tiny, real) model; production is version 2."""
    config = PipelineConfig(bucket=bucket)
    judge_and_publish(s3, config, candidate, "run-1")
    judge_and_publish(s3, config, candidate, "run-2")
    return Registry(s3, bucket, config.model_name)


def test_versions_and_pointer(published):
    assert [(v.version, v.complete, v.in_production) for v in published.versions()] == [
        (1, True, False),
        (2, True, True),
    ]
    assert published.pointer().version == 2
    assert published.card().run_id == "run-2"
    assert published.card(1).run_id == "run-1"


def test_load_and_predict(published, recwarn):
    model, card = published.load()
    assert card.version == 2
    # Loading for inference restores no training state, so Keras has no optimizer to warn about.
    assert [str(w.message) for w in recwarn if "optimizer" in str(w.message)] == []
    predictions = predict(model, card, [encode(digit_like(3)), encode(digit_like(9))], ["a.png", "b.png"])
    assert len(predictions) == 2
    for name, probability in predictions:
        assert name in card.dataset.class_names and 0.0 <= probability <= 1.0


def test_incomplete_versions_are_refused(s3, published):
    s3.delete_object(Bucket=published.layout.root.bucket, Key=published.layout.version(1).marker.key)
    assert [v.complete for v in published.versions()] == [False, True]
    with pytest.raises(StorageError, match="version 1 is missing or incomplete"):
        published.load(1)
    with pytest.raises(StorageError, match="version 9 is missing or incomplete"):
        published.rollback(9)


def test_rollback_then_republish(s3, bucket, candidate, published):
    assert published.rollback(1).version == 1
    assert published.pointer().version == 1 and published.pointer().run_id == "run-1"
    republished = judge_and_publish(s3, PipelineConfig(bucket=bucket), candidate, "run-3")
    assert republished.version == 3 and published.pointer().version == 3


def test_rollback_loses_cleanly_to_a_concurrent_writer(s3, published, writer_between_read_and_write):
    import tasks.registry as registry

    others = published.pointer().to_json() | {"published_at": "written by another run"}
    writer_between_read_and_write(registry, others)
    with pytest.raises(WriteConflictError, match="changed by another writer"):
        published.rollback(1)
    assert published.pointer().to_json() == others


def test_no_production_model_yet(s3, bucket):
    registry = Registry(s3, bucket, "nothing-here")
    assert registry.pointer() is None and registry.versions() == []
    with pytest.raises(StorageError, match="no production model yet"):
        registry.load()
    delete_prefix(s3, S3Uri(bucket, "models/"))
