"""Reading the raw objects from an S3 Inventory report instead of listing them, against the
moto server: the same collect plan and listing parts as a listing, the latest complete
delivery, and one readable line for a report that cannot be used."""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import replace
from datetime import UTC, datetime

import pandas as pd
import pytest
from images_factory import digit_like, encode

from tasks.collect import plan_collection
from tasks.config import PipelineConfig
from tasks.demo.inventory import write_inventory
from tasks.inventory import InventoryManifest, as_listed_time, read_inventory, text_digest
from tasks.storage import PermanentStorageError, S3Uri, get_bytes, put_bytes, put_json

KEYS = [
    "raw/cat/0.png",
    "raw/cat/a b+c.png",
    "raw/dog/ünicode 日本.png",
    "raw/dog/2/nested.png",
    "raw/dog/.DS_Store",
    "raw/loose.png",
    "elsewhere/cat/1.png",
]
EARLIER = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
LATER = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


def upload(s3, bucket: str, keys: list[str]) -> None:
    for index, key in enumerate(keys):
        put_bytes(s3, S3Uri(bucket, key), encode(digit_like(index)))


def listing_parts(s3, plan) -> list[bytes]:
    return [get_bytes(s3, S3Uri.parse(partition["uri"])) for partition in plan.partitions]


def test_a_plan_from_the_report_is_the_plan_from_a_listing(s3, bucket, reports):
    upload(s3, bucket, KEYS)
    write_inventory(s3, bucket, reports, EARLIER)
    listed = PipelineConfig(bucket=bucket, partitions=3)
    from_report = replace(listed, inventory_uri=str(reports))
    by_listing = plan_collection(s3, listed, "by-listing")
    by_report = plan_collection(s3, from_report, "by-report")
    assert (by_report.class_names, by_report.objects, by_report.skipped) == (
        by_listing.class_names,
        by_listing.objects,
        by_listing.skipped,
    )
    assert by_report.objects == 5 and by_report.skipped == {".DS_Store": 1}
    assert listing_parts(s3, by_report) == listing_parts(s3, by_listing)


def test_the_latest_complete_delivery_is_read(s3, bucket, reports):
    upload(s3, bucket, KEYS[:2])
    write_inventory(s3, bucket, reports, EARLIER)
    upload(s3, bucket, KEYS[:3])
    assert len(read_inventory(s3, reports, bucket, "raw/")) == 2  # written after the report
    write_inventory(s3, bucket, reports, LATER)
    assert len(read_inventory(s3, reports, bucket, "raw/")) == 3
    # A delivery still being written (no manifest.checksum yet) is passed over.
    upload(s3, bucket, KEYS[:4])
    unfinished = write_inventory(s3, bucket, reports, datetime(2026, 12, 2, 1, 0, tzinfo=UTC))
    s3.delete_object(Bucket=reports.bucket, Key=unfinished.key + "manifest.checksum")
    assert len(read_inventory(s3, reports, bucket, "raw/")) == 3


def test_a_report_that_cannot_be_used_says_why_in_one_line(s3, bucket, reports):
    with pytest.raises(PermanentStorageError, match=r"no complete S3 Inventory delivery.*inventory_uri"):
        read_inventory(s3, reports, bucket, "raw/")
    upload(s3, bucket, KEYS[:1])
    delivery = write_inventory(s3, bucket, reports, EARLIER)
    with pytest.raises(PermanentStorageError, match=f"is of bucket {bucket}, not other-bucket"):
        read_inventory(s3, reports, "other-bucket", "raw/")
    manifest_uri = S3Uri(reports.bucket, delivery.key + "manifest.json")
    manifest = InventoryManifest.read(s3, manifest_uri)
    put_json(s3, manifest_uri, replace(manifest, fileSchema="Bucket, Key, Size").to_json())
    with pytest.raises(PermanentStorageError, match="lacks LastModifiedDate, ETag"):
        read_inventory(s3, reports, bucket, "raw/")
    put_json(s3, manifest_uri, replace(manifest, fileFormat="Parquet").to_json())
    with pytest.raises(PermanentStorageError, match="is Parquet; only CSV reports are read"):
        read_inventory(s3, reports, bucket, "raw/")
    # A data file with fewer columns than its manifest names.
    schema = "Bucket, VersionId, Key, Size, LastModifiedDate, ETag"
    put_json(s3, manifest_uri, replace(manifest, fileSchema=schema).to_json())
    with pytest.raises(PermanentStorageError, match=r"\.csv\.gz does not match its manifest: ") as raised:
        read_inventory(s3, reports, bucket, "raw/")
    assert "\n" not in str(raised.value)


def test_a_versioned_buckets_report_gives_only_current_objects(s3, bucket, reports):
    """Reports of versioned buckets list earlier versions and delete markers too."""
    fields = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag"
    rows = [
        (bucket, "raw/cat/kept.png", "v2", "true", "false", "10", "2026-12-01T01:02:03.000Z", "aa"),
        (bucket, "raw/cat/kept.png", "v1", "false", "false", "9", "2026-11-01T01:02:03.000Z", "bb"),
        (bucket, "raw/cat/deleted.png", "v3", "true", "true", "", "2026-12-01T01:02:03.000Z", ""),
        (bucket, "raw/dog/caf%C3%A9+1.png", "v4", "true", "false", "12", "2026-12-01T01:02:03.250Z", "cc"),
    ]
    body = gzip.compress("".join(",".join(f'"{value}"' for value in row) + "\n" for row in rows).encode())
    delivery = write_inventory(s3, bucket, reports, EARLIER)  # of an empty bucket: then replaced
    manifest_uri = S3Uri(reports.bucket, delivery.key + "manifest.json")
    manifest = InventoryManifest.read(s3, manifest_uri)
    put_bytes(s3, S3Uri(reports.bucket, manifest.files[0].key), body)
    put_json(s3, manifest_uri, replace(manifest, fileSchema=fields).to_json())
    listing = read_inventory(s3, reports, bucket, "raw/")
    assert listing.to_dict("records") == [
        {"key": "raw/cat/kept.png", "bytes": 10, "etag": "aa", "last_modified": "2026-12-01T01:02:03+00:00"},
        {
            "key": "raw/dog/café 1.png",
            "bytes": 12,
            "etag": "cc",
            "last_modified": "2026-12-01T01:02:03.250000+00:00",
        },
    ]


@pytest.mark.parametrize(
    "written", ["2026-12-01T01:02:03.000Z", "2026-12-01T01:02:03.250Z", "2026-12-01T02:02:03.000+01:00"]
)
def test_report_times_are_written_as_a_listings_are(written):
    """A listing's LastModified is a datetime, written with isoformat(): the report's text
    must come out the same, or every object would look changed to the catalog."""
    expected = datetime.fromisoformat(written).isoformat()
    assert as_listed_time(pd.Series([written, written], dtype="str")).tolist() == [expected, expected]


def test_a_data_files_digest_is_of_its_text_whatever_its_gzip_framing(s3, bucket):
    """A new delivery of the same rows is gzipped at another time (the header says when): the
    digest must not see that. The text spans several streamed chunks and, in one file, two gzip
    members."""
    text = "".join(f'"{bucket}","raw/cat/{os.urandom(24).hex()}.png","1"\n' for _ in range(80_000)).encode()
    half = len(text) // 2
    one, other = S3Uri(bucket, "one.csv.gz"), S3Uri(bucket, "other.csv.gz")
    put_bytes(s3, one, gzip.compress(text, mtime=1))
    put_bytes(s3, other, gzip.compress(text[:half], mtime=2) + gzip.compress(text[half:], mtime=3))
    assert len(get_bytes(s3, one)) > 2 << 20
    expected = hashlib.sha256(text).hexdigest()
    assert text_digest(s3, one) == text_digest(s3, other) == expected
    put_bytes(s3, other, gzip.compress(text[:-2] + b"2\n", mtime=1))
    assert text_digest(s3, other) != expected
