"""Partitions: deterministic, covering every key (and content) exactly once, and giving the
same manifest and dataset at any partition count."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from tasks.collect import collect_manifest
from tasks.config import PipelineConfig
from tasks.layout import run_layout
from tasks.partitions import (
    MAX_PARTITIONS,
    SLOTS,
    Partition,
    content_slot,
    key_slot,
    partition_count,
    partition_numbers,
)
from tasks.preprocess import build_dataset
from tasks.storage import S3Uri, get_bytes, get_json, iter_objects

KEYS = [f"raw/class-{n % 7}/image-{n:05d}.png" for n in range(5000)]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 16, 64])
def test_every_key_falls_in_the_partition_that_holds_its_slot(count):
    numbers = partition_numbers(KEYS, key_slot, count)
    assert len(numbers) == len(KEYS) and set(numbers) <= set(range(count))
    for key, number in zip(KEYS, numbers, strict=True):
        assert key_slot(key) in Partition(int(number), count).slots
    assert sorted(slot for n in range(count) for slot in Partition(n, count).slots) == list(range(SLOTS))


def test_partitions_do_not_depend_on_order_and_spread_evenly():
    forward = dict(zip(KEYS, partition_numbers(KEYS, key_slot, 4), strict=True))
    backward = dict(zip(KEYS[::-1], partition_numbers(KEYS[::-1], key_slot, 4), strict=True))
    assert forward == backward
    assert all(1000 < size < 1500 for size in np.bincount(list(forward.values()), minlength=4))
    hashes = [hashlib.sha256(key.encode()).hexdigest() for key in KEYS]
    by_content = np.bincount(partition_numbers(hashes, content_slot, 4), minlength=4)
    assert all(1000 < size < 1500 for size in by_content), by_content


def test_partition_count_follows_the_setting_or_the_object_count():
    assert partition_count(10, requested=4) == 4
    assert partition_count(1) == partition_count(8000) == 1
    assert partition_count(8001) == 2
    assert partition_count(10_000_000) == MAX_PARTITIONS


def test_one_and_four_partitions_give_the_same_manifest_and_dataset(s3, small_digits):
    results = {}
    for count in (1, 4):
        config = PipelineConfig(bucket=small_digits, image_size=32, min_images=50, partitions=count)
        run_id = f"p{count}"
        collected = collect_manifest(s3, config, run_id)
        dataset = build_dataset(
            s3, config.with_classes(collected.class_names), collected.manifest_uri, run_id, partitions=count
        )
        parts = [
            item["Key"]
            for item in iter_objects(s3, run_layout(config, run_id).root.join("manifest").folder())
        ]
        assert len(parts) == count
        record = get_json(s3, S3Uri.parse(dataset.dataset_uri))
        results[count] = (get_bytes(s3, run_layout(config, run_id).manifest), dataset, record)
    (manifest_1, dataset_1, record_1), (manifest_4, dataset_4, record_4) = results[1], results[4]
    assert manifest_1 == manifest_4
    assert dataset_1.fingerprint == dataset_4.fingerprint and dataset_1.dataset_id == dataset_4.dataset_id
    assert dataset_1.split_counts == dataset_4.split_counts
    assert record_1 == record_4  # the same dataset, written once
    # The second run found the examples the first one stored, whatever its partitions.
    assert dataset_4.images_decoded == 0 and dataset_4.images_reused == dataset_1.images_decoded == 200


@pytest.mark.slow
def test_more_partitions_than_objects_leaves_some_empty_and_changes_nothing(s3, bucket):
    from images_factory import seed_images

    seed_images(s3, bucket, classes=("zero", "one"), per_class=20)
    keys = [item["Key"] for item in iter_objects(s3, S3Uri(bucket, "raw/"))]
    assert len(set(partition_numbers(keys, key_slot, 48))) < 48  # some partitions are empty
    fingerprints = []
    for count in (1, 48):
        config = PipelineConfig(bucket=bucket, image_size=32, partitions=count, split_tolerance=0.5)
        collected = collect_manifest(s3, config, f"p{count}")
        assert collected.object_count == 40
        dataset = build_dataset(
            s3,
            config.with_classes(collected.class_names),
            collected.manifest_uri,
            f"p{count}",
            partitions=count,
        )
        fingerprints.append(dataset.fingerprint)
    assert fingerprints[0] == fingerprints[1]
