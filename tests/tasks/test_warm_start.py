"""The warm_start policy: when a night's first attempt continues from production."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pointers import production_pointer

from tasks.config import PipelineConfig
from tasks.freshness import settings_digest, trainer_code_version
from tasks.records import DatasetRecord
from tasks.warm_start import choose_starting_point

CLASSES = ["zero", "one", "two"]
DATASET = DatasetRecord(
    dataset_id="d" * 32,
    fingerprint="f" * 64,
    image_size=32,
    class_names=CLASSES,
    split_counts={"train": 80, "validation": 10, "test": 10},
    packs={"train": [], "validation": [], "test": []},
    labels_uri="s3://b/datasets/d/labels.csv",
    preprocessing_version="1",
    manifest_uri="s3://b/runs/r/manifest.csv",
    created_by_run="r",
)
AUTO = PipelineConfig(warm_start="auto", class_names=tuple(CLASSES), image_size=32)


def production(config: PipelineConfig = AUTO, **changes):
    """Production as this code trained it with `config`'s settings, `changes` applied."""
    recorded = {"trainer_code": trainer_code_version(), "settings_digest": settings_digest(config)}
    return production_pointer("b", "m", 4, **(recorded | changes))


def test_auto_continues_from_a_compatible_production_model_one_generation_deeper():
    start = choose_starting_point(AUTO, production(warm_generation=2), DATASET)
    assert start.warm and start.parent_version == 4 and start.warm_generation == 3
    assert start.parent_model_uri == "s3://b/models/m/4/model.keras"
    assert start.reason.startswith("warm start from version 4 (warm generation 3")


@pytest.mark.parametrize(
    ("config", "pointer", "reason"),
    [
        (replace(AUTO, warm_start="never"), production(), "warm_start is never"),
        (AUTO, None, "no production model to continue"),
        (
            AUTO,
            production(class_names=["zero", "one"]),
            "the classes or the input size changed since version 4",
        ),
        (AUTO, production(image_size=64), "the classes or the input size changed since version 4"),
        (AUTO, production(trainer_code="0" * 16), "the trainer code changed since version 4"),
        (replace(AUTO, dropout=0.3), production(), "the training settings changed since version 4"),
        (AUTO, production(settings_digest=None), "does not record the trainer code and settings"),
        (
            AUTO,
            production(warm_generation=7),
            "version 4 is 7 warm generation(s) deep (full_retrain_every 7)",
        ),
        (replace(AUTO, full_retrain_every=2), production(warm_generation=2), "full_retrain_every 2"),
    ],
)
def test_auto_trains_from_scratch_when_production_is_not_what_this_night_trains(config, pointer, reason):
    start = choose_starting_point(config, pointer, DATASET)
    assert not start.warm and start.warm_generation == 0
    assert start.reason.startswith("from scratch: ") and reason in start.reason


def test_always_continues_past_changed_settings_and_depth_but_not_past_other_classes():
    always = replace(AUTO, warm_start="always", dropout=0.3)
    deep = production(trainer_code="0" * 16, warm_generation=30)
    assert choose_starting_point(always, deep, DATASET).warm_generation == 31
    assert not choose_starting_point(always, production(class_names=["one", "zero", "two"]), DATASET).warm


def test_warm_policy_settings_do_not_change_what_production_was_trained_for():
    tuned = replace(AUTO, warm_epochs=3, full_retrain_every=2, warm_start="always")
    assert settings_digest(tuned) == settings_digest(AUTO)
    assert settings_digest(replace(AUTO, epochs=39)) != settings_digest(AUTO)


def test_a_deployment_sets_the_default_policy_for_every_night(monkeypatch):
    from tasks.errors import InvalidSettingsError

    monkeypatch.setenv("RETRAIN_WARM_START", "auto")
    assert PipelineConfig().warm_start == "auto"
    monkeypatch.setenv("RETRAIN_WARM_START", "sometimes")
    with pytest.raises(InvalidSettingsError, match="warm_start: 'sometimes' is not one of"):
        PipelineConfig()
