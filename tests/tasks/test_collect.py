"""collect: listing raw/, hashing every object, and the manifest under the run's prefix."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from tasks.collect import MANIFEST_COLUMNS, class_of, collect_manifest, read_manifest
from tasks.config import PipelineConfig
from tasks.storage import S3Uri, StorageError, get_bytes, get_json, put_bytes


def test_class_is_the_folder_under_the_raw_prefix():
    assert class_of("raw/cat/1.png", "raw/") == "cat"
    assert class_of("raw/loose.png", "raw/") is None


def test_manifest_has_a_row_per_object_with_its_content_hash(s3, digits_bucket):
    config = PipelineConfig(bucket=digits_bucket)
    result = collect_manifest(s3, config, "manual__2026-01-01T00:00:00+00:00")
    assert (
        result.manifest_uri
        == f"s3://{digits_bucket}/runs/manual__2026-01-01T00~3A00~3A00~2B00~3A00/manifest.csv"
    )
    manifest = read_manifest(s3, result.manifest_uri)
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert len(manifest) == result.object_count == 600
    assert set(result.images_per_class) == set(result.class_names)
    assert result.class_names == sorted(result.class_names) and len(result.class_names) == 10
    assert result.class_names_from == "raw folders"
    first = manifest.iloc[0]
    body = get_bytes(s3, S3Uri(digits_bucket, first.key))
    assert first.sha256 == hashlib.sha256(body).hexdigest()
    assert first.bytes == len(body)
    assert (first.decodable, first.format, first.width, first.height, first["mode"], first.channels) == (
        True,
        "PNG",
        32,
        32,
        "RGB",
        3,
    )
    assert first.extension == ".png" and pd.isna(first.reason)


def test_collecting_twice_writes_the_same_manifest(s3, digits_bucket):
    config = PipelineConfig(bucket=digits_bucket)
    first = read_manifest(s3, collect_manifest(s3, config, "run-twice").manifest_uri)
    again = read_manifest(s3, collect_manifest(s3, config, "run-twice").manifest_uri)
    assert first.equals(again)


def test_an_empty_raw_prefix_fails_with_the_contract(s3, bucket):
    put_bytes(s3, S3Uri(bucket, "elsewhere/x.png"), b"x")
    expected = r"raw/: no objects to train on; upload images as raw/<class_name>/"
    with pytest.raises(StorageError, match=expected):
        collect_manifest(s3, PipelineConfig(bucket=bucket), "run")


def test_a_missing_bucket_fails_permanently(s3):
    with pytest.raises(StorageError, match="bucket does not exist") as raised:
        collect_manifest(s3, PipelineConfig(bucket="no-such-bucket-for-collect"), "run")
    assert raised.value.permanent


def test_classes_are_the_raw_folders_sorted_and_recorded(s3, bucket):
    from images_factory import digit_like, encode

    from tasks.layout import run_layout

    for key in ("raw/dog/1.png", "raw/cat/1.png", "raw/bird/1.png", "raw/stray.png"):
        put_bytes(s3, S3Uri(bucket, key), encode(digit_like(1)))
    config = PipelineConfig(bucket=bucket)
    result = collect_manifest(s3, config, "infer")
    assert result.class_names == ["bird", "cat", "dog"]
    summary = get_json(s3, run_layout(config, "infer").manifest_summary)
    assert summary["class_names"] == ["bird", "cat", "dog"]
    assert summary["class_names_from"] == "raw folders"
    assert summary["objects_per_folder"]["<none>"] == 1  # raw/stray.png: the gate quarantines it


def test_an_explicit_class_list_wins_over_the_folders(s3, bucket):
    put_bytes(s3, S3Uri(bucket, "raw/dog/1.png"), b"x")
    put_bytes(s3, S3Uri(bucket, "raw/cat/1.png"), b"x")
    result = collect_manifest(
        s3, PipelineConfig(bucket=bucket, class_names=("dog", "cat", "owl")), "explicit"
    )
    assert (result.class_names, result.class_names_from) == (["dog", "cat", "owl"], "class_names Param")


def test_a_single_class_folder_is_refused(s3, bucket):
    put_bytes(s3, S3Uri(bucket, "raw/cat/1.png"), b"x")
    with pytest.raises(
        StorageError, match=r"found 1 class folder\(s\) \['cat'\]; a classifier needs at least two"
    ):
        collect_manifest(s3, PipelineConfig(bucket=bucket), "single")
