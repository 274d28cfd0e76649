"""Lists a prefix with many ListObjectsV2 paginators at once, in exactly the order (and with
exactly the summaries) one paginator gives.

One paginator reads 1,000 keys per request, one request after another, so listing 10 million
objects is 10,000 round trips in a row. Here the prefix's folders (found with one delimited
listing) and, within each folder, key ranges (split at fixed characters with `StartAfter`)
are listed concurrently (a folder is split into ranges only when there are fewer folders than
threads: every range costs at least one request); each range stops where the next begins, so
the ranges cover every key exactly once whatever the names are. S3 returns keys in UTF-8
byte order, so sorting the union by that order gives the single paginator's listing back.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd

from tasks.storage import S3_ERRORS, ObjectSummary, S3Client, S3Uri, explain

# Where a folder's key ranges start (after the folder's prefix): a folder is listed as
# len(RANGE_STARTS) + 1 ranges. Spread over digits and letters, where object names mostly begin.
RANGE_STARTS = tuple("2468ADGKNQTWZcfimpsvy")
LISTING_THREADS = 10
# What collect keeps of each listed object (an object summary's Key, Size, ETag, LastModified).
LISTING_COLUMNS = ["key", "bytes", "etag", "last_modified"]


def utf8_order(summary: ObjectSummary) -> bytes:
    return str(summary["Key"]).encode("utf-8")


def list_range(
    client: S3Client, bucket: str, prefix: str, after: str | None, until: str | None
) -> list[ObjectSummary]:
    """The summaries of keys under `prefix` with after < key <= until (None: unbounded)."""
    paginator = client.get_paginator("list_objects_v2")
    arguments: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}  # boto3 keyword arguments
    if after is not None:
        arguments["StartAfter"] = after
    found: list[ObjectSummary] = []
    try:
        for page in paginator.paginate(**arguments):
            for summary in page.get("Contents", []):
                if until is not None and utf8_order(summary) > until.encode("utf-8"):
                    return found
                found.append(summary)
    except S3_ERRORS as error:
        raise explain(error, f"listing s3://{bucket}/{prefix}") from error
    return found


def folder_ranges(prefix: str, count: int = len(RANGE_STARTS) + 1) -> list[tuple[str | None, str | None]]:
    """`count` (after, until] key ranges (at most len(RANGE_STARTS) + 1) that together cover
    every key under a folder's prefix."""
    count = max(1, min(count, len(RANGE_STARTS) + 1))
    starts = [RANGE_STARTS[index * len(RANGE_STARTS) // count] for index in range(1, count)]
    bounds = [prefix + start for start in starts]
    return list(zip([None, *bounds], [*bounds, None], strict=True))


def top_level(client: S3Client, uri: S3Uri) -> tuple[list[str], list[ObjectSummary]]:
    """The folders right under a prefix, and the objects right under it (not in a folder)."""
    prefix = uri.key
    paginator = client.get_paginator("list_objects_v2")
    folders: list[str] = []
    objects: list[ObjectSummary] = []
    try:
        for page in paginator.paginate(Bucket=uri.bucket, Prefix=prefix, Delimiter="/"):
            folders += [item["Prefix"] for item in page.get("CommonPrefixes", [])]
            objects += page.get("Contents", [])
    except S3_ERRORS as error:
        raise explain(error, f"listing {uri}") from error
    return folders, objects


def iter_objects_parallel(
    client: S3Client, uri: S3Uri, threads: int = LISTING_THREADS
) -> Iterator[ObjectSummary]:
    """Yields the object summaries under a prefix as `storage.iter_objects` does (same
    summaries, same order), listing folders and key ranges on `threads` paginators at once."""
    folders, objects = top_level(client, uri)
    # Every range costs at least one request: split folders only as far as the threads need.
    per_folder = max(1, threads // max(1, len(folders)))
    ranges = [
        (folder, after, until) for folder in folders for after, until in folder_ranges(folder, per_folder)
    ]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        parts = list(pool.map(lambda job: list_range(client, uri.bucket, *job), ranges))
    merged = objects + [summary for part in parts for summary in part]
    yield from sorted(merged, key=utf8_order)


def listing_frame(summaries: Iterable[ObjectSummary]) -> pd.DataFrame:
    """Object summaries as collect keeps them (LISTING_COLUMNS), in the given order."""
    rows = [
        (item["Key"], int(item["Size"]), item["ETag"].strip('"'), item["LastModified"].isoformat())
        for item in summaries
    ]
    return pd.DataFrame(rows, columns=LISTING_COLUMNS).astype({"bytes": "int64"})


def in_listing_order(listing: pd.DataFrame) -> pd.DataFrame:
    """A listing sorted by key as S3 lists keys: in UTF-8 byte order, which is the order of
    Python's string comparison (by code point)."""
    return listing.sort_values("key", kind="stable", ignore_index=True)
