"""Listing rate: keys per second listing raw/ with one paginator vs the parallel listing
(folders and key ranges on 10 paginators), against the same local S3 server, same keys.

Run alone with `python -m bench.listing [KEYS]` (default 20,000 empty objects over 10 class
folders; uploading them is part of the set-up and is timed separately)."""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor

from tasks.listing import LISTING_THREADS, iter_objects_parallel
from tasks.storage import S3Client, S3Uri, create_bucket, iter_objects

BUCKET = "bench-listing"
CLASS_FOLDERS = 10


def populate(client: S3Client, keys: int) -> float:
    """Uploads `keys` empty objects as raw/class-N/<hex>.png; returns the seconds it took."""
    create_bucket(client, BUCKET)
    names = [
        f"raw/class-{index % CLASS_FOLDERS}/{index * 2654435761 % 2**32:08x}.png" for index in range(keys)
    ]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=BUCKET, Key=key, Body=b""), names))
    return time.perf_counter() - started


def listing_rates(client: S3Client, bucket: str) -> tuple[float, float]:
    """Keys/s listing the bucket's raw/ with one paginator, then with the parallel listing."""
    raw = S3Uri(bucket, "raw/")
    started = time.perf_counter()
    single = sum(1 for _ in iter_objects(client, raw))
    single_rate = single / (time.perf_counter() - started)
    started = time.perf_counter()
    parallel = sum(1 for _ in iter_objects_parallel(client, raw, threads=LISTING_THREADS))
    parallel_rate = parallel / (time.perf_counter() - started)
    if single != parallel:
        raise RuntimeError(f"listed {single} keys with one paginator, {parallel} in parallel")
    return single_rate, parallel_rate


def measure(client: S3Client, keys: int = 20_000) -> list[tuple[str, float, float]]:
    setup = populate(client, keys)
    single_rate, parallel_rate = listing_rates(client, BUCKET)
    print(f"listing bench: {keys} keys uploaded in {setup:.1f} s", file=sys.stderr)
    return [
        (
            f"listing: keys/s, {LISTING_THREADS} paginators vs 1 ({keys:,} keys, 10 folders)",
            parallel_rate,
            single_rate,
        )
    ]


if __name__ == "__main__":
    from tasks.demo.local_s3 import LocalS3
    from tasks.storage import make_client

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with LocalS3() as server:
        for name, measured, baseline in measure(make_client(server.endpoint_url), count):
            print(f"{name}: {measured:.0f} vs {baseline:.0f} = {measured / baseline:.2f}x")
