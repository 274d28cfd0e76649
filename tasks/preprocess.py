"""Step 3: decode, convert to RGB, resize, split by content hash, and write TFRecord shards.

The split depends only on each image's bytes (sha256), so an image stays in the same split
on every night: tomorrow's test set contains today's test images, and never a training one.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from tasks.collect import read_manifest
from tasks.config import PipelineConfig, run_partition
from tasks.shards import SPLITS, write_split
from tasks.storage import (
    S3Client,
    S3Uri,
    StorageError,
    get_bytes,
    parallel_map,
    put_json,
    upload_file,
)

log = logging.getLogger(__name__)

# Percent of the hash space per split: train 80, validation 10, test 10.
SPLIT_BOUNDS = {"train": 80, "validation": 90, "test": 100}


class ImageDecodeError(ValueError):
    """An object that is not a usable image; the message names the key."""


@dataclass(frozen=True)
class PreprocessResult:
    dataset_uri: str
    fingerprint: str
    split_counts: dict[str, int]


def split_of(sha256: str) -> str:
    bucket = int(sha256[:8], 16) % 100
    return next(split for split, bound in SPLIT_BOUNDS.items() if bucket < bound)


def decode_image(body: bytes, image_size: int, key: str) -> np.ndarray:
    """Any PIL-readable image -> image_size x image_size x 3 uint8 RGB."""
    try:
        with Image.open(io.BytesIO(body)) as image:
            rgb = image.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ImageDecodeError(f"{key}: not a decodable image ({error})") from error


def dataset_fingerprint(sha256s: list[str], labels: list[int]) -> str:
    """Identifies the labelled content, independent of object names and listing order."""
    digest = hashlib.sha256()
    for sha256, label in sorted(zip(sha256s, labels, strict=True)):
        digest.update(f"{sha256}:{label}\n".encode())
    return digest.hexdigest()


def dataset_uri_for(config: PipelineConfig, run_id: str) -> S3Uri:
    return S3Uri(config.bucket, f"{config.runs_prefix}{run_partition(run_id)}/dataset")


def preprocess(
    client: S3Client, config: PipelineConfig, manifest_uri: str, run_id: str
) -> PreprocessResult:
    """Writes shards plus `dataset.json` (written last: its presence means the shards are whole)."""
    manifest = read_manifest(client, manifest_uri)
    label_of = {name: index for index, name in enumerate(config.class_names)}
    rows = list(manifest.itertuples(index=False))

    def load(row) -> np.ndarray:
        body = get_bytes(client, S3Uri(config.bucket, row.key))
        if hashlib.sha256(body).hexdigest() != row.sha256:
            raise StorageError(
                f"s3://{config.bucket}/{row.key}: changed since it was collected; rerun the DAG"
            )
        return decode_image(body, config.image_size, row.key)

    images = parallel_map(load, rows)
    labels = [label_of[row.class_name] for row in rows]
    splits = [split_of(row.sha256) for row in rows]
    dataset_uri = dataset_uri_for(config, run_id)
    shard_uris: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="shards-") as scratch:
        for split in SPLITS:
            chosen = [index for index, name in enumerate(splits) if name == split]
            records = ((images[i], labels[i], rows[i].sha256) for i in chosen)
            paths = write_split(Path(scratch), split, records)
            targets = [dataset_uri.join(path.name) for path in paths]
            parallel_map(lambda pair: upload_file(client, *pair), list(zip(paths, targets, strict=True)))
            shard_uris[split] = [str(target) for target in targets]
    split_counts = {split: splits.count(split) for split in SPLITS}
    empty = [split for split, count in split_counts.items() if count == 0]
    if empty:
        raise ValueError(
            f"{len(rows)} images leave the {', '.join(empty)} split(s) empty; add more images"
        )
    fingerprint = dataset_fingerprint([row.sha256 for row in rows], labels)
    put_json(
        client,
        dataset_uri.join("dataset.json"),
        {
            "manifest_uri": manifest_uri,
            "fingerprint": fingerprint,
            "image_size": config.image_size,
            "class_names": list(config.class_names),
            "split_counts": split_counts,
            "shards": shard_uris,
            "pixel_format": "uint8 RGB, scaled to [0, 1] float32 on read",
        },
    )
    log.info("preprocessed %d images into %s: %s", len(rows), dataset_uri, split_counts)
    return PreprocessResult(str(dataset_uri.join("dataset.json")), fingerprint, split_counts)
