"""Airflow glue: S3 clients from connections, Params to config, fail-fast mapping."""

from __future__ import annotations

import json

import pytest
from airflow.sdk.exceptions import AirflowFailException

from retrain_airflow import failing_fast, retrain_params, run_config, s3_client
from tasks.errors import InvalidSettingsError
from tasks.storage import PermanentStorageError, StorageError
from tasks.validate import DataValidationError


def test_client_from_the_airflow_connection_reaches_its_endpoint(s3_endpoint, bucket):
    client = s3_client("aws_default")
    assert client.meta.endpoint_url == s3_endpoint
    assert bucket in [item["Name"] for item in client.list_buckets()["Buckets"]]


def test_params_become_a_validated_config():
    assert run_config({"params": {"epochs": 2}}).epochs == 2
    with pytest.raises(AirflowFailException, match="invalid pipeline config"):
        run_config({"params": {"epochs": 0}})


@pytest.mark.parametrize(
    "error",
    [DataValidationError("gate failed"), PermanentStorageError("no bucket"), InvalidSettingsError("bad")],
)
def test_permanent_problems_fail_without_retry(error):
    with pytest.raises(AirflowFailException, match=str(error)), failing_fast():
        raise error


@pytest.mark.parametrize(
    "error",
    [
        StorageError("endpoint unreachable"),
        json.JSONDecodeError("Expecting value", "{", 1),
        ValueError("a plain bug"),
        KeyError("version"),
    ],
)
def test_transient_problems_and_bugs_keep_their_type_and_their_retries(error):
    with pytest.raises(type(error)) as raised, failing_fast():
        raise error
    assert raised.value is error


# Every JSON-schema keyword a setting may use, and so what `probes` must exercise.
PROBED_KEYWORDS = {
    "type",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "pattern",
    "enum",
    "minLength",
    "items",
    "minItems",
    "uniqueItems",
}


def probes(schema: dict) -> list:
    """Values on both sides of each bound of a schema, of the wrong type, and lists whose items
    break the item schema."""
    values: list = [None, "text", 1, True, [], ["a", "b"]]
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    for keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if keyword in schema:
            bound = schema[keyword]
            steps = (-1, 0, 1) if "integer" in types else (-1, -0.001, 0, 0.001, 1)
            values += [bound + step for step in steps]
    if "pattern" in schema:
        values += ["", "raw", "raw/", "/raw/", "../raw/", "Bad_Bucket", "my-bucket", "all", "2", "a/b"]
    if "enum" in schema:
        values += [*schema["enum"], "other"]
    if "minLength" in schema:
        values += ["", "x"]
    if "array" in types:
        values += [["only"], ["a", "a"], ["a/b", "c"], ["PNG"], ["cat", "dog", "owl"]]
        values += [[""], [1], ["a", 1], [None], [["nested"]], ["*.txt", ""], ["PNG", "PNG"]]
    return values


def test_every_param_is_a_setting_and_both_refuse_the_same_values():
    from dataclasses import fields

    from airflow.sdk.exceptions import ParamValidationError

    from tasks.config import PipelineConfig, field_problems

    params = retrain_params()
    assert set(params) == {declared.name for declared in fields(PipelineConfig)}
    used = {keyword for param in params.values() for keyword in param.schema} - {"section", "default"}
    item_keywords = {keyword for param in params.values() for keyword in param.schema.get("items", {})}
    assert used | item_keywords <= PROBED_KEYWORDS, used | item_keywords - PROBED_KEYWORDS
    disagreements = []
    refused_list_items = 0
    for name, param in params.items():
        for value in probes(param.schema):
            try:
                param.resolve(value)
                param_accepts = True
            except ParamValidationError:
                param_accepts = False
            as_config = tuple(value) if isinstance(value, list) else value
            config_accepts = not list(field_problems(name, as_config))
            if param_accepts != config_accepts:
                disagreements.append((name, value, param_accepts, config_accepts))
            refused_list_items += isinstance(value, list) and bool(value) and not config_accepts
    assert disagreements == []
    assert refused_list_items >= 10  # the item probes reach the item schemas


def marked_required(schema: dict) -> bool:
    """The trigger form's rule for the required mark (*): a type that excludes null."""
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    return "null" not in types


def test_lists_and_switches_are_optional_in_the_form_and_null_means_their_default():
    from tasks.config import PipelineConfig, form_optional

    params = retrain_params()
    optional = {name for name, param in params.items() if not marked_required(param.schema)}
    lists_and_switches = {"class_names", "ignore_patterns", "allowed_formats", "force_retrain"}
    assert lists_and_switches | {"augment_flip"} <= optional
    assert params["epochs"].schema["type"] == "integer"  # numbers keep their mark and bounds
    # The form clamps an out-of-range number when the field loses focus: the help text says the range.
    assert params["image_size"].description.endswith("(allowed: >= 22, <= 512)")
    # Unlike the optional thresholds, where null means "off", a list's or a switch's null is its default.
    from_form = PipelineConfig.from_params({name: None for name in optional if form_optional(name)})
    assert from_form == PipelineConfig()


def test_no_param_whose_default_is_empty_is_required_in_the_form():
    """The form refuses to submit a required field left empty: one such Param (inventory_uri,
    default "") kept the whole form from being submitted with its defaults."""
    from tasks.config import PipelineConfig, param_schemas

    schemas = param_schemas()
    empty = {name for name, schema in schemas.items() if schema["default"] in ("", None, [], {})}
    assert "inventory_uri" in empty
    assert [name for name in empty if marked_required(schemas[name])] == []
    # Their null is their default (or, for an optional threshold, "off", which is its default).
    assert PipelineConfig.from_params(dict.fromkeys(empty)) == PipelineConfig()


def test_params_are_grouped_in_the_forms_sections_and_described():
    from tasks.config import SECTIONS

    for name, param in retrain_params().items():
        assert param.schema["section"] in SECTIONS, name
        assert param.description, name


def test_a_conf_key_that_is_no_param_is_refused_with_a_suggestion():
    from types import SimpleNamespace

    # Airflow adds unknown conf keys to the run's params too: the DAG's declarations decide.
    context = {
        "params": {"image_size": 128, "imagesize": 32},
        "dag_run": SimpleNamespace(conf={"imagesize": 32}),
    }
    with pytest.raises(AirflowFailException, match=r"unknown Param imagesize; did you mean image_size\?"):
        run_config(context)


def test_the_connections_client_has_a_pool_for_every_transfer_thread(s3_endpoint):
    from tasks.storage import PART_THREADS, S3_TOTAL_TRIES, TRANSFER_THREADS

    client = s3_client("aws_default")
    assert client.meta.config.max_pool_connections >= TRANSFER_THREADS * PART_THREADS
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": S3_TOTAL_TRIES}
