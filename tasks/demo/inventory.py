"""Writes an S3 Inventory report of a bucket as S3 delivers one (CSV, gzip, with
manifest.json and manifest.checksum), for a local S3 endpoint, which has no inventory of its
own: the tests and benches use it to exercise `inventory_uri` (tasks/inventory.py).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import uuid
from datetime import UTC, datetime
from urllib.parse import quote_plus

from tasks.inventory import InventoryFile, InventoryManifest
from tasks.layout import inventory_data_file, inventory_delivery, inventory_delivery_files
from tasks.storage import S3Client, S3Uri, iter_objects, put_bytes

FIELDS = ("Bucket", "Key", "Size", "LastModifiedDate", "ETag")
ROWS_PER_FILE = 100_000


def write_inventory(
    client: S3Client, bucket: str, report: S3Uri, began: datetime | None = None, prefix: str = ""
) -> S3Uri:
    """Lists `bucket` (its keys under `prefix`, as an inventory configuration with a prefix
    filter does) and writes the listing as a delivery of the report; returns its folder."""
    began = began or datetime.now(UTC)
    rows = [
        (
            bucket,
            quote_plus(item["Key"], safe="/"),
            str(item["Size"]),
            item["LastModified"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            item["ETag"].strip('"'),
        )
        for item in iter_objects(client, S3Uri(bucket, prefix))
    ]
    files: list[InventoryFile] = []
    for start in range(0, max(len(rows), 1), ROWS_PER_FILE):
        text = io.StringIO()
        writer = csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerows(rows[start : start + ROWS_PER_FILE])
        body = gzip.compress(text.getvalue().encode())
        data = inventory_data_file(report, f"{uuid.uuid4()}.csv.gz")
        put_bytes(client, data, body)
        files.append(InventoryFile(data.key, len(body), hashlib.md5(body).hexdigest()))  # noqa: S324
    manifest = json.dumps(
        InventoryManifest(
            sourceBucket=bucket,
            destinationBucket=f"arn:aws:s3:::{report.bucket}",
            fileFormat="CSV",
            fileSchema=", ".join(FIELDS),
            files=files,
            creationTimestamp=str(int(began.timestamp() * 1000)),
        ).to_json()
    ).encode()
    delivery = inventory_delivery(report, began.strftime("%Y-%m-%dT%H-%MZ"))
    manifest_uri, checksum_uri = inventory_delivery_files(delivery)
    put_bytes(client, manifest_uri, manifest)
    put_bytes(client, checksum_uri, hashlib.md5(manifest).hexdigest().encode())  # noqa: S324
    return delivery
