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

import gzip
import hashlib
import io
import logging
import re
import zlib
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote_plus

import pandas as pd

from tasks.layout import inventory_delivery_files
from tasks.listing import LISTING_COLUMNS, in_listing_order, top_level
from tasks.records import JsonRecord
from tasks.storage import (
    PermanentStorageError,
    S3Client,
    S3Uri,
    exists,
    get_bytes,
    iter_chunks,
    parallel_map,
)

log = logging.getLogger(__name__)

DELIVERY = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}Z/$")
REQUIRED_FIELDS = ("Key", "Size", "LastModifiedDate", "ETag")
VERSION_FIELDS = ("IsLatest", "IsDeleteMarker")  # in reports of versioned buckets
GZIP = 31  # zlib wbits for a gzip stream
WHOLE_SECONDS_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z"  # how S3 writes LastModifiedDate


@dataclass(frozen=True)
class InventoryFile(JsonRecord):
    key: str  # in the destination bucket
    size: int
    MD5checksum: str


@dataclass(frozen=True)
class InventoryManifest(JsonRecord):
    """A delivery's `manifest.json`, in the fields (and AWS's names for them) this reads."""

    sourceBucket: str
    destinationBucket: str  # an ARN: arn:aws:s3:::<bucket>
    fileFormat: str  # CSV, ORC or Parquet
    fileSchema: str  # the data files' columns, comma-separated
    files: list[InventoryFile]
    version: str = "2016-11-30"
    creationTimestamp: str = ""  # milliseconds since the epoch, as text


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


@dataclass(frozen=True)
class InventoryReport:
    """A delivery's data files, with what its manifest says of them and a digest of each."""

    delivery: S3Uri
    fields: list[str]  # the report's fields read, in the order of `positions`
    positions: list[int]  # of those fields in each CSV row
    files: list[S3Uri]  # the data files, in the manifest's order
    digests: list[str]  # sha256 of each file's CSV text: the same rows give the same digests

    @property
    def where(self) -> str:
        return describe(self.delivery)


def describe(delivery: S3Uri) -> str:
    """How errors and logs name a delivery."""
    return f"S3 Inventory {delivery}"


def fetch_inventory(client: S3Client, report: S3Uri, bucket: str) -> InventoryReport:
    """The latest complete delivery of `report`, which must be of `bucket`: its manifest
    checked and each data file's text digested as it streams in (none is held whole;
    inventory_listing fetches the files again where their rows are needed)."""
    delivery = latest_delivery(client, report)
    manifest = InventoryManifest.read(client, inventory_delivery_files(delivery)[0])
    where = describe(delivery)
    if manifest.sourceBucket != bucket:
        raise PermanentStorageError(f"{where} is of bucket {manifest.sourceBucket}, not {bucket}")
    if manifest.fileFormat != "CSV":
        raise PermanentStorageError(f"{where} is {manifest.fileFormat}; only CSV reports are read")
    columns = [name.strip() for name in manifest.fileSchema.split(",")]
    missing = [name for name in REQUIRED_FIELDS if name not in columns]
    if missing:
        raise PermanentStorageError(f"{where} lacks {', '.join(missing)}; add them to the inventory's fields")
    destination = manifest.destinationBucket.removeprefix("arn:aws:s3:::")
    wanted = [name for name in (*REQUIRED_FIELDS, *VERSION_FIELDS) if name in columns]
    files = [S3Uri(destination, file.key) for file in manifest.files]
    digests = parallel_map(lambda uri: text_digest(client, uri), files)
    return InventoryReport(delivery, wanted, [columns.index(name) for name in wanted], files, digests)


def text_digest(client: S3Client, uri: S3Uri) -> str:
    """The sha256 of a gzip file's text, decompressed as it streams in. The text, not the
    file: the gzip header carries the time it was written."""
    digest = hashlib.sha256()
    decompressor = zlib.decompressobj(wbits=GZIP)
    for chunk in iter_chunks(client, uri):
        while chunk:
            digest.update(decompressor.decompress(chunk))
            chunk = b""
            if decompressor.eof:  # a file may hold several gzip members, one after the other
                chunk, decompressor = decompressor.unused_data, zlib.decompressobj(wbits=GZIP)
    return digest.hexdigest()


def inventory_listing(client: S3Client, report: InventoryReport, prefix: str) -> pd.DataFrame:
    """The report's current objects under `prefix`, as a listing of them reads
    (tasks/listing.py: LISTING_COLUMNS, in listing order).

    The report's rows are parsed by pandas' C reader and converted column by column: this
    runs once a night over every object in the bucket."""
    wanted, positions = report.fields, report.positions

    def no_rows() -> pd.DataFrame:
        return pd.DataFrame(columns=wanted, dtype="str")

    def parse(file: S3Uri) -> pd.DataFrame:
        text = gzip.decompress(get_bytes(client, file))
        if not text.strip():
            return no_rows()
        try:
            rows = pd.read_csv(
                io.BytesIO(text), header=None, usecols=positions, dtype="str", keep_default_na=False
            )
        except (ValueError, pd.errors.ParserError) as error:
            reason = str(error).strip().splitlines()[0]
            message = f"{report.where}: {file.key} does not match its manifest: {reason}"
            raise PermanentStorageError(message) from error
        return rows.rename(columns=dict(zip(positions, wanted, strict=True)))[wanted]

    parts = parallel_map(parse, report.files)
    rows = pd.concat(parts, ignore_index=True) if parts else no_rows()
    if "IsLatest" in rows:
        rows = rows[rows["IsLatest"] == "true"]  # the other rows are earlier versions of an object
    if "IsDeleteMarker" in rows:
        rows = rows[rows["IsDeleteMarker"] != "true"]
    keys = rows["Key"]
    encoded = keys.str.contains("%", regex=False) | keys.str.contains("+", regex=False)
    if encoded.any():
        keys = keys.mask(encoded, keys[encoded].map(unquote_plus))
    under_prefix = keys.str.startswith(prefix)
    listing = pd.DataFrame(
        {
            "key": keys[under_prefix],
            "bytes": rows["Size"][under_prefix].astype("int64"),
            "etag": rows["ETag"][under_prefix].str.strip('"'),
            "last_modified": as_listed_time(rows["LastModifiedDate"][under_prefix]),
        },
        columns=LISTING_COLUMNS,
    )
    log.info("read %s: %d objects under %s", report.where, len(listing), prefix)
    return in_listing_order(listing)


def read_inventory(client: S3Client, report: S3Uri, bucket: str, prefix: str) -> pd.DataFrame:
    """`bucket`'s current objects under `prefix` from the report's latest delivery."""
    return inventory_listing(client, fetch_inventory(client, report, bucket), prefix)


def as_listed_time(values: pd.Series) -> pd.Series:
    """The report's LastModifiedDate as a listing's is written (datetime.isoformat):
    `2026-12-01T01:02:03.000Z` becomes `2026-12-01T01:02:03+00:00`."""
    whole_seconds = values.str.fullmatch(WHOLE_SECONDS_UTC)
    converted = values.str.slice(0, 19) + "+00:00"
    if not whole_seconds.all():
        other = values[~whole_seconds]
        converted[~whole_seconds] = other.map(lambda value: datetime.fromisoformat(value).isoformat())
    return converted
