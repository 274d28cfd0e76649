"""Step 3: decode, convert to RGB, resize, split by content hash, write TFRecord shards, and
check the processed dataset with Great Expectations (shapes, value range, split fractions,
labels per split, and no content in two splits).

The split depends only on each image's bytes (sha256), so an image stays in the same split
on every night: tomorrow's test set contains today's test images, and never a training one.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.collect import read_manifest
from tasks.config import PipelineConfig
from tasks.expectations import Validator, table
from tasks.images import decode_rgb
from tasks.layout import raw_object, run_layout
from tasks.shards import SPLITS, write_split
from tasks.storage import S3Client, StorageError, get_bytes, parallel_map, put_json, upload_tree
from tasks.validate import DataValidationError

log = logging.getLogger(__name__)

# Percent of the hash space per split: train 80, validation 10, test 10.
SPLIT_BOUNDS = {"train": 80, "validation": 90, "test": 100}
SPLIT_TARGETS = {"train": 0.8, "validation": 0.1, "test": 0.1}
MIN_EXPECTED_PER_SPLIT = 5


@dataclass(frozen=True)
class PreprocessResult:
    dataset_uri: str
    fingerprint: str
    split_counts: dict[str, int]


def split_of(sha256: str) -> str:
    bucket = int(sha256[:8], 16) % 100
    return next(split for split, bound in SPLIT_BOUNDS.items() if bucket < bound)


def dataset_fingerprint(sha256s: list[str], labels: list[int]) -> str:
    """Identifies the labelled content, independent of object names and listing order."""
    digest = hashlib.sha256()
    for sha256, label in sorted(zip(sha256s, labels, strict=True)):
        digest.update(f"{sha256}:{label}\n".encode())
    return digest.hexdigest()


def processed_frames(
    images: list[np.ndarray], rows: pd.DataFrame, splits: list[str]
) -> dict[str, pd.DataFrame]:
    """What the processed-dataset expectations look at, one frame per suite."""
    scaled_min = [float(image.min()) / 255.0 for image in images]
    scaled_max = [float(image.max()) / 255.0 for image in images]
    per_image = pd.DataFrame(
        {
            "sha256": rows["sha256"].to_numpy(),
            "class_name": rows["class_name"].to_numpy(),
            "split": splits,
            "height": [image.shape[0] for image in images],
            "width": [image.shape[1] for image in images],
            "channels": [image.shape[2] if image.ndim == 3 else 1 for image in images],
            "dtype": [str(image.dtype) for image in images],
            "min_value": scaled_min,
            "max_value": scaled_max,
        }
    )
    fractions = per_image["split"].value_counts(normalize=True).reindex(SPLITS, fill_value=0.0)
    per_split = pd.DataFrame(
        {
            "split": SPLITS,
            "fraction": fractions.to_numpy(),
            "deviation": [abs(fractions[s] - SPLIT_TARGETS[s]) for s in SPLITS],
        }
    )
    classes = sorted(set(per_image["class_name"]))
    per_split_class = (
        per_image.groupby(["split", "class_name"])
        .size()
        .reindex(pd.MultiIndex.from_product([SPLITS, classes], names=["split", "class_name"]), fill_value=0)
        .rename("images")
        .reset_index()
    )
    class_totals = per_split_class.groupby("class_name")["images"].transform("sum")
    expected = class_totals * per_split_class["split"].map(SPLIT_TARGETS)
    # Every class must reach train; validation and test must hold a class wherever chance alone
    # would give it at least MIN_EXPECTED_PER_SPLIT images.
    required = ((per_split_class["split"] == "train") | (expected >= MIN_EXPECTED_PER_SPLIT)).astype(int)
    per_split_class["shortfall"] = (required - per_split_class["images"]).clip(lower=0)
    per_split_class["split_class"] = per_split_class["split"] + "/" + per_split_class["class_name"]
    per_content = per_image.groupby("sha256")["split"].nunique().rename("splits").reset_index()
    return {"images": per_image, "splits": per_split, "labels": per_split_class, "leakage": per_content}


def processed_expectations(config: PipelineConfig) -> dict[str, tuple[list[Any], str | None]]:
    import great_expectations.expectations as gxe

    size = config.image_size
    return {
        "images": (
            [
                gxe.ExpectColumnValuesToBeInSet(column="height", value_set=[size]),
                gxe.ExpectColumnValuesToBeInSet(column="width", value_set=[size]),
                gxe.ExpectColumnValuesToBeInSet(column="channels", value_set=[3]),
                gxe.ExpectColumnValuesToBeInSet(column="dtype", value_set=["uint8"]),
                gxe.ExpectColumnValuesToBeBetween(column="min_value", min_value=0.0, max_value=1.0),
                gxe.ExpectColumnValuesToBeBetween(column="max_value", min_value=0.0, max_value=1.0),
            ],
            "sha256",
        ),
        "splits": (
            [gxe.ExpectColumnValuesToBeBetween(column="deviation", max_value=config.split_tolerance)],
            "split",
        ),
        "labels": ([gxe.ExpectColumnValuesToBeBetween(column="shortfall", max_value=0)], "split_class"),
        "leakage": ([gxe.ExpectColumnValuesToBeInSet(column="splits", value_set=[1])], "sha256"),
    }


def check_processed(
    frames: dict[str, pd.DataFrame], config: PipelineConfig, docs_folder: Path
) -> tuple[Validator, str | None]:
    """Runs the processed-dataset suites; returns the validator and a failure line, if any."""
    validator = Validator(docs_folder)
    outcomes = []
    for name, (expectations, key_column) in processed_expectations(config).items():
        outcomes += validator.run(f"processed_{name}", frames[name], expectations, key_column=key_column)
    log.info("processed-dataset checks:\n%s", table(outcomes))
    failures = [o for o in outcomes if not o.success]
    if not failures:
        return validator, None
    return validator, "processed dataset failed: " + "; ".join(o.describe() for o in failures)


def build_dataset(
    client: S3Client, config: PipelineConfig, manifest_uri: str, run_id: str
) -> PreprocessResult:
    """Writes shards plus `dataset.json` (written last: its presence means the shards are whole).
    `config.class_names` are the run's resolved classes, in output order."""
    manifest = read_manifest(client, manifest_uri)
    layout = run_layout(config, run_id)
    label_of = {name: index for index, name in enumerate(config.class_names)}
    rows = list(manifest.itertuples(index=False))

    def load(row) -> np.ndarray:
        body = get_bytes(client, raw_object(config.bucket, row.key))
        if hashlib.sha256(body).hexdigest() != row.sha256:
            raise StorageError(
                f"{raw_object(config.bucket, row.key)}: changed since it was collected; rerun the DAG"
            )
        return decode_rgb(body, config.image_size, row.key)

    images = parallel_map(load, rows)
    labels = [label_of[row.class_name] for row in rows]
    splits = [split_of(row.sha256) for row in rows]
    with tempfile.TemporaryDirectory(prefix="data-docs-") as scratch:
        frames = processed_frames(images, manifest, splits)
        validator, failure = check_processed(frames, config, Path(scratch))
        upload_tree(client, Path(scratch), layout.data_docs("processed"))
    put_json(client, layout.validation_results("processed"), validator.results)
    log.info("Data Docs: %s", layout.data_docs_index("processed"))
    if failure:
        raise DataValidationError(failure)
    shard_uris: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="shards-") as scratch:
        for split in SPLITS:
            chosen = [index for index, name in enumerate(splits) if name == split]
            records = ((images[i], labels[i], rows[i].sha256) for i in chosen)
            paths = write_split(Path(scratch), split, records)
            shard_uris[split] = [str(layout.shard(path.name)) for path in paths]
        upload_tree(client, Path(scratch), layout.dataset)
    split_counts = {split: splits.count(split) for split in SPLITS}
    fingerprint = dataset_fingerprint([row.sha256 for row in rows], labels)
    put_json(
        client,
        layout.dataset_record,
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
    log.info("preprocessed %d images into %s: %s", len(rows), layout.dataset, split_counts)
    return PreprocessResult(str(layout.dataset_record), fingerprint, split_counts)
