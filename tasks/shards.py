"""The on-S3 format of a processed dataset: TFRecord shards of fixed-size 8-bit RGB images.

Pixels are stored as uint8 (exact, and 4x smaller than float32); `read_split` scales them to
[0, 1] as float32 while streaming, so every reader sees the same preprocessed tensors.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from tasks.tensorflow_runtime import load_tensorflow

IMAGES_PER_SHARD = 512
SPLITS = ("train", "validation", "test")


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:05d}.tfrecord"


def write_split(folder: Path, split: str, records: Iterable[tuple[np.ndarray, int, str]]) -> list[Path]:
    """Writes (image uint8 HxWx3, label, sha256) records into numbered shard files."""
    tf = load_tensorflow()

    def feature_bytes(value: bytes) -> Any:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    paths: list[Path] = []
    writer: Any = None
    for count, (image, label, sha256) in enumerate(records):
        if count % IMAGES_PER_SHARD == 0:
            if writer is not None:
                writer.close()
            paths.append(folder / shard_name(split, len(paths)))
            writer = tf.io.TFRecordWriter(str(paths[-1]))
        example = tf.train.Example(
            features=tf.train.Features(
                feature={
                    "image": feature_bytes(np.ascontiguousarray(image, dtype=np.uint8).tobytes()),
                    "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                    "sha256": feature_bytes(sha256.encode()),
                }
            )
        )
        writer.write(example.SerializeToString())
    if writer is not None:
        writer.close()
    return paths


def read_split(
    shard_paths: list[Path],
    image_size: int,
    class_count: int,
    batch_size: int,
    shuffle_seed: int | None = None,
    cache: bool = True,
    image_count: int | None = None,
) -> Any:
    """A batched tf.data pipeline over shard files: parallel parse, cache, shuffle, prefetch.
    Yields (images float32 in [0, 1], one-hot labels)."""
    tf = load_tensorflow()

    schema = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
        "sha256": tf.io.FixedLenFeature([], tf.string),
    }

    def parse(serialized: Any) -> tuple[Any, Any]:
        example = tf.io.parse_single_example(serialized, schema)
        pixels = tf.io.decode_raw(example["image"], tf.uint8)
        image = tf.reshape(pixels, [image_size, image_size, 3])
        image = tf.cast(image, tf.float32) / 255.0
        return image, tf.one_hot(example["label"], class_count)

    dataset = tf.data.TFRecordDataset(
        [str(path) for path in shard_paths], num_parallel_reads=tf.data.AUTOTUNE
    )
    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    if image_count is not None:
        # Known size: Keras can size epochs without running out of data mid-epoch.
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(image_count))
    if cache:
        dataset = dataset.cache()
    if shuffle_seed is not None:
        dataset = dataset.shuffle(4096, seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
