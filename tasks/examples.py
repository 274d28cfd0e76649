"""The store of processed examples: each raw image's content decoded once per image size and
preprocessing version, kept in content-addressed packs and shared by every dataset and night.

The index lists what the store holds (sha256, split, pack and the pixel facts the processed
expectations check), one CSV per content slot (tasks/partitions.py), so a preprocess partition
reads and rewrites only its own slots. It is a cache of the packs: without it every image is
processed again.
New examples are decoded and written chunk by chunk, so memory holds one chunk of images and
one open pack per split, whatever the number of images.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.images import decode_rgb
from tasks.layout import ExampleStore, raw_object
from tasks.partitions import SLOTS, content_slot, read_slots, write_slots
from tasks.shards import SPLITS, PackWriter, pack_id
from tasks.storage import PermanentStorageError, S3Client, get_bytes, parallel_map, upload_file

log = logging.getLogger(__name__)

# Bump when decoding, resizing or the record format changes: every example is processed anew.
PREPROCESSING_VERSION = "p1"
CHUNK_IMAGES = 256
# Percent of the hash space per split: train 80, validation 10, test 10.
SPLIT_BOUNDS = {"train": 80, "validation": 90, "test": 100}
FACT_COLUMNS = ["height", "width", "channels", "dtype", "min_value", "max_value"]
INDEX_COLUMNS = ["sha256", "split", "pack", *FACT_COLUMNS]


def split_of(sha256: str) -> str:
    """The split an image belongs to, from its content alone: stable across nights."""
    bucket = int(sha256[:8], 16) % 100
    return next(split for split, bound in SPLIT_BOUNDS.items() if bucket < bound)


def pixel_facts(image: np.ndarray) -> dict[str, int | float | str]:
    """What the processed-data expectations check of one image, without its pixels."""
    return {
        "height": image.shape[0],
        "width": image.shape[1],
        "channels": image.shape[2] if image.ndim == 3 else 1,
        "dtype": str(image.dtype),
        "min_value": float(image.min()) / 255.0,
        "max_value": float(image.max()) / 255.0,
    }


def _parse_index(body: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(body), dtype={"sha256": str, "pack": str})


def read_index(client: S3Client, store: ExampleStore, slots: list[int] | None = None) -> pd.DataFrame:
    """The index rows of the content slots `slots` (every slot when None)."""
    index = read_slots(client, store.index_slot, list(range(SLOTS)) if slots is None else slots, _parse_index)
    return index if not index.empty else pd.DataFrame(columns=INDEX_COLUMNS)


def write_index(client: S3Client, store: ExampleStore, index: pd.DataFrame, slots: Iterable[int]) -> None:
    """Rewrites the index files of `slots` with the rows of `index` that fall in them."""
    write_slots(client, store.index_slot, index[INDEX_COLUMNS], index["sha256"].map(content_slot), slots)


def _chunks(rows: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def store_new_examples(
    client: S3Client, store: ExampleStore, bucket: str, rows: list[Any], image_size: int
) -> pd.DataFrame:
    """Decodes `rows` (manifest rows of images the store lacks, one per sha256), writes them
    into new packs, and returns their index rows. Each object is checked against the sha256
    collect recorded: one that changed since fails the task, which a retry or the next run
    collects again."""

    def load(row: Any) -> np.ndarray:
        body = get_bytes(client, raw_object(bucket, row.key))
        if hashlib.sha256(body).hexdigest() != row.sha256:
            raise PermanentStorageError(
                f"{raw_object(bucket, row.key)}: changed since it was collected; rerun the DAG"
            )
        return decode_rgb(body, image_size, row.key)

    facts: dict[str, dict[str, int | float | str]] = {}
    stored: list[dict[str, int | float | str]] = []  # index rows
    with tempfile.TemporaryDirectory(prefix="packs-") as scratch:
        open_packs: dict[str, PackWriter] = {}

        def finish(split: str) -> None:
            writer = open_packs.pop(split)
            members = writer.close()
            name = pack_id(members, image_size, PREPROCESSING_VERSION)
            upload_file(client, writer.path, store.pack(split, name))
            writer.path.unlink()
            stored.extend({"sha256": sha, "split": split, "pack": name, **facts.pop(sha)} for sha in members)

        done = 0
        for chunk in _chunks(rows, CHUNK_IMAGES):
            images = parallel_map(load, chunk)
            for row, image in zip(chunk, images, strict=True):
                split = split_of(row.sha256)
                if split not in open_packs:
                    open_packs[split] = PackWriter(Path(scratch) / f"{split}-{len(stored)}-{done}.tfrecord")
                open_packs[split].add(image, row.sha256)
                facts[row.sha256] = pixel_facts(image)
                if open_packs[split].full:
                    finish(split)
            done += len(chunk)
            del images
            log.info("processed %d/%d new images", done, len(rows))
        for split in [split for split in SPLITS if split in open_packs]:
            finish(split)
    return pd.DataFrame(stored, columns=INDEX_COLUMNS)
