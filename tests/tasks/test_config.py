"""PipelineConfig: defaults, Params parsing, and readable rejection of bad settings."""

from __future__ import annotations

import pytest

from tasks.config import PipelineConfig, run_partition


def test_defaults_describe_the_reference_setup():
    config = PipelineConfig()
    assert (config.image_size, config.epochs, config.batch_size, config.learning_rate) == (128, 10, 32, 1e-3)
    assert len(config.class_names) == 10


def test_params_override_defaults_and_airflow_extras_are_ignored():
    config = PipelineConfig.from_params({"epochs": 3, "class_names": ["cat", "dog"], "dag_run_extra": 1})
    assert config.epochs == 3
    assert config.class_names == ("cat", "dog")
    assert PipelineConfig.from_params(config.to_params()) == config


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"bucket": "Bad_Bucket"}, "not a valid S3 bucket name"),
        ({"raw_prefix": "raw"}, "must be relative and end with '/'"),
        ({"raw_prefix": "../raw/"}, "must be relative"),
        ({"class_names": ["a", "a"]}, "holds duplicates"),
        ({"class_names": ["only"]}, "at least two classes"),
        ({"image_size": 16}, "image_size 16"),
        ({"learning_rate": 0}, "learning_rate 0"),
        ({"min_test_accuracy": 1.5}, "min_test_accuracy 1.5"),
    ],
)
def test_invalid_settings_are_rejected_with_the_reason(params, message):
    with pytest.raises(ValueError, match="invalid pipeline config") as raised:
        PipelineConfig.from_params(params)
    assert message in str(raised.value)


def test_run_partition_is_a_safe_path_segment():
    assert run_partition("manual__2026-11-28T12:16:25.497459+00:00") == (
        "manual__2026-11-28T12_16_25.497459_00_00"
    )
