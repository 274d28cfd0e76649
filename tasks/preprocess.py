"""Step 3: turn the clean manifest into a dataset: every image decoded, converted to RGB,
resized and split by its content hash, checked with Great Expectations (shapes, value range,
split fractions, labels per split, no content in two splits).

Only content the example store does not hold yet (for this image size and preprocessing
version) is read and decoded; the rest is reused (see tasks/examples.py). A dataset is named by
what it holds, so a night with the same data refers to the dataset already written.

The split depends only on each image's bytes (sha256), so an image stays in the same split
on every night: tomorrow's test set contains today's test images, and never a training one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.collect import read_manifest
from tasks.config import PipelineConfig
from tasks.examples import (
    FACT_COLUMNS,
    PREPROCESSING_VERSION,
    read_index,
    split_of,
    store_new_examples,
    write_index,
)
from tasks.expectations import Validator, table
from tasks.layout import dataset_layout, example_store, run_layout
from tasks.shards import SPLITS
from tasks.storage import S3Client, exists, put_bytes, put_json, upload_tree
from tasks.validate import DataValidationError

__all__ = ["PreprocessResult", "build_dataset", "split_of"]

log = logging.getLogger(__name__)

SPLIT_TARGETS = {"train": 0.8, "validation": 0.1, "test": 0.1}
MIN_EXPECTED_PER_SPLIT = 5


@dataclass(frozen=True)
class PreprocessResult:
    dataset_uri: str  # the dataset's dataset.json
    dataset_id: str
    fingerprint: str
    split_counts: dict[str, int]
    images_decoded: int  # new content this run read and decoded
    images_reused: int  # content the example store already held


def dataset_fingerprint(sha256s: list[str], labels: list[int]) -> str:
    """Identifies the labelled content, independent of object names and listing order."""
    digest = hashlib.sha256()
    for sha256, label in sorted(zip(sha256s, labels, strict=True)):
        digest.update(f"{sha256}:{label}\n".encode())
    return digest.hexdigest()


def dataset_id_for(fingerprint: str, image_size: int, class_names: list[str]) -> str:
    """A dataset's name: its labelled content, image size, class names and preprocessing."""
    key = json.dumps([fingerprint, image_size, class_names, PREPROCESSING_VERSION])
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def processed_frames(facts: pd.DataFrame, rows: pd.DataFrame, splits: list[str]) -> dict[str, pd.DataFrame]:
    """What the processed-dataset expectations look at, one frame per suite. `facts` holds
    each row's pixel facts (tasks.examples.pixel_facts), not its pixels."""
    per_image = pd.DataFrame(
        {
            "sha256": rows["sha256"].to_numpy(),
            "class_name": rows["class_name"].to_numpy(),
            "split": splits,
            **{column: facts[column].to_numpy() for column in FACT_COLUMNS},
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
    """Stores the examples the store lacks, checks the processed dataset, and writes the
    dataset (labels.csv, then dataset.json) unless one with the same content exists.
    `config.class_names` are the run's resolved classes, in output order."""
    manifest = read_manifest(client, manifest_uri)
    layout = run_layout(config, run_id)
    store = example_store(config.bucket, config.image_size, PREPROCESSING_VERSION)
    index = read_index(client, store).drop_duplicates("sha256").set_index("sha256", drop=False)
    unique = manifest.drop_duplicates("sha256")
    missing = [row for row in unique.itertuples(index=False) if row.sha256 not in index.index]
    log.info(
        "%d images: %d already processed at %d px, %d to decode",
        len(manifest),
        len(unique) - len(missing),
        config.image_size,
        len(missing),
    )
    if missing:
        added = store_new_examples(client, store, config.bucket, missing, config.image_size)
        index = pd.concat([index.reset_index(drop=True), added]).set_index("sha256", drop=False)
        write_index(client, store, index)
    members = index.loc[manifest["sha256"].to_numpy()]
    label_of = {name: number for number, name in enumerate(config.class_names)}
    labels = [label_of[name] for name in manifest["class_name"]]
    splits = [split_of(sha256) for sha256 in manifest["sha256"]]
    with tempfile.TemporaryDirectory(prefix="data-docs-") as scratch:
        frames = processed_frames(members.reset_index(drop=True), manifest, splits)
        validator, failure = check_processed(frames, config, Path(scratch))
        upload_tree(client, Path(scratch), layout.data_docs("processed"))
    put_json(client, layout.validation_results("processed"), validator.results)
    log.info("Data Docs: %s", layout.data_docs_index("processed"))
    if failure:
        raise DataValidationError(failure)
    fingerprint = dataset_fingerprint(list(manifest["sha256"]), labels)
    dataset_id = dataset_id_for(fingerprint, config.image_size, list(config.class_names))
    dataset = dataset_layout(config.bucket, dataset_id)
    split_counts = {split: splits.count(split) for split in SPLITS}
    if exists(client, dataset.record):
        log.info("dataset %s exists already (same content): nothing written", dataset_id)
    else:
        labelled = pd.DataFrame({"sha256": manifest["sha256"], "label": labels, "split": splits})
        put_bytes(client, dataset.labels, labelled.to_csv(index=False).encode(), "text/csv")
        packs = {
            split: sorted(
                {str(store.pack(split, pack)) for pack in members.loc[members["split"] == split, "pack"]}
            )
            for split in SPLITS
        }
        put_json(
            client,
            dataset.record,
            {
                "dataset_id": dataset_id,
                "fingerprint": fingerprint,
                "image_size": config.image_size,
                "class_names": list(config.class_names),
                "split_counts": split_counts,
                "packs": packs,
                "labels_uri": str(dataset.labels),
                "preprocessing_version": PREPROCESSING_VERSION,
                "manifest_uri": manifest_uri,
                "created_by_run": run_id,
                "pixel_format": "uint8 RGB, scaled to [0, 1] float32 on read",
            },
        )
    put_json(client, layout.dataset_ref, {"dataset_uri": str(dataset.record), "dataset_id": dataset_id})
    log.info(
        "dataset %s: %d images %s (%d decoded, %d reused)",
        dataset_id,
        len(manifest),
        split_counts,
        len(missing),
        len(unique) - len(missing),
    )
    return PreprocessResult(
        str(dataset.record), dataset_id, fingerprint, split_counts, len(missing), len(unique) - len(missing)
    )
