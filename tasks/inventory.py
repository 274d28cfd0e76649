"""Reads the bucket's S3 Inventory report instead of listing the raw prefix (the
`inventory_uri` setting): at millions of objects, reading a daily report takes seconds where
LIST pages through every key, a thousand at a time.

S3 delivers a report of an inventory configuration under
`s3://<destination>/<prefix>/<source bucket>/<config id>/`, one folder per delivery named by
when it began (`2026-12-01T01-00Z/`), holding `manifest.json` (which names the report's data
files and their columns) and, once the delivery is complete, `manifest.checksum`. The latest
complete delivery is read. Only CSV reports are read, and the configuration must include the
Size, LastModifiedDate and ETag fields. Keys in CSV reports are URL-encoded.

The report is the night's view of the bucket: objects written after it began wait for the next
report, and an object deleted since is still listed (the catalog's facts stand in for it, as
collect reads only new or changed objects).
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from tasks.layout import inventory_delivery_files
from tasks.listing import top_level, utf8_order
from tasks.storage import PermanentStorageError, S3Client, S3Uri, exists, get_bytes, get_json, parallel_map

log = logging.getLogger(__name__)

DELIVERY = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}Z/$")
REQUIRED_FIELDS = ("Key", "Size", "LastModifiedDate", "ETag")


def latest_delivery(client: S3Client, report: S3Uri) -> S3Uri:
    """The folder of the newest complete delivery (one with its manifest.checksum)."""
    folders, _ = top_level(client, report)
    for folder in sorted((f for f in folders if DELIVERY.search(f)), reverse=True):
        delivery = S3Uri(report.bucket, folder)
        if exists(client, inventory_delivery_files(delivery)[1]):
            return delivery
    raise PermanentStorageError(
        f"{report}: no complete S3 Inventory delivery (<date>/manifest.json with its "
        "manifest.checksum); check inventory_uri, or leave it empty to list the raw prefix"
    )


def iter_inventory(client: S3Client, report: S3Uri, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    """Yields the summaries of `bucket`'s current objects under `prefix` from the report's
    latest delivery, in the order a listing gives them."""
    delivery = latest_delivery(client, report)
    manifest = get_json(client, inventory_delivery_files(delivery)[0])
    where = f"S3 Inventory {delivery}"
    if manifest.get("sourceBucket") != bucket:
        raise PermanentStorageError(f"{where} is of bucket {manifest.get('sourceBucket')}, not {bucket}")
    if manifest.get("fileFormat") != "CSV":
        raise PermanentStorageError(f"{where} is {manifest.get('fileFormat')}; only CSV reports are read")
    columns = [name.strip() for name in manifest["fileSchema"].split(",")]
    missing = [name for name in REQUIRED_FIELDS if name not in columns]
    if missing:
        raise PermanentStorageError(f"{where} lacks {', '.join(missing)}; add them to the inventory's fields")
    destination = manifest["destinationBucket"].removeprefix("arn:aws:s3:::")

    at = {name: number for number, name in enumerate(columns)}
    key_at, size_at, etag_at, modified_at = (at[name] for name in ("Key", "Size", "ETag", "LastModifiedDate"))
    latest_at, delete_marker_at = at.get("IsLatest"), at.get("IsDeleteMarker")

    def read(file: dict[str, Any]) -> list[dict[str, Any]]:
        text = gzip.decompress(get_bytes(client, S3Uri(destination, file["key"]))).decode()
        current = []
        for values in csv.reader(io.StringIO(text)):
            if latest_at is not None and values[latest_at] != "true":
                continue  # an earlier version of a versioned object
            if delete_marker_at is not None and values[delete_marker_at] == "true":
                continue
            key = values[key_at]
            if "%" in key or "+" in key:
                key = unquote_plus(key)
            if key.startswith(prefix):
                current.append(
                    {
                        "Key": key,
                        "Size": int(values[size_at]),
                        "ETag": values[etag_at],
                        "LastModified": datetime.fromisoformat(values[modified_at]),
                    }
                )
        return current

    summaries = [summary for part in parallel_map(read, manifest["files"]) for summary in part]
    log.info("read S3 Inventory %s: %d objects under %s", delivery, len(summaries), prefix)
    yield from sorted(summaries, key=utf8_order)
