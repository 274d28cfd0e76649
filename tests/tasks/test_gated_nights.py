"""validate keeps the last manifest the gate passed: a night with the same manifest takes its
results without reading a row, still judged against tonight's settings; anything else is gated
in full. Against the moto server, on real digits."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from steps import collect_and_validate

from tasks.collect import read_manifest
from tasks.config import PipelineConfig
from tasks.layout import gate_memory, run_layout
from tasks.partitions import Partition
from tasks.preprocess import finish_dataset, preprocess_partition
from tasks.storage import S3Uri, delete_keys, exists, get_bytes, get_json, iter_objects, put_bytes
from tasks.validate import DataValidationError

SETTINGS = {"min_images": 20, "min_images_per_class": 2, "max_class_imbalance": 50.0, "image_size": 32}


def kept_files(s3, config: PipelineConfig) -> list[str]:
    return sorted(item["Key"] for item in iter_objects(s3, gate_memory(config)) if "/nights/" in item["Key"])


def test_a_night_with_the_manifest_gated_last_takes_its_results(s3, small_digits, raw_reads):
    config = PipelineConfig(bucket=small_digits, partitions=2, **SETTINGS)
    put_bytes(s3, S3Uri(small_digits, "raw/zero/broken.png"), b"not an image")
    first = collect_and_validate(s3, config, "first")
    reads = raw_reads(s3)
    again = collect_and_validate(s3, config, "again")

    assert first.taken_from_run == "" and (first.gate.rows_checked, first.gate.rows_carried) == (201, 0)
    assert again.taken_from_run == "first"
    assert (again.gate.rows_checked, again.gate.rows_carried) == (0, 201)
    assert again.fingerprint == first.fingerprint
    assert (again.gate.images, again.gate.quarantined) == (first.gate.images, first.gate.quarantined)
    assert reads == []
    one, two = run_layout(config, "first"), run_layout(config, "again")
    for name in ("manifest", "clean_manifest"):
        assert get_bytes(s3, getattr(two, name)) == get_bytes(s3, getattr(one, name)), name
    for before, after in zip(first.partitions, again.partitions, strict=True):
        assert get_bytes(s3, S3Uri.parse(after["uri"])) == get_bytes(s3, S3Uri.parse(before["uri"]))
        assert "/runs/again/" in after["uri"]  # the run's own copy: retention may drop the other
    quarantined = [get_json(s3, layout.quarantine)["quarantined"] for layout in (one, two)]
    assert quarantined[0] == quarantined[1]
    assert [entry["key"] for entry in quarantined[1]] == ["raw/zero/broken.png"]
    assert [get_json(s3, layout.quarantine)["gated_by_run"] for layout in (one, two)] == ["first", "first"]
    summary = get_json(s3, two.manifest_summary)
    assert (summary["objects"], summary["objects_read"]) == (201, 0)
    assert get_json(s3, run_layout(config, "again").validation_results("raw"))  # Data Docs written

    # The dataset step needs no manifest read either: the fingerprint names the dataset.
    config = config.with_classes(again.gate.class_names)
    processed = [
        preprocess_partition(s3, config, Partition.from_xcom(partition), "again")
        for partition in again.partitions
    ]
    labelled_once = finish_dataset(s3, config, again.gate.clean_manifest_uri, processed, "again")
    labelled_twice = finish_dataset(
        s3, config, again.gate.clean_manifest_uri, processed, "again", again.fingerprint
    )
    assert labelled_once.dataset_id == labelled_twice.dataset_id
    assert labelled_once.split_counts == labelled_twice.split_counts
    assert sum(labelled_once.split_counts.values()) == len(read_manifest(s3, again.gate.clean_manifest_uri))


def test_the_kept_results_are_judged_against_tonights_settings(s3, small_digits):
    config = PipelineConfig(bucket=small_digits, **SETTINGS)
    collect_and_validate(s3, config, "first")
    stricter = replace(config, min_images_per_class=50)  # 20 a class in the bucket

    with pytest.raises(DataValidationError, match="min_images_per_class"):
        collect_and_validate(s3, stricter, "stricter")
    layout = run_layout(stricter, "stricter")
    assert get_json(s3, layout.quarantine)["rows_checked"] == 0
    assert not exists(s3, layout.clean_manifest)  # as after a full gate: no clean rows left behind


def test_another_manifest_or_other_rules_gate_in_full_and_keep_one_night(s3, small_digits):
    config = PipelineConfig(bucket=small_digits, **SETTINGS)
    first = collect_and_validate(s3, config, "first")
    kept_first = kept_files(s3, config)
    original = get_bytes(s3, S3Uri(small_digits, "raw/zero/digit-0000.png"))
    put_bytes(s3, S3Uri(small_digits, "raw/zero/extra.png"), original)
    changed = collect_and_validate(s3, config, "changed")
    other_rules = collect_and_validate(s3, replace(config, max_image_side=512), "other-rules")

    assert changed.taken_from_run == other_rules.taken_from_run == ""
    assert changed.gate.duplicates == first.gate.duplicates + 1
    assert other_rules.gate.rows_carried == 0  # new rules: every row checked
    kept = kept_files(s3, config)
    assert len({key.split("/nights/")[0] for key in kept}) == 1 and kept != kept_first
    # The row outcomes reached under the earlier rules went with their night.
    rules_folders = {
        item["Key"].split("/gate-")[1].split("/")[0] for item in iter_objects(s3, gate_memory(config))
    }
    assert len(rules_folders) == 1


@pytest.mark.parametrize("damage", ["truncated gated.json", "a clean part removed"])
def test_a_damaged_kept_night_is_gated_in_full(s3, small_digits, caplog, damage):
    config = PipelineConfig(bucket=small_digits, partitions=2, **SETTINGS)
    first = collect_and_validate(s3, config, "first")
    kept = kept_files(s3, config)
    if damage == "truncated gated.json":
        (record,) = [key for key in kept if key.endswith("gated.json")]
        put_bytes(s3, S3Uri(small_digits, record), b"{truncated")
    else:
        delete_keys(s3, small_digits, [next(key for key in kept if "/clean/" in key)])

    with caplog.at_level(logging.WARNING, logger="tasks.gated_nights"):
        again = collect_and_validate(s3, config, "again")
    assert again.taken_from_run == "" and again.gate.rows_checked == 0  # carried per row instead
    assert again.fingerprint == first.fingerprint
    assert "gating the manifest in full" in caplog.text
    assert len(kept_files(s3, config)) == len(kept)  # kept anew, whole
