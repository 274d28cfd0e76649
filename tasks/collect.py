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
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath

import pandas as pd

from tasks.config import CLASS_NAME_PATTERN, PipelineConfig
from tasks.images import ImageFacts, inspect, unsafe_key
from tasks.layout import catalog, raw_object, raw_root, run_layout
from tasks.storage import (
    S3Client,
    S3Uri,
    StorageError,
    ensure_bucket,
    exists,
    get_bytes,
    iter_objects,
    parallel_map,
    put_bytes,
    put_json,
)

log = logging.getLogger(__name__)

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
        raise StorageError(
            f"{raw_root(config)}: found {len(classes)} class folder(s) {classes}; a classifier needs "
            f"at least two, as {config.raw_prefix}<class_name>/<file> (or set the class_names Param)"
        )
    return classes, "raw folders"


def collect_manifest(client: S3Client, config: PipelineConfig, run_id: str) -> CollectResult:
    """Lists raw/, hashes and inspects every object, and writes the manifest under the run."""
    ensure_bucket(client, config.bucket)
    raw_uri = raw_root(config)
    summaries = [item for item in iter_objects(client, raw_uri) if not item["Key"].endswith("/")]
    if not summaries:
        raise StorageError(
            f"{raw_uri}: no objects to train on; upload images as "
            f"{config.raw_prefix}<class_name>/<file> (see README, raw-data contract)"
        )
    class_names, class_names_from = resolve_classes(config, [item["Key"] for item in summaries])
    log.info("classes (%s): %s", class_names_from, ", ".join(class_names))
    known = read_catalog(client, config)
    unchanged = [still_current(known.get(item["Key"]), item) for item in summaries]
    to_read = sum(1 for cached in unchanged if cached is None)
    log.info(
        "collecting %d objects from %s: %d new or changed to read, %d unchanged (catalog)",
        len(summaries),
        raw_uri,
        to_read,
        len(summaries) - to_read,
    )
    done = 0

    def examine(pair: tuple[dict, dict | None]) -> dict:
        nonlocal done
        summary, cached = pair
        if cached is not None:
            return {column: cached[column] for column in FACT_COLUMNS}
        if unsafe_key(summary["Key"]):
            return facts_of(
                None, ImageFacts(None, None, None, None, None, "unsafe key ('..' or absolute path)")
            )
        body = get_bytes(client, raw_object(config.bucket, summary["Key"]))
        done += 1
        if done % PROGRESS_EVERY == 0:
            log.info("read %d/%d objects", done, to_read)
        return facts_of(hashlib.sha256(body).hexdigest(), inspect(body))

    examined = parallel_map(examine, list(zip(summaries, unchanged, strict=True)))
    rows = [
        {
            "key": summary["Key"],
            "class_name": class_of(summary["Key"], config.raw_prefix),
            "extension": PurePosixPath(summary["Key"]).suffix.lower(),
            "bytes": summary["Size"],
            "etag": summary["ETag"].strip('"'),
            "last_modified": summary["LastModified"].isoformat(),
            **facts,
        }
        for summary, facts in zip(summaries, examined, strict=True)
    ]
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    for column in ("width", "height", "channels"):
        manifest[column] = manifest[column].astype("Int64")
    manifest_csv = manifest.to_csv(index=False).encode()
    layout = run_layout(config, run_id)
    put_bytes(client, layout.manifest, manifest_csv, "text/csv")
    if to_read or len(known) != len(manifest):
        # The catalog is the manifest of the last run that changed something.
        put_bytes(client, catalog(config), manifest_csv, "text/csv")
    counts = manifest["class_name"].fillna("<none>").value_counts().sort_index()
    images_per_class = {str(name): int(count) for name, count in counts.items()}
    put_json(
        client,
        layout.manifest_summary,
        {
            "manifest_uri": str(layout.manifest),
            "objects": len(manifest),
            "class_names": class_names,
            "class_names_from": class_names_from,
            "objects_per_folder": images_per_class,
        },
    )
    log.info(
        "collected %d objects (%d not decodable); per class: %s",
        len(manifest),
        int((~manifest["decodable"]).sum()),
        counts.to_dict(),
    )
    log.info("manifest written to %s", layout.manifest)
    return CollectResult(
        str(layout.manifest),
        len(manifest),
        images_per_class,
        class_names,
        class_names_from,
        objects_read=to_read,
        objects_unchanged=len(manifest) - to_read,
    )


def facts_of(sha256: str | None, facts: ImageFacts) -> dict:
    """The manifest's columns for what reading one object found."""
    found = asdict(facts)
    reason = found.pop("problem")
    return {"sha256": sha256, "decodable": reason is None, **found, "reason": reason}


def still_current(cached: dict | None, summary: dict) -> dict | None:
    """The catalog row if it still describes the listed object (same ETag and size)."""
    if cached is None or cached["etag"] != summary["ETag"].strip('"'):
        return None
    return cached if int(cached["bytes"]) == int(summary["Size"]) else None


def read_catalog(client: S3Client, config: PipelineConfig) -> dict[str, dict]:
    """key -> what was last read of it; empty when there is no catalog yet."""
    uri = catalog(config)
    if not exists(client, uri):
        return {}
    rows = read_manifest(client, str(uri)).astype(object)
    return {row["key"]: row for row in rows.where(rows.notna(), None).to_dict("records")}


def read_manifest(client: S3Client, manifest_uri: str) -> pd.DataFrame:
    body = get_bytes(client, S3Uri.parse(manifest_uri))
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
