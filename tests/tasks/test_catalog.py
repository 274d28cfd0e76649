"""Incremental collection: the catalog spares reading unchanged objects, and is only a cache."""

from __future__ import annotations

from images_factory import digit_like, encode

from tasks.collect import collect_manifest
from tasks.config import PipelineConfig
from tasks.layout import catalog, run_layout
from tasks.storage import S3Uri, delete_prefix, get_bytes, put_bytes


def manifest_bytes(s3, config, run_id: str) -> bytes:
    return get_bytes(s3, run_layout(config, run_id).manifest)


def test_an_unchanged_bucket_is_listed_but_not_read_again(s3, small_digits, raw_reads):
    config = PipelineConfig(bucket=small_digits)
    first = collect_manifest(s3, config, "night-1")
    assert (first.objects_read, first.objects_unchanged) == (200, 0)
    reads = raw_reads(s3)
    second = collect_manifest(s3, config, "night-2")
    assert reads == []
    assert (second.objects_read, second.objects_unchanged) == (0, 200)
    assert manifest_bytes(s3, config, "night-2") == manifest_bytes(s3, config, "night-1")


def test_new_overwritten_and_deleted_objects(s3, small_digits, raw_reads):
    config = PipelineConfig(bucket=small_digits)
    collect_manifest(s3, config, "night-1")
    overwritten, deleted = "raw/zero/digit-0000.png", "raw/one/digit-0001.png"
    put_bytes(s3, S3Uri(small_digits, overwritten), encode(digit_like(900)))
    s3.delete_object(Bucket=small_digits, Key=deleted)
    put_bytes(s3, S3Uri(small_digits, "raw/two/new.png"), encode(digit_like(901)))
    reads = raw_reads(s3)
    result = collect_manifest(s3, config, "night-2")
    assert sorted(reads) == sorted([overwritten, "raw/two/new.png"])
    assert (result.objects_read, result.object_count) == (2, 200)
    manifest = manifest_bytes(s3, config, "night-2").decode()
    assert deleted not in manifest
    import hashlib

    new_hash = hashlib.sha256(encode(digit_like(900))).hexdigest()
    (row,) = [line for line in manifest.splitlines() if line.startswith(overwritten + ",")]
    assert new_hash in row


def test_without_its_catalog_collect_reads_everything_and_writes_the_same_manifest(
    s3, small_digits, raw_reads
):
    config = PipelineConfig(bucket=small_digits)
    collect_manifest(s3, config, "night-1")
    delete_prefix(s3, catalog(config).folder())
    reads = raw_reads(s3)
    result = collect_manifest(s3, config, "night-2")
    assert len(reads) == 200 and result.objects_read == 200
    assert manifest_bytes(s3, config, "night-2") == manifest_bytes(s3, config, "night-1")
