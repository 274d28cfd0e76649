"""Parallel listing against the moto S3 server: the same summaries in the same order as one
paginator, whatever the key names."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

from tasks.listing import folder_ranges, iter_objects_parallel
from tasks.storage import S3Uri, iter_objects


def upload_keys(s3, bucket: str, keys: list[str]) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=b"x"), keys))


def awkward_names(folder: str, count: int) -> list[str]:
    """Names that start on, before, after and between the range bounds, plus nesting,
    unicode, spaces and punctuation."""
    starts = ["", "0", "2", "20", "3", "Z", "Zz", "_", "a", "c", "y", "z", "~", "é", "日本", " ", "-", "2/"]
    return [f"raw/{folder}/{starts[index % len(starts)]}{index:05d}.png" for index in range(count)]


def test_parallel_listing_is_the_single_paginators_listing(s3, bucket):
    keys = [key for folder in ("cat", "dog", "Owl", "ünicode", "a b") for key in awkward_names(folder, 700)]
    keys += ["raw/loose.png", "raw/a.png", "raw/zz", "raw/cat", "other/outside.png", "raw/cat/2"]
    upload_keys(s3, bucket, keys)
    single = list(iter_objects(s3, S3Uri(bucket, "raw/")))
    assert len(single) == len(keys) - 1 > 3500
    # 1 range per folder, 2 (10 threads over 5 folders) and every range (22 per folder).
    for threads in (5, 10, 110):
        parallel = list(iter_objects_parallel(s3, S3Uri(bucket, "raw/"), threads=threads))
        assert [item["Key"] for item in parallel] == [item["Key"] for item in single], threads
        assert parallel == single  # sizes, ETags and dates too


def test_a_folders_ranges_cover_every_key_once():
    ranges = folder_ranges("raw/cat/")
    assert ranges[0][0] is None and ranges[-1][1] is None
    assert all(until == after for (_, until), (after, _) in pairwise(ranges))


def test_an_empty_prefix_lists_nothing(s3, bucket):
    assert list(iter_objects_parallel(s3, S3Uri(bucket, "raw/"))) == []
