"""PipelineConfig: defaults, Params parsing, readable rejection of bad settings, and the
Param schemas derived from the same declarations."""

from __future__ import annotations

from dataclasses import fields

import pytest

from tasks.config import SECTIONS, PipelineConfig, param_schemas, unknown_params


def test_defaults_keep_the_reference_input_batch_and_learning_rate_with_four_times_its_epochs():
    config = PipelineConfig()
    assert (config.image_size, config.epochs, config.batch_size, config.learning_rate) == (128, 40, 32, 1e-3)
    assert config.class_names == ()  # the raw folders decide


def test_params_override_defaults_and_airflow_extras_are_ignored():
    config = PipelineConfig.from_params({"epochs": 3, "class_names": ["cat", "dog"], "dag_run_extra": 1})
    assert config.epochs == 3
    assert config.class_names == ("cat", "dog")
    assert PipelineConfig.from_params(config.to_params()) == config


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"bucket": "Bad_Bucket"}, "bucket: 'Bad_Bucket' does not match"),
        ({"raw_prefix": "raw"}, "raw_prefix: 'raw' does not match"),
        ({"raw_prefix": "../raw/"}, "raw_prefix: '../raw/' does not match"),
        ({"class_names": ["a", "a"]}, "class_names: ['a', 'a'] has non-unique elements"),
        ({"class_names": ["only"]}, "at least two classes"),
        ({"class_names": ["a/b", "c"]}, "class_names[0]: 'a/b' does not match"),
        ({"ignore_patterns": [""]}, "ignore_patterns[0]: '' should be non-empty"),
        ({"allowed_formats": [1]}, "allowed_formats[0]: 1 is not of type 'string'"),
        ({"image_size": 16}, "image_size: 16 is less than the minimum of 22"),
        ({"learning_rate": 0}, "learning_rate: 0 is less than or equal to the minimum of 0"),
        ({"min_test_accuracy": 1.5}, "min_test_accuracy: 1.5 is greater than the maximum of 1"),
        ({"epochs": "3"}, "epochs: '3' is not of type 'integer'"),
        ({"min_image_side": 100, "max_image_side": 50}, "min_image_side 100 is above max_image_side 50"),
        ({"warm_start": "sometimes"}, "warm_start: 'sometimes' is not one of ['auto', 'never', 'always']"),
    ],
)
def test_invalid_settings_are_rejected_with_the_reason(params, message):
    with pytest.raises(ValueError, match="invalid pipeline config") as raised:
        PipelineConfig.from_params(params)
    assert message in str(raised.value)


def test_every_setting_is_described_and_in_a_form_section():
    schemas = param_schemas()
    assert list(schemas) == sorted(schemas, key=lambda name: SECTIONS.index(schemas[name]["section"]))
    assert set(schemas) == {declared.name for declared in fields(PipelineConfig)}
    for name, schema in schemas.items():
        assert schema["description"].strip(), name
        assert schema["section"] in SECTIONS, name


def test_a_misspelt_key_is_refused_with_a_suggestion():
    known = list(param_schemas())
    assert unknown_params(["epochs", "image_size"], known) is None
    refused = unknown_params(["imagesize"], known)
    assert refused is not None
    assert refused.startswith("unknown Param imagesize; did you mean image_size?")
    assert "did you mean" not in (unknown_params(["zzz"], known) or "").split("(")[0]


def test_every_param_is_documented():
    from pathlib import Path

    documented = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    assert [name for name in param_schemas() if f"| `{name}` |" not in documented] == []


def test_every_deployment_setting_is_documented_and_none_is_a_param():
    from dataclasses import fields
    from pathlib import Path

    from tasks.config import DeploymentSettings

    documented = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    descriptions = [option.metadata["description"] for option in fields(DeploymentSettings)]
    variables = [description.split(":")[0].split()[0] for description in descriptions]
    assert all(name.startswith("RETRAIN_") for name in variables), variables
    assert [name for name in variables if f"| `{name}` |" not in documented] == []
    assert not {option.name for option in fields(DeploymentSettings)} & set(param_schemas())


def test_a_deployment_sets_the_forms_defaults_and_a_bad_one_is_one_line(monkeypatch):
    from tasks.config import PARAM_DEFAULTS_ENV
    from tasks.errors import InvalidSettingsError

    monkeypatch.setenv(PARAM_DEFAULTS_ENV, '{"class_names": ["zero", "one"], "augment_flip": false}')
    schemas = param_schemas()
    assert (schemas["class_names"]["default"], schemas["augment_flip"]["default"]) == (["zero", "one"], False)
    assert schemas["epochs"]["default"] == PipelineConfig().epochs
    for setting, refusal in (
        ('{"epoch": 3}', "unknown Param epoch; did you mean epochs?"),
        ('{"epochs": 0}', "epochs: 0 is less than the minimum of 1"),
        ("epochs=3", "not a JSON object"),
    ):
        monkeypatch.setenv(PARAM_DEFAULTS_ENV, setting)
        with pytest.raises(InvalidSettingsError, match=refusal) as refused:
            param_schemas()
        assert str(refused.value).startswith(f"{PARAM_DEFAULTS_ENV}: ") and "\n" not in str(refused.value)
