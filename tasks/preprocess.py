"""Step 3: turn the clean manifest into a dataset: every image decoded, converted to RGB,
resized and split by its content hash, checked with Great Expectations (shapes, value range,
split fractions, labels per split, no content in two splits).

Only content the example store does not hold yet (for this image size and preprocessing
version) is read and decoded; the rest is reused (see tasks/examples.py). A dataset is named by
what it holds, so a night with the same data refers to the dataset already written.

The step runs in three parts, so that Airflow can spread it over its workers:
`plan_preprocessing` splits the clean manifest by content (tasks/partitions.py),
`preprocess_partition` stores one partition's new examples and checks its images (a mapped
task per partition), and `finish_dataset` adds up the partitions' statistics, runs the
dataset-level checks once and writes the dataset. `build_dataset` runs the three in one
process.

The split depends only on each image's bytes (sha256), so an image stays in the same split
on every night: tomorrow's test set contains today's test images, and never a training one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Iterable, Sequence
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
from tasks.partitions import Partition, content_slot, split_frame, write_parts
from tasks.records import DatasetRecord, JsonRecord, RecordJson
from tasks.run_documents import DatasetRef
from tasks.shards import SPLITS
from tasks.storage import S3Client, exists, parallel_map, put_csv, put_json, upload_tree
from tasks.validate import DataValidationError

__all__ = ["PreprocessResult", "build_dataset", "split_of"]

log = logging.getLogger(__name__)

SPLIT_TARGETS = {"train": 0.8, "validation": 0.1, "test": 0.1}
MIN_EXPECTED_PER_SPLIT = 5


@dataclass(frozen=True)
class PreprocessResult(JsonRecord):
    """What assemble_dataset hands on: the dataset record's URI and what it holds."""

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


def image_frames(facts: pd.DataFrame, rows: pd.DataFrame, splits: list[str]) -> dict[str, pd.DataFrame]:
    """The per-image frames the processed expectations look at: each row's pixel facts
    (tasks.examples.pixel_facts, not its pixels) and how many splits each content is in."""
    per_image = pd.DataFrame(
        {
            "sha256": rows["sha256"].to_numpy(),
            "class_name": rows["class_name"].to_numpy(),
            "split": splits,
            **{column: facts[column].to_numpy() for column in FACT_COLUMNS},
        }
    )
    per_content = per_image.groupby("sha256")["split"].nunique().rename("splits").reset_index()
    return {"images": per_image, "leakage": per_content}


def split_class_counts(rows: pd.DataFrame, splits: list[str]) -> pd.DataFrame:
    """Images per (split, class): the statistic a partition hands to the dataset checks."""
    frame = pd.DataFrame({"split": splits, "class_name": rows["class_name"].to_numpy()})
    return frame.groupby(["split", "class_name"]).size().rename("images").reset_index()


def count_frames(counts: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The dataset-level frames, from the partitions' images per (split, class) added up."""
    totals = counts.groupby(["split", "class_name"])["images"].sum()
    per_split_totals = totals.groupby(level="split").sum().reindex(SPLITS, fill_value=0)
    fractions = per_split_totals / max(int(per_split_totals.sum()), 1)
    per_split = pd.DataFrame(
        {
            "split": SPLITS,
            "fraction": fractions.to_numpy(),
            "deviation": [abs(fractions[s] - SPLIT_TARGETS[s]) for s in SPLITS],
        }
    )
    classes = sorted(set(counts["class_name"]))
    per_split_class = (
        totals.reindex(
            pd.MultiIndex.from_product([SPLITS, classes], names=["split", "class_name"]), fill_value=0
        )
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
    return {"splits": per_split, "labels": per_split_class}


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
    """Runs the processed-dataset suites of `frames`; returns the validator and a failure
    line, if any."""
    validator = Validator(docs_folder)
    outcomes = []
    for name, (expectations, key_column) in processed_expectations(config).items():
        if name in frames:
            outcomes += validator.run(f"processed_{name}", frames[name], expectations, key_column=key_column)
    log.info("processed-dataset checks:\n%s", table(outcomes))
    failures = [o for o in outcomes if not o.success]
    if not failures:
        return validator, None
    return validator, "; ".join(o.describe() for o in failures)


def checked_and_reported(
    client: S3Client, config: PipelineConfig, frames: dict[str, pd.DataFrame], stage: str, run_id: str
) -> str | None:
    """Runs the suites of `frames` and uploads their Data Docs and results under the run's
    reports (`stage`); returns the failure line, if any."""
    layout = run_layout(config, run_id)
    with tempfile.TemporaryDirectory(prefix="data-docs-") as scratch:
        validator, failure = check_processed(frames, config, Path(scratch))
        upload_tree(client, Path(scratch), layout.data_docs(stage))
    put_json(client, layout.validation_results(stage), validator.gate_results().to_json())
    log.info("Data Docs: %s", layout.data_docs_index(stage))
    return failure


@dataclass(frozen=True)
class ClassCount(JsonRecord):
    split: str
    class_name: str
    images: int


@dataclass(frozen=True)
class PartReport(JsonRecord):
    """`runs/<run>/processed/<part>.json`: what one preprocessing partition hands to
    assemble_dataset: its images per (split, class), its packs per split, and its gate's failure."""

    partition: str
    images: int
    counts: list[ClassCount]
    packs: dict[str, list[str]]  # pack URIs per split
    failure: str | None  # None: the partition's images passed the processed-data checks


@dataclass(frozen=True)
class PartProcessed(JsonRecord):
    uri: str  # the partition's processed/<part>.json: packs, counts, failures
    images: int
    images_decoded: int
    images_reused: int


def plan_preprocessing(
    client: S3Client, config: PipelineConfig, manifest_uri: str, run_id: str, count: int
) -> list[RecordJson]:
    """Splits the (clean) manifest by content into `count` partitions and writes each one's
    rows under the run; returns the partitions, each naming its rows' file."""
    return split_by_content(client, config, read_manifest(client, manifest_uri), run_id, count)


def split_by_content(
    client: S3Client, config: PipelineConfig, manifest: pd.DataFrame, run_id: str, count: int
) -> list[RecordJson]:
    """plan_preprocessing on a manifest already read."""
    frames = split_frame(manifest, "sha256", content_slot, count)
    return write_parts(client, frames, run_layout(config, run_id).clean_part)


def preprocess_partition(
    client: S3Client, config: PipelineConfig, partition: Partition, run_id: str
) -> PartProcessed:
    """Stores the examples of the partition's content that the store lacks, runs the per-image
    checks on its rows and writes what the dataset step needs: its packs and its images per
    (split, class). `config.class_names` are the run's resolved classes."""
    rows = read_manifest(client, partition.uri)
    store = example_store(config.bucket, config.image_size, PREPROCESSING_VERSION)
    index = read_index(client, store, partition.slots).drop_duplicates("sha256")
    index = index.set_index("sha256", drop=False)
    unique = rows.drop_duplicates("sha256")
    missing = [row for row in unique.itertuples(index=False) if row.sha256 not in index.index]
    log.info(
        "%s: %d images, %d already processed at %d px, %d to decode",
        partition.label,
        len(rows),
        len(unique) - len(missing),
        config.image_size,
        len(missing),
    )
    if missing:
        added = store_new_examples(client, store, config.bucket, missing, config.image_size)
        index = pd.concat([index.reset_index(drop=True), added]).set_index("sha256", drop=False)
        write_index(client, store, index, set(added["sha256"].map(content_slot)))
    members = index.loc[rows["sha256"].to_numpy()].reset_index(drop=True)
    splits = [split_of(sha256) for sha256 in rows["sha256"]]
    stage = f"processed/{partition.name}"
    failure = checked_and_reported(client, config, image_frames(members, rows, splits), stage, run_id)
    uri = run_layout(config, run_id).processed_part(partition.name)
    packs = {
        split: sorted(
            {str(store.pack(split, pack)) for pack in members.loc[members["split"] == split, "pack"]}
        )
        for split in SPLITS
    }
    counts = [
        ClassCount(str(row.split), str(row.class_name), int(row.images))
        for row in split_class_counts(rows, splits).itertuples(index=False)
    ]
    report = PartReport(
        partition.label, len(rows), counts, packs, f"{partition.label}: {failure}" if failure else None
    )
    put_json(client, uri, report.to_json())
    return PartProcessed(str(uri), len(rows), len(missing), len(unique) - len(missing))


def finish_dataset(
    client: S3Client,
    config: PipelineConfig,
    manifest_uri: str,
    parts: list[PartProcessed],
    run_id: str,
    fingerprint: str = "",
) -> PreprocessResult:
    """Checks the dataset as a whole from the partitions' statistics and writes it (labels.csv,
    then dataset.json) unless one with the same content exists. `fingerprint`, where the gate
    knows it already, spares reading the manifest when the dataset exists."""
    processed = parts
    reports = parallel_map(lambda part: PartReport.read(client, part.uri), processed)
    counts = pd.DataFrame([count.to_json() for report in reports for count in report.counts])
    if counts.empty:
        counts = pd.DataFrame(columns=["split", "class_name", "images"])
    failures = [report.failure for report in reports if report.failure]
    whole = checked_and_reported(client, config, count_frames(counts), "processed", run_id)
    if whole:
        failures.append(whole)
    if failures:
        raise DataValidationError("processed dataset failed: " + "; ".join(failures))
    per_split = counts.groupby("split")["images"].sum()
    split_counts = {split: int(per_split.get(split, 0)) for split in SPLITS}
    labelled = None if fingerprint else labelled_rows(client, config, manifest_uri)
    if labelled is not None:
        fingerprint = dataset_fingerprint(list(labelled["sha256"]), list(labelled["label"]))
    dataset_id = dataset_id_for(fingerprint, config.image_size, list(config.class_names))
    dataset = dataset_layout(config.bucket, dataset_id)
    if exists(client, dataset.record):
        log.info("dataset %s exists already (same content): nothing written", dataset_id)
    else:
        if labelled is None:
            labelled = labelled_rows(client, config, manifest_uri)
        put_csv(client, dataset.labels, labelled)
        packs = {
            split: sorted({uri for report in reports for uri in report.packs[split]}) for split in SPLITS
        }
        record = DatasetRecord(
            dataset_id=dataset_id,
            fingerprint=fingerprint,
            image_size=config.image_size,
            class_names=list(config.class_names),
            split_counts=split_counts,
            packs=packs,
            labels_uri=str(dataset.labels),
            preprocessing_version=PREPROCESSING_VERSION,
            manifest_uri=manifest_uri,
            created_by_run=run_id,
        )
        put_json(client, dataset.record, record.to_json())
    put_json(
        client,
        run_layout(config, run_id).dataset_ref,
        DatasetRef(dataset_uri=str(dataset.record), dataset_id=dataset_id).to_json(),
    )
    decoded = sum(part.images_decoded for part in processed)
    reused = sum(part.images_reused for part in processed)
    log.info(
        "dataset %s: %d images %s from %d partition(s) (%d decoded, %d reused)",
        dataset_id,
        sum(split_counts.values()),
        split_counts,
        len(processed),
        decoded,
        reused,
    )
    return PreprocessResult(str(dataset.record), dataset_id, fingerprint, split_counts, decoded, reused)


def labels_of(class_names_of_rows: Iterable[str], class_names: Sequence[str]) -> list[int]:
    """Each row's label: its class's position among the run's classes."""
    label_of = {name: number for number, name in enumerate(class_names)}
    return [label_of[name] for name in class_names_of_rows]


def labelled_rows(client: S3Client, config: PipelineConfig, manifest_uri: str) -> pd.DataFrame:
    """The dataset's labels.csv rows: each clean row's content, label and split."""
    manifest = read_manifest(client, manifest_uri)
    return pd.DataFrame(
        {
            "sha256": manifest["sha256"],
            "label": labels_of(manifest["class_name"], config.class_names),
            "split": [split_of(sha256) for sha256 in manifest["sha256"]],
        }
    )


def build_dataset(
    client: S3Client, config: PipelineConfig, manifest_uri: str, run_id: str, partitions: int = 1
) -> PreprocessResult:
    """The whole preprocess step in one process: partition the manifest by content, process
    every partition in turn, then check and write the dataset. The DAG runs the same three
    functions as separate (mapped) tasks."""
    planned = plan_preprocessing(client, config, manifest_uri, run_id, partitions)
    parts = [
        preprocess_partition(client, config, Partition.from_xcom(partition), run_id) for partition in planned
    ]
    return finish_dataset(client, config, manifest_uri, parts, run_id)
