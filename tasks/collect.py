"""Step 1: list the raw images in S3 and write the run's manifest, one row per object.

Raw-data contract: `s3://<bucket>/<raw_prefix><class_name>/<file>`; the first path segment
under the prefix is the label. Each object is downloaded (in parallel) so the manifest can
record its content hash, which later steps use to split and to detect changed objects.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass

import pandas as pd

from tasks.config import PipelineConfig, run_partition
from tasks.storage import (
    S3Client,
    S3Uri,
    StorageError,
    ensure_bucket,
    get_bytes,
    iter_objects,
    parallel_map,
    put_bytes,
)

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ["key", "class_name", "bytes", "etag", "last_modified", "sha256"]
PROGRESS_EVERY = 500


@dataclass(frozen=True)
class CollectResult:
    manifest_uri: str
    object_count: int
    images_per_class: dict[str, int]


def class_of(key: str, raw_prefix: str) -> str | None:
    """The label an object key carries: the folder right under the raw prefix, if any."""
    relative = key[len(raw_prefix):]
    folder, separator, _ = relative.partition("/")
    return folder if separator and folder else None


def manifest_uri_for(config: PipelineConfig, run_id: str) -> S3Uri:
    return S3Uri(config.bucket, f"{config.runs_prefix}{run_partition(run_id)}/manifest.csv")


def collect(client: S3Client, config: PipelineConfig, run_id: str) -> CollectResult:
    """Lists raw/, hashes every object, and writes the manifest under the run's prefix."""
    ensure_bucket(client, config.bucket)
    raw_uri = S3Uri(config.bucket, config.raw_prefix)
    summaries = [item for item in iter_objects(client, raw_uri) if not item["Key"].endswith("/")]
    if not summaries:
        raise StorageError(
            f"{raw_uri}: no objects to train on; upload images as "
            f"{config.raw_prefix}<class_name>/<file> (see README, raw-data contract)"
        )
    log.info("collecting %d objects from %s", len(summaries), raw_uri)
    done = 0

    def hash_object(summary: dict) -> str:
        nonlocal done
        digest = hashlib.sha256(get_bytes(client, S3Uri(config.bucket, summary["Key"]))).hexdigest()
        done += 1
        if done % PROGRESS_EVERY == 0:
            log.info("collected %d/%d objects", done, len(summaries))
        return digest

    digests = parallel_map(hash_object, summaries)
    manifest = pd.DataFrame(
        {
            "key": [item["Key"] for item in summaries],
            "class_name": [class_of(item["Key"], config.raw_prefix) for item in summaries],
            "bytes": [item["Size"] for item in summaries],
            "etag": [item["ETag"].strip('"') for item in summaries],
            "last_modified": [item["LastModified"].isoformat() for item in summaries],
            "sha256": digests,
        },
        columns=MANIFEST_COLUMNS,
    )
    manifest_uri = manifest_uri_for(config, run_id)
    buffer = io.StringIO()
    manifest.to_csv(buffer, index=False)
    put_bytes(client, manifest_uri, buffer.getvalue().encode(), "text/csv")
    counts = manifest["class_name"].fillna("<none>").value_counts().sort_index()
    log.info("collected %d objects; per class: %s", len(manifest), counts.to_dict())
    log.info("manifest written to %s", manifest_uri)
    return CollectResult(str(manifest_uri), len(manifest), {k: int(v) for k, v in counts.items()})


def read_manifest(client: S3Client, manifest_uri: str) -> pd.DataFrame:
    body = get_bytes(client, S3Uri.parse(manifest_uri))
    return pd.read_csv(io.BytesIO(body), dtype={"class_name": "string", "key": "string"})
