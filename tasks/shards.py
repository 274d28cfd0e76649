"""The on-S3 format of processed examples: packs (TFRecord files) of fixed-size 8-bit RGB
images keyed by their content hash.

A record holds the pixels and the sha256 of the raw object, not the label: labels belong to a
dataset (its `labels.csv`), so one pack serves every dataset, and every night, that holds its
examples, whatever their classes are called. Pixels are stored as uint8 (exact, and 4x smaller
than float32); `read_split` scales them to [0, 1] as float32 while streaming.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from tasks.tensorflow_runtime import load_tensorflow

IMAGES_PER_PACK = 512
SPLITS = ("train", "validation", "test")


def pack_id(members: list[str], image_size: int, preprocessing_version: str) -> str:
    """A pack's name: the hash of what it holds, so writing it again changes nothing."""
    digest = hashlib.sha256(f"{preprocessing_version}:{image_size}\n".encode())
    for sha256 in members:
        digest.update(f"{sha256}\n".encode())
    return digest.hexdigest()[:32]


class PackWriter:
    """Appends (image, sha256) records to a local TFRecord file; `close()` returns the
    members in write order. One open pack holds at most IMAGES_PER_PACK records."""

    def __init__(self, path: Path) -> None:
        self.tf = load_tensorflow()
        self.path = path
        self.members: list[str] = []
        self._writer = self.tf.io.TFRecordWriter(str(path))

    def _bytes_feature(self, value: bytes) -> Any:
        return self.tf.train.Feature(bytes_list=self.tf.train.BytesList(value=[value]))

    def add(self, image: np.ndarray, sha256: str) -> None:
        example = self.tf.train.Example(
            features=self.tf.train.Features(
                feature={
                    "image": self._bytes_feature(np.ascontiguousarray(image, dtype=np.uint8).tobytes()),
                    "sha256": self._bytes_feature(sha256.encode()),
                }
            )
        )
        self._writer.write(example.SerializeToString())
        self.members.append(sha256)

    @property
    def full(self) -> bool:
        return len(self.members) >= IMAGES_PER_PACK

    def close(self) -> list[str]:
        self._writer.close()
        return self.members


def read_split(
    pack_paths: list[Path],
    labels: dict[str, int],
    image_size: int,
    class_count: int,
    batch_size: int,
    shuffle_seed: int | None = None,
    image_count: int | None = None,
) -> Any:
    """A batched tf.data pipeline over pack files: parallel parse, label lookup, shuffle,
    prefetch. Records whose sha256 is not in `labels` (examples of other datasets that share
    a pack) are skipped. Yields (images float32 in [0, 1], one-hot labels). Nothing is cached:
    memory stays flat whatever the number of images."""
    tf = load_tensorflow()
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(labels), dtype=tf.string), tf.constant(list(labels.values()), dtype=tf.int64)
        ),
        default_value=-1,
    )
    schema = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "sha256": tf.io.FixedLenFeature([], tf.string),
    }

    def parse(serialized: Any) -> tuple[Any, Any]:
        example = tf.io.parse_single_example(serialized, schema)
        pixels = tf.io.decode_raw(example["image"], tf.uint8)
        image = tf.reshape(pixels, [image_size, image_size, 3])
        return image, table.lookup(example["sha256"])

    def scaled(image: Any, label: Any) -> tuple[Any, Any]:
        return tf.cast(image, tf.float32) / 255.0, tf.one_hot(label, class_count)

    dataset = tf.data.TFRecordDataset([str(path) for path in pack_paths], num_parallel_reads=tf.data.AUTOTUNE)
    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE).filter(lambda _, label: label >= 0)
    if image_count is not None:
        # Known size: Keras can size epochs without running out of data mid-epoch.
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(image_count))
    if shuffle_seed is not None:
        # Shuffling uint8 images keeps the buffer at a quarter of its float32 size.
        dataset = dataset.shuffle(2048, seed=shuffle_seed, reshuffle_each_iteration=True)
    dataset = dataset.map(scaled, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
