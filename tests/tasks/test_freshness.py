"""The skip rule: train only when the data, the training settings or the trainer code
changed since the production model, or when forced."""

from __future__ import annotations

from pathlib import Path

import pytest
from pointers import production_pointer

from tasks import freshness
from tasks.config import PipelineConfig
from tasks.freshness import (
    TRAINER_SOURCES,
    check_for_change,
    code_shape,
    trainer_code_version,
    training_signature,
)
from tasks.layout import dataset_layout, model_layout
from tasks.records import DatasetRecord
from tasks.storage import put_json


def dataset_record(dataset_id: str, fingerprint: str) -> dict:
    """A dataset.json as preprocess writes it."""
    return DatasetRecord(
        dataset_id=dataset_id,
        fingerprint=fingerprint,
        image_size=32,
        class_names=["cat", "dog"],
        split_counts={"train": 8, "validation": 1, "test": 1},
        packs={"train": [], "validation": [], "test": []},
        labels_uri=f"s3://b/datasets/{dataset_id}/labels.csv",
        preprocessing_version="p1",
        manifest_uri="s3://b/runs/r/manifest.csv",
        created_by_run="r",
    ).to_json()


@pytest.fixture
def production(s3, bucket):
    """A dataset and a production model trained on it with the default settings."""
    config = PipelineConfig(bucket=bucket, model_name="fresh")
    dataset = dataset_layout(bucket, "ds-1")
    put_json(s3, dataset.record, dataset_record("ds-1", "9f1c" + "0" * 60))
    pointer = production_pointer(
        bucket,
        "fresh",
        7,
        class_names=["cat", "dog"],
        dataset_fingerprint="9f1c" + "0" * 60,
        dataset_id="ds-1",
        training_signature=training_signature(config, "ds-1"),
    )
    put_json(s3, model_layout(config).pointer, pointer.to_json())
    return config, str(dataset.record)


def test_nothing_changed_means_nothing_to_train(s3, production):
    config, dataset_uri = production
    need = check_for_change(s3, config, dataset_uri)
    assert not need.train
    assert need.reason == (
        "no change since version 7 (dataset 9f1c00000000..., same settings and trainer code): "
        "nothing to train"
    )


def test_force_retrain_trains_anyway(s3, production):
    config, dataset_uri = production
    need = check_for_change(
        s3, PipelineConfig(bucket=config.bucket, model_name="fresh", force_retrain=True), dataset_uri
    )
    assert need.train and "force_retrain" in need.reason


def test_other_settings_or_data_train(s3, bucket, production):
    config, dataset_uri = production
    more_epochs = PipelineConfig(bucket=bucket, model_name="fresh", epochs=11)
    assert check_for_change(s3, more_epochs, dataset_uri).reason.startswith(
        "settings or trainer code changed"
    )
    other = dataset_layout(bucket, "ds-2")
    put_json(s3, other.record, dataset_record("ds-2", "ab" * 32))
    assert (
        check_for_change(s3, config, str(other.record)).reason == "the data changed since version 7: training"
    )


def test_the_first_model_trains(s3, bucket, production):
    _, dataset_uri = production
    need = check_for_change(s3, PipelineConfig(bucket=bucket, model_name="none-yet"), dataset_uri)
    assert need.train and need.reason == "no production model yet: training"


TRAINER_SNIPPET = '''
"""Trains the model."""
import logging

log = logging.getLogger(__name__)
DROPOUT = 0.5


def fit(model):
    """Fits the model."""
    log.info("fitting with dropout %s", DROPOUT)  # progress for the task log
    return model.fit(dropout=DROPOUT)
'''


def test_wording_of_the_trainer_code_keeps_its_shape():
    reworded = (
        TRAINER_SNIPPET.replace('"""Fits the model."""', '"""Fits the model on the training split."""')
        .replace("# progress for the task log", "# shown in the task log")
        .replace('"fitting with dropout %s"', '"training at dropout %s"')
        .replace("\n\n\ndef", "\n\n\n\ndef")
    )
    assert reworded != TRAINER_SNIPPET
    assert code_shape(reworded) == code_shape(TRAINER_SNIPPET)


def test_a_changed_constant_or_statement_changes_the_shape():
    original = code_shape(TRAINER_SNIPPET)
    assert code_shape(TRAINER_SNIPPET.replace("DROPOUT = 0.5", "DROPOUT = 0.4")) != original
    assert code_shape(TRAINER_SNIPPET.replace("fit(dropout", "fit(verbose=0, dropout")) != original


def test_the_trainer_code_version_reads_every_trainer_source():
    sources = [Path(freshness.__file__).parent / name for name in TRAINER_SOURCES]
    assert all(source.is_file() for source in sources)
    assert len(trainer_code_version()) == 16
