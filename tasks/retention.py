"""Retention: remove what older runs no longer need, so the bucket does not grow night after
night with intermediates nobody reads.

Kept: the newest `keep_runs` runs (and the current one); every run that produced a model
version (its manifest is the version's lineage); every dataset a kept run or a model version
refers to; every pack of examples a kept dataset refers to. Never touched: `raw/`, the
catalog, and anything under `models/` (every version, the production pointer, and so all a
rollback needs). Removed: the other runs' `runs/<run>/` and `reports/<run>/`, datasets no
longer referred to, and packs no kept dataset holds (their rows leave the example index
first, so a later run decodes such images again instead of trusting a missing pack).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from tasks.examples import read_index, write_index
from tasks.layout import (
    ExampleStore,
    dataset_layout,
    datasets_root,
    examples_root,
    legacy_run_segment,
    models_root,
    run_layout_of,
    run_segment,
    runs_root,
)
from tasks.model_card import Deployment, ModelCard
from tasks.partitions import content_slot
from tasks.records import DatasetRecord, JsonRecord
from tasks.registry import Registry
from tasks.run_documents import DatasetRef
from tasks.storage import (
    S3Client,
    S3Uri,
    delete_keys,
    delete_prefix,
    exists,
    iter_objects,
    list_folders,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionReport(JsonRecord):
    runs_kept: int
    runs_removed: int
    datasets_removed: int
    packs_removed: int
    objects_deleted: int


def run_ages(client: S3Client, bucket: str) -> dict[str, datetime]:
    """Run folder -> when it was last written to."""
    newest: dict[str, datetime] = {}
    root = runs_root(bucket)
    for item in iter_objects(client, root):
        segment = item["Key"][len(root.key) :].split("/", 1)[0]
        newest[segment] = max(newest.get(segment, item["LastModified"]), item["LastModified"])
    return newest


def published_lineage(client: S3Client, bucket: str) -> tuple[set[str], set[str]]:
    """(run folders, dataset ids) that published model versions of any model came from."""
    runs: set[str] = set()
    datasets: set[str] = set()
    for model_name in list_folders(client, models_root(bucket)):
        registry = Registry(client, bucket, model_name)
        for number in registry.version_numbers():
            version = registry.layout.version(number)
            if exists(client, version.deployment):
                run_id = Deployment.read(client, version.deployment).run_id
                # Versions published before one folder per run id came from the shared folder.
                runs |= {run_segment(run_id), legacy_run_segment(run_id)}
            if exists(client, version.model_card):
                dataset_id = ModelCard.read(client, version.model_card).dataset.dataset_id
                if dataset_id:
                    datasets.add(dataset_id)
    return runs, datasets


def remove_old_runs(client: S3Client, bucket: str, *, current_run_id: str, keep_runs: int) -> RetentionReport:
    ages = run_ages(client, bucket)
    newest_first = sorted(ages, key=lambda segment: ages[segment], reverse=True)
    published_runs, published_datasets = published_lineage(client, bucket)
    kept = set(newest_first[:keep_runs]) | {run_segment(current_run_id)} | (published_runs & set(ages))
    deleted = 0
    removed_runs = [segment for segment in newest_first if segment not in kept]
    for segment in removed_runs:
        layout = run_layout_of(bucket, segment)
        deleted += delete_prefix(client, layout.root.folder())
        deleted += delete_prefix(client, layout.reports.folder())

    kept_datasets = set(published_datasets)
    for segment in kept:
        reference = run_layout_of(bucket, segment).dataset_ref
        if exists(client, reference):
            kept_datasets.add(DatasetRef.read(client, reference).dataset_id)
    referenced_packs: set[str] = set()
    removed_datasets = 0
    for dataset_id in list_folders(client, datasets_root(bucket)):
        dataset = dataset_layout(bucket, dataset_id)
        if dataset_id in kept_datasets:
            if exists(client, dataset.record):
                for uris in DatasetRecord.read(client, dataset.record).packs.values():
                    referenced_packs.update(uris)
            continue
        deleted += delete_prefix(client, dataset.root.folder())
        removed_datasets += 1

    removed_packs = 0
    for store_name in list_folders(client, examples_root(bucket)):
        store = ExampleStore(examples_root(bucket).join(store_name))
        stale = [
            item["Key"]
            for item in iter_objects(client, store.root.folder())
            if item["Key"].endswith(".tfrecord") and str(S3Uri(bucket, item["Key"])) not in referenced_packs
        ]
        if not stale:
            continue
        stale_ids = {key.rsplit("/", 1)[-1].removesuffix(".tfrecord") for key in stale}
        index = read_index(client, store)
        dropped = index["pack"].isin(stale_ids)
        write_index(client, store, index[~dropped], set(index.loc[dropped, "sha256"].map(content_slot)))
        deleted += delete_keys(client, bucket, stale)
        removed_packs += len(stale)
    report = RetentionReport(len(kept), len(removed_runs), removed_datasets, removed_packs, deleted)
    log.info(
        "retention: kept %d runs (newest %d, plus those behind model versions); removed %d runs, "
        "%d datasets, %d packs (%d objects)",
        report.runs_kept,
        keep_runs,
        report.runs_removed,
        report.datasets_removed,
        report.packs_removed,
        report.objects_deleted,
    )
    return report
