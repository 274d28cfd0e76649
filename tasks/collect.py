"""Step 1: list the raw images in S3 and write the run's manifest, one row per object.

Raw-data contract: `s3://<bucket>/<raw_prefix><class_name>/<file>`; the first path segment
under the prefix is the label. Each object is downloaded (in parallel), hashed and decoded
once, so the manifest records what the data-quality gate needs: content hash, format, size,
mode and, for anything that is not a usable image, why.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath

import pandas as pd

from tasks.config import PipelineConfig
from tasks.images import ImageFacts, inspect, unsafe_key
from tasks.storage import (
    S3Client,
    S3Uri,
    StorageError,
    ensure_bucket,
    get_bytes,
    iter_objects,
    parallel_map,
    put_csv,
)

log = logging.getLogger(__name__)

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


def class_of(key: str, raw_prefix: str) -> str | None:
    """The label an object key carries: the folder right under the raw prefix, if any."""
    relative = key[len(raw_prefix) :]
    folder, separator, _ = relative.partition("/")
    return folder if separator and folder else None


def manifest_uri_for(config: PipelineConfig, run_id: str) -> S3Uri:
    return S3Uri(config.bucket, f"{config.run_prefix(run_id)}/manifest.csv")


def collect(client: S3Client, config: PipelineConfig, run_id: str) -> CollectResult:
    """Lists raw/, hashes and inspects every object, and writes the manifest under the run."""
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

    def examine(summary: dict) -> tuple[str | None, ImageFacts]:
        nonlocal done
        if unsafe_key(summary["Key"]):
            facts = ImageFacts(None, None, None, None, None, "unsafe key ('..' or absolute path)")
            return None, facts
        body = get_bytes(client, S3Uri(config.bucket, summary["Key"]))
        done += 1
        if done % PROGRESS_EVERY == 0:
            log.info("collected %d/%d objects", done, len(summaries))
        return hashlib.sha256(body).hexdigest(), inspect(body)

    examined = parallel_map(examine, summaries)
    rows = []
    for summary, (sha256, facts) in zip(summaries, examined, strict=True):
        facts_row = asdict(facts)
        reason = facts_row.pop("problem")
        rows.append(
            {
                "key": summary["Key"],
                "class_name": class_of(summary["Key"], config.raw_prefix),
                "extension": PurePosixPath(summary["Key"]).suffix.lower(),
                "bytes": summary["Size"],
                "etag": summary["ETag"].strip('"'),
                "last_modified": summary["LastModified"].isoformat(),
                "sha256": sha256,
                "decodable": reason is None,
                **facts_row,
                "reason": reason,
            }
        )
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    manifest_uri = manifest_uri_for(config, run_id)
    put_csv(client, manifest_uri, manifest)
    counts = manifest["class_name"].fillna("<none>").value_counts().sort_index()
    log.info(
        "collected %d objects (%d not decodable); per class: %s",
        len(manifest),
        int((~manifest["decodable"]).sum()),
        counts.to_dict(),
    )
    log.info("manifest written to %s", manifest_uri)
    return CollectResult(str(manifest_uri), len(manifest), {k: int(v) for k, v in counts.items()})


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
