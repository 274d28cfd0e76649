"""preprocess: decoding, content-hash splits, and shards that tf.data reads back exactly."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from steps import collect_and_build

from tasks.config import PipelineConfig
from tasks.examples import pixel_facts
from tasks.images import ImageDecodeError, decode_rgb
from tasks.preprocess import split_of
from tasks.records import DatasetRecord
from tasks.storage import S3Uri
from tasks.train import open_split


def png(mode: str, size: tuple[int, int], color) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_split_depends_only_on_content_and_follows_80_10_10():
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(5000)]
    splits = [split_of(h) for h in hashes]
    assert splits == [split_of(h) for h in hashes]
    assert 0.77 < splits.count("train") / 5000 < 0.83
    assert 0.08 < splits.count("test") / 5000 < 0.12


@pytest.mark.parametrize(("mode", "color"), [("L", 128), ("RGBA", (10, 20, 30, 40)), ("P", 3)])
def test_any_mode_becomes_rgb_uint8_at_the_requested_size(mode, color):
    image = decode_rgb(png(mode, (50, 30), color), 24, "raw/x/1.png")
    assert image.shape == (24, 24, 3)
    assert image.dtype == np.uint8


def facts_of(images: list[np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame([pixel_facts(image) for image in images])


def test_undecodable_bytes_name_the_object():
    with pytest.raises(ImageDecodeError, match=r"raw/cat/0042.png: not an image format Pillow knows"):
        decode_rgb(b"not an image", 24, "raw/cat/0042.png")


def test_packs_hold_every_image_scaled_to_unit_range(s3, digits_bucket, tmp_path: Path):
    config = PipelineConfig(bucket=digits_bucket, image_size=32)
    result = collect_and_build(s3, config, "run-p")
    dataset = DatasetRecord.read(s3, result.dataset_uri)
    assert sum(dataset.split_counts.values()) == 600
    assert dataset.split_counts == result.split_counts
    assert result.split_counts["train"] > result.split_counts["test"] > 0
    images, labels = [], []
    for batch_images, batch_labels in open_split(s3, dataset, "test", tmp_path, batch_size=64):
        images.append(batch_images.numpy())
        labels.append(batch_labels.numpy())
    images, labels = np.concatenate(images), np.concatenate(labels)
    assert images.shape == (result.split_counts["test"], 32, 32, 3)
    assert images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0 and images.max() > 0.9
    assert labels.sum(axis=1).tolist() == [1.0] * len(labels)


def test_preprocessing_is_deterministic_across_runs(s3, digits_bucket):
    config = PipelineConfig(bucket=digits_bucket, image_size=32)
    first = collect_and_build(s3, config, "run-d1")
    second = collect_and_build(s3, config, "run-d2")
    assert first.fingerprint == second.fingerprint
    assert first.split_counts == second.split_counts


def processed_frames(images, rows, splits):
    """Every processed-check frame of rows taken as one partition."""
    from tasks.preprocess import count_frames, image_frames, split_class_counts

    return {**image_frames(images, rows, splits), **count_frames(split_class_counts(rows, splits))}


def test_dataset_checks_from_partition_counts_equal_those_from_the_whole():
    from tasks.partitions import content_slot
    from tasks.preprocess import count_frames, split_class_counts

    rows = pd.DataFrame(
        {"sha256": [f"{i * 7919:064x}" for i in range(300)], "class_name": ["a", "b", "c"] * 100}
    )
    splits = [("train", "validation", "test")[i % 7 % 3] for i in range(300)]
    whole = count_frames(split_class_counts(rows, splits))
    part_of = rows["sha256"].map(content_slot) % 4
    per_part = [
        split_class_counts(
            rows[part_of == n].reset_index(drop=True),
            [s for s, p in zip(splits, part_of, strict=True) if p == n],
        )
        for n in range(4)
    ]
    assert all(len(part) for part in per_part)
    combined = count_frames(pd.concat(per_part, ignore_index=True))
    for name, frame in whole.items():
        pd.testing.assert_frame_equal(combined[name], frame, check_dtype=False)


def test_processed_checks_catch_leakage_and_skewed_splits(tmp_path):
    from tasks.preprocess import check_processed

    rows = pd.DataFrame({"sha256": [f"{i:064x}" for i in range(40)], "class_name": ["a", "b"] * 20})
    images = facts_of([np.zeros((24, 24, 3), dtype=np.uint8)] * 40)
    splits = ["train"] * 32 + ["validation"] * 4 + ["test"] * 4
    config = PipelineConfig(class_names=("a", "b"), image_size=24)
    _, failure = check_processed(processed_frames(images, rows, splits), config, tmp_path / "ok")
    assert failure is None

    leaked = rows.copy()
    leaked.loc[39, "sha256"] = leaked.loc[0, "sha256"]  # the same content in train and test
    _, failure = check_processed(processed_frames(images, leaked, splits), config, tmp_path / "leak")
    assert (
        f"processed_leakage: expect_column_values_to_be_in_set(splits): observed 1 unexpected "
        f"({rows.loc[0, 'sha256'][:16]}: 2) for {rows.loc[0, 'sha256']}" in failure
    )

    skewed = ["train"] * 20 + ["validation"] * 10 + ["test"] * 10
    _, failure = check_processed(processed_frames(images, rows, skewed), config, tmp_path / "skew")
    assert "processed_splits: expect_column_values_to_be_between(deviation)" in failure


def test_processed_checks_catch_wrong_shapes(tmp_path):
    from tasks.preprocess import check_processed

    rows = pd.DataFrame({"sha256": ["1" * 64], "class_name": ["a"]})
    config = PipelineConfig(class_names=("a", "b"), image_size=24)
    frames = processed_frames(facts_of([np.zeros((24, 25, 3), dtype=np.uint8)]), rows, ["train"])
    _, failure = check_processed(frames, config, tmp_path)
    assert "processed_images: expect_column_values_to_be_in_set(width)" in failure


def test_an_object_changed_since_it_was_collected_fails_preprocess_at_once(s3, bucket):
    from images_factory import seed_images

    from tasks.collect import collect_manifest
    from tasks.preprocess import build_dataset
    from tasks.storage import StorageError, put_bytes

    seed_images(s3, bucket, classes=("zero", "one"))
    config = PipelineConfig(bucket=bucket, image_size=24, class_names=("zero", "one"))
    collected = collect_manifest(s3, config, "changed")
    changed = "raw/one/img-00.png"
    put_bytes(s3, S3Uri(bucket, changed), digit_like_png())
    with pytest.raises(
        StorageError, match=f"s3://{bucket}/{changed}: changed since it was collected"
    ) as raised:
        build_dataset(s3, config, collected.manifest_uri, "changed")
    assert raised.value.permanent  # not retried: the next run collects the object again


def digit_like_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((24, 24, 3), 200, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
