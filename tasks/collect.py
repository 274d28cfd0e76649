"""Step 1: list the raw images in S3 and write the run's manifest, one row per object.

Raw-data contract: `s3://<bucket>/<raw_prefix><class_name>/<file>`; the first path segment
under the prefix is the label. The run's classes are the `class_names` Param or, when it is
empty, the folders under the prefix, sorted; `manifest.json` records which. Each object is
downloaded (in parallel), hashed and decoded once, so the manifest records what the
data-quality gate needs: content hash, format, size, mode and, for anything that is not a
usable image, why.

A catalog in the bucket remembers those facts per key with the ETag and size they were read
at; an object whose ETag and size are unchanged is not read again. The catalog is only a
cache: without it every object is read, and the manifest comes out the same.

The step runs in three parts, so that Airflow can spread it over its workers: `plan_collection`
lists the prefix once and splits the keys into partitions (tasks/partitions.py),
`collect_partition` reads one partition's objects (a mapped task per partition) and
`merge_manifest` joins the parts in key order. The manifest is the same whatever the number of
partitions. `collect_manifest` runs the three in one process.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from collections import Counter
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import PurePosixPath
from typing import Any

import pandas as pd

from tasks.config import CLASS_NAME_PATTERN, PipelineConfig
from tasks.images import ImageFacts, inspect, unsafe_key
from tasks.inventory import fetch_inventory, inventory_listing
from tasks.kept_plans import KeptPlan, keep_plan, plan_digest, take_kept_plan
from tasks.layout import catalog_slot, kept_plan, raw_object, raw_root, run_layout
from tasks.listing import iter_objects_parallel, listing_frame
from tasks.noise import noise_kind
from tasks.partitions import (
    Partition,
    key_slot,
    partition_count,
    read_slots,
    split_frame,
    write_parts,
    write_slots,
)
from tasks.records import JsonRecord, RecordJson
from tasks.run_documents import ManifestSummary
from tasks.storage import (
    PermanentStorageError,
    S3Client,
    S3Uri,
    ensure_bucket,
    get_bytes,
    parallel_map,
    put_bytes,
    put_csv,
    put_json,
)

log = logging.getLogger(__name__)

# One row of a listing, manifest or catalog CSV as pandas gives it (column -> value; the
# columns are MANIFEST_COLUMNS, the types parse_manifest's).
ManifestRow = dict[str, Any]
FACT_COLUMNS = ["sha256", "decodable", "format", "width", "height", "mode", "channels", "reason"]
MANIFEST_COLUMNS = [
    "key",
    "class_name",
    "extension",
    "bytes",
    "etag",
    "last_modified",
    "sha256",
    "decodable",
    "format",
    "width",
    "height",
    "mode",
    "channels",
    "reason",
]
PROGRESS_EVERY = 500


@dataclass(frozen=True)
class CollectResult:
    manifest_uri: str
    object_count: int
    images_per_class: dict[str, int]
    class_names: list[str]  # the run's classes, in output order
    class_names_from: str  # "class_names Param" or "raw folders"
    objects_read: int  # new or changed objects downloaded this run
    objects_unchanged: int  # facts taken from the catalog
    objects_undecodable: int = 0


def class_of(key: str, raw_prefix: str) -> str | None:
    """The label an object key carries: the folder right under the raw prefix, if any."""
    relative = key[len(raw_prefix) :]
    folder, separator, _ = relative.partition("/")
    return folder if separator and folder else None


def resolve_classes(config: PipelineConfig, keys: list[str]) -> tuple[list[str], str]:
    """The run's classes: the Param when given, else every usable folder name under the raw
    prefix, sorted (objects elsewhere are quarantined by the gate)."""
    if config.class_names:
        return list(config.class_names), "class_names Param"
    folders = {class_of(key, config.raw_prefix) for key in keys} - {None}
    classes = sorted(name for name in folders if name and re.search(CLASS_NAME_PATTERN, name))
    if len(classes) < 2:
        raise PermanentStorageError(
            f"{raw_root(config)}: found {len(classes)} class folder(s) {classes}; a classifier needs "
            f"at least two, as {config.raw_prefix}<class_name>/<file> (or set the class_names Param)"
        )
    return classes, "raw folders"


@dataclass(frozen=True)
class CollectionPlan:
    """What the listing found and how collect is split: one Partition per mapped task."""

    class_names: list[str]
    class_names_from: str
    objects: int
    partitions: list[RecordJson]  # Partition.to_xcom(), each naming its listing part
    skipped: dict[str, int]  # objects left out as noise (tasks/noise.py), per kind
    taken_from_run: str = ""  # the run whose plan of the same report this one took; "" when planned

    def mapped(self) -> list[RecordJson]:
        """One XCom value per mapped collect instance: its partition and the run's classes
        (read back as a Partition and as PlannedClasses)."""
        classes = PlannedClasses(self.class_names, self.class_names_from, self.skipped).to_json()
        return [{**partition, **classes} for partition in self.partitions]


@dataclass(frozen=True)
class PlannedClasses(JsonRecord):
    """The classes plan_partitions resolved, carried by every partition it maps."""

    class_names: list[str]
    class_names_from: str
    skipped: dict[str, int]


@dataclass(frozen=True)
class PartCollected(JsonRecord):
    """One collect partition's result: its manifest part and what it read."""

    manifest_part_uri: str
    objects: int
    objects_read: int
    objects_unchanged: int
    objects_new: int = 0  # of objects_read: not in the catalog before (the rest changed)
    objects_removed: int = 0  # in the catalog, no longer listed
    sha256: str = ""  # of the manifest part's bytes: validate knows a night it has gated


def plan_collection(client: S3Client, config: PipelineConfig, run_id: str) -> CollectionPlan:
    """Lists raw/ once (its class folders and key ranges concurrently, or from the bucket's
    S3 Inventory report where `inventory_uri` names one), resolves the classes,
    chooses the partition count and writes each partition's share of the listing (key, size,
    ETag, last modified) under the run. A report with the same rows as the last one planned
    from takes that plan's listing parts by copy (tasks/kept_plans.py)."""
    ensure_bucket(client, config.bucket)
    if not config.inventory_uri:
        return plan_listed(
            client, config, run_id, listing_frame(iter_objects_parallel(client, raw_root(config)))
        )
    report = fetch_inventory(client, S3Uri.parse(config.inventory_uri), config.bucket)
    kept = kept_plan(config, plan_digest(config, report.digests))
    taken = take_kept_plan(client, config, run_id, kept)
    if taken:
        memory, partitions = taken
        log.info("classes (%s): %s", memory.class_names_from, ", ".join(memory.class_names))
        return CollectionPlan(
            memory.class_names,
            memory.class_names_from,
            memory.objects,
            [partition.to_xcom() for partition in partitions],
            memory.skipped,
            memory.planned_by_run,
        )
    plan = plan_listed(client, config, run_id, inventory_listing(client, report, config.raw_prefix))
    memory = KeptPlan(
        plan.class_names, plan.class_names_from, plan.objects, len(plan.partitions), plan.skipped, run_id
    )
    keep_plan(client, config, run_id, kept, memory)
    return plan


def plan_listed(client: S3Client, config: PipelineConfig, run_id: str, found: pd.DataFrame) -> CollectionPlan:
    """The plan of the objects `found` (a listing frame): noise left out, classes resolved,
    the rest split into partitions, each partition's listing part written under the run."""
    raw_uri = raw_root(config)
    kinds = [noise_kind(key, config.raw_prefix, config.ignore_patterns) for key in found["key"].tolist()]
    skipped = Counter(kind for kind in kinds if kind)
    listed = found[[kind is None for kind in kinds]] if skipped else found
    if skipped:
        log.info(
            "skipped %d objects that are not data: %s",
            sum(skipped.values()),
            ", ".join(f"{kind} {count}" for kind, count in skipped.most_common()),
        )
    if listed.empty:
        raise PermanentStorageError(
            f"{raw_uri}: no objects to train on; upload images as "
            f"{config.raw_prefix}<class_name>/<file> (see README, raw-data contract)"
        )
    class_names, class_names_from = resolve_classes(config, listed["key"].tolist())
    log.info("classes (%s): %s", class_names_from, ", ".join(class_names))
    count = partition_count(len(listed), config.partitions)
    frames = split_frame(listed, "key", key_slot, count)
    partitions = write_parts(client, frames, run_layout(config, run_id).listing_part)
    log.info("listed %d objects under %s: %d partition(s)", len(listed), raw_uri, count)
    return CollectionPlan(class_names, class_names_from, len(listed), partitions, dict(skipped))


def collect_partition(
    client: S3Client, config: PipelineConfig, partition: Partition, run_id: str
) -> PartCollected:
    """Hashes and inspects the partition's new or changed objects, takes the rest from the
    catalog, and writes the partition's manifest part and the catalog slots that changed."""
    listing = pd.read_csv(
        io.BytesIO(get_bytes(client, S3Uri.parse(partition.uri))),
        dtype={"key": "string", "etag": "string", "last_modified": "string"},
        keep_default_na=False,
    )
    known = read_catalog(client, config, partition.slots)
    summaries = listing.to_dict("records")
    unchanged = [still_current(known.get(item["key"]), item) for item in summaries]
    to_read = sum(1 for cached in unchanged if cached is None)
    log.info(
        "%s: %d objects, %d new or changed to read, %d unchanged (catalog)",
        partition.label,
        len(summaries),
        to_read,
        len(summaries) - to_read,
    )
    done = 0

    def examine(pair: tuple[ManifestRow, ManifestRow | None]) -> ManifestRow:
        nonlocal done
        summary, cached = pair
        if cached is not None:
            return {column: cached[column] for column in FACT_COLUMNS}
        if unsafe_key(summary["key"]):
            return facts_of(
                None, ImageFacts(None, None, None, None, None, "unsafe key ('..' or absolute path)")
            )
        body = get_bytes(client, raw_object(config.bucket, summary["key"]))
        done += 1
        if done % PROGRESS_EVERY == 0:
            log.info("read %d/%d objects", done, to_read)
        return facts_of(hashlib.sha256(body).hexdigest(), inspect(body))

    examined = parallel_map(examine, list(zip(summaries, unchanged, strict=True)))
    rows = [
        {
            **summary,
            "class_name": class_of(summary["key"], config.raw_prefix),
            "extension": PurePosixPath(summary["key"]).suffix.lower(),
            **facts,
        }
        for summary, facts in zip(summaries, examined, strict=True)
    ]
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    for column in ("width", "height", "channels"):
        manifest[column] = manifest[column].astype("Int64")
    uri = run_layout(config, run_id).manifest_part(partition.name)
    body = manifest.to_csv(index=False).encode()
    put_bytes(client, uri, body, "text/csv")
    # The catalog keeps what was read; a slot is rewritten only when one of its keys was read
    # anew or is gone.
    listed = set(manifest["key"])
    changed = {
        key_slot(row["key"]) for row, cached in zip(summaries, unchanged, strict=True) if cached is None
    }
    removed = [key for key in known if key not in listed]
    changed |= {key_slot(key) for key in removed}
    write_slots(client, partial(catalog_slot, config), manifest, manifest["key"].map(key_slot), changed)
    new = sum(1 for key in listed if key not in known)
    return PartCollected(
        str(uri),
        len(manifest),
        to_read,
        len(manifest) - to_read,
        new,
        len(removed),
        hashlib.sha256(body).hexdigest(),
    )


def merge_manifest(
    client: S3Client,
    config: PipelineConfig,
    run_id: str,
    parts: list[PartCollected],
    class_names_from: str,
    skipped: dict[str, int] | None = None,
    manifest: pd.DataFrame | None = None,
) -> CollectResult:
    """Merges the partitions' manifest parts into the run's manifest, in key order (so it is
    the same whatever the partition count), and writes the run's manifest.json.
    `config.class_names` are the run's resolved classes; `manifest` is the merged frame where
    the caller holds it already (merged_manifest)."""
    if manifest is None:
        manifest = merged_manifest(client, parts)
    put_csv(client, run_layout(config, run_id).manifest, manifest)
    counts = manifest["class_name"].fillna("<none>").value_counts().sort_index()
    images_per_class = {str(name): int(count) for name, count in counts.items()}
    undecodable = int((~manifest["decodable"].astype(bool)).sum())
    return summarize_manifest(
        client, config, run_id, parts, class_names_from, skipped, images_per_class, undecodable
    )


def merged_manifest(client: S3Client, parts: list[PartCollected]) -> pd.DataFrame:
    """The manifest parts joined in key order."""
    frames = [read_manifest(client, part.manifest_part_uri) for part in parts]
    return pd.concat(frames, ignore_index=True).sort_values("key", ignore_index=True)


def summarize_manifest(
    client: S3Client,
    config: PipelineConfig,
    run_id: str,
    parts: list[PartCollected],
    class_names_from: str,
    skipped: dict[str, int] | None,
    images_per_class: dict[str, int],
    undecodable: int,
) -> CollectResult:
    """Writes the run's manifest.json from the parts' figures and the manifest's objects per
    folder; the run's manifest.csv must be in place."""
    collected = parts
    layout = run_layout(config, run_id)
    objects = sum(images_per_class.values())
    objects_read = sum(part.objects_read for part in collected)
    put_json(
        client,
        layout.manifest_summary,
        ManifestSummary(
            manifest_uri=str(layout.manifest),
            objects=objects,
            objects_read=objects_read,
            objects_new=sum(part.objects_new for part in collected),
            objects_changed=objects_read - sum(part.objects_new for part in collected),
            objects_removed=sum(part.objects_removed for part in collected),
            partitions=len(collected),
            class_names=list(config.class_names),
            class_names_from=class_names_from,
            objects_per_folder=images_per_class,
            skipped_as_noise=skipped or {},
        ).to_json(),
    )
    log.info(
        "collected %d objects in %d partition(s): %d read, %d from the catalog, %d not decodable; "
        "per class: %s",
        objects,
        len(collected),
        objects_read,
        objects - objects_read,
        undecodable,
        images_per_class,
    )
    log.info("manifest written to %s", layout.manifest)
    return CollectResult(
        str(layout.manifest),
        objects,
        images_per_class,
        list(config.class_names),
        class_names_from,
        objects_read=objects_read,
        objects_unchanged=objects - objects_read,
        objects_undecodable=undecodable,
    )


def collect_manifest(client: S3Client, config: PipelineConfig, run_id: str) -> CollectResult:
    """The whole collect step in one process: plan, every partition in turn, merge. The DAG
    runs the same three functions as separate (mapped) tasks."""
    plan, parts = collect_parts(client, config, run_id)
    resolved = config.with_classes(plan.class_names)
    return merge_manifest(client, resolved, run_id, parts, plan.class_names_from, plan.skipped)


def collect_parts(
    client: S3Client, config: PipelineConfig, run_id: str
) -> tuple[CollectionPlan, list[PartCollected]]:
    """plan_collection, then every partition in turn: the plan and the partitions' parts."""
    plan = plan_collection(client, config, run_id)
    resolved = config.with_classes(plan.class_names)
    parts = [
        collect_partition(client, resolved, Partition.from_xcom(partition), run_id)
        for partition in plan.partitions
    ]
    return plan, parts


def facts_of(sha256: str | None, facts: ImageFacts) -> ManifestRow:
    """The manifest's columns for what reading one object found."""
    found = asdict(facts)
    reason = found.pop("problem")
    return {"sha256": sha256, "decodable": reason is None, **found, "reason": reason}


def still_current(cached: ManifestRow | None, listed: ManifestRow) -> ManifestRow | None:
    """The catalog row if it still describes the listed object (same ETag and size)."""
    if cached is None or cached["etag"] != listed["etag"]:
        return None
    return cached if int(cached["bytes"]) == int(listed["bytes"]) else None


def read_catalog(client: S3Client, config: PipelineConfig, slots: list[int]) -> dict[str, ManifestRow]:
    """key -> what was last read of it, for the keys of `slots`; empty without a catalog."""
    rows = read_slots(client, partial(catalog_slot, config), slots, parse_manifest)
    if rows.empty:
        return {}
    rows = rows.astype(object)
    return {row["key"]: row for row in rows.where(rows.notna(), None).to_dict("records")}


def read_manifest(client: S3Client, manifest_uri: str) -> pd.DataFrame:
    return parse_manifest(get_bytes(client, S3Uri.parse(manifest_uri)))


def parse_manifest(body: bytes) -> pd.DataFrame:
    """A manifest (or catalog) CSV with the column types the gate expects."""
    return pd.read_csv(
        io.BytesIO(body),
        dtype={
            "key": "string",
            "class_name": "string",
            "sha256": "string",
            "format": "string",
            "mode": "string",
            "reason": "string",
            "extension": "string",
            "etag": "string",
        },
        keep_default_na=False,
        na_values={
            "class_name": [""],
            "sha256": [""],
            "format": [""],
            "mode": [""],
            "reason": [""],
            "width": [""],
            "height": [""],
            "channels": [""],
        },
    )
