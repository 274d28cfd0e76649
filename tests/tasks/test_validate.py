"""The Great Expectations gate over real manifests."""

from __future__ import annotations

import pandas as pd
import pytest

from tasks.collect import MANIFEST_COLUMNS
from tasks.config import PipelineConfig
from tasks.validate import DataValidationError, gate, validate_manifest

CONFIG = PipelineConfig(class_names=("cat", "dog"), min_images=4)


def manifest(classes: list[str | None]) -> pd.DataFrame:
    rows = [
        {"key": f"raw/{name}/{index}.png", "class_name": name, "bytes": 10, "etag": "e",
         "last_modified": "2026-01-01T00:00:00+00:00", "sha256": f"{index:064x}"}
        for index, name in enumerate(classes)
    ]
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


def test_a_good_manifest_passes_every_expectation():
    report = gate(manifest(["cat", "dog", "cat", "dog"]), CONFIG)
    assert report.success
    assert report.row_count == 4
    assert all(outcome.success for outcome in report.outcomes)
    assert "expect_column_values_to_be_in_set(class_name)" in report.table()


def test_an_unknown_class_fails_naming_the_expectation_and_the_value():
    with pytest.raises(DataValidationError) as raised:
        gate(manifest(["cat", "dog", "cat", "bird"]), CONFIG)
    expected = "expect_column_values_to_be_in_set(class_name): observed 1 unexpected (e.g. bird)"
    assert expected in str(raised.value)


def test_a_missing_class_fails():
    report = validate_manifest(manifest(["cat"] * 5), CONFIG)
    assert [o.expectation for o in report.failures()] == ["expect_column_distinct_values_to_contain_set"]


def test_too_few_images_fail():
    with pytest.raises(DataValidationError, match="expect_table_row_count_to_be_between: observed 2"):
        gate(manifest(["cat", "dog"]), CONFIG)


def test_objects_outside_class_folders_fail_as_nulls():
    with pytest.raises(DataValidationError, match=r"expect_column_values_to_not_be_null\(class_name\)"):
        gate(manifest(["cat", "dog", "cat", "dog", None]), CONFIG)


def test_duplicate_keys_fail():
    frame = manifest(["cat", "dog", "cat", "dog"])
    frame.loc[1, "key"] = frame.loc[0, "key"]
    with pytest.raises(DataValidationError, match=r"expect_column_values_to_be_unique\(key\)"):
        gate(frame, CONFIG)
