"""A local S3 server (moto's server mode) whose buckets are filled on the server's side: tiny
valid PNGs, each with content of its own, under raw/class-<n>/ in 10 class folders. Writing
them straight into the server's store takes seconds where uploading them one PUT at a time
takes minutes (20,000 PUTs: about 120 s on 2 CPU cores). Its listings cost what S3's do, in
proportion to the keys listed (see index_listings).

    python -m bench.seeded_s3 PORT BUCKET=COUNT [BUCKET=COUNT ...]

prints `ready <seconds the objects took>` once it serves, and serves until killed.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from PIL import Image

from tasks.demo.local_s3 import DUMMY_CREDENTIALS, free_port

CLASS_FOLDERS = 10
SIDE = 16  # the smallest side the gate accepts by default (min_image_side)
ACCOUNT = "123456789012"  # moto's default account


def tiny_png(index: int) -> bytes:
    """A 16x16 RGB PNG whose first pixels spell `index`: every index its own content."""
    pixels = np.zeros((SIDE, SIDE, 3), dtype=np.uint8)
    pixels.reshape(-1)[:8] = np.frombuffer(index.to_bytes(8, "little"), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def object_key(index: int) -> str:
    return f"raw/class-{index % CLASS_FOLDERS}/{index:07d}.png"


def fill(bucket: str, count: int) -> None:
    from moto.backends import get_backend

    backend = get_backend("s3")[ACCOUNT]["global"]
    backend.create_bucket(bucket, "us-east-1")
    for index in range(count):
        backend.put_object(bucket, object_key(index), tiny_png(index))


@contextmanager
def seeded_s3(buckets: dict[str, int]) -> Iterator[tuple[str, float]]:
    """(endpoint URL, seconds the objects took) of a seeded server, stopped on exit."""
    for name, value in DUMMY_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.seeded_s3", str(port), *(f"{b}={n}" for b, n in buckets.items())],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = process.stdout.readline().split() if process.stdout else []
        if not line or line[0] != "ready":
            raise RuntimeError(f"seeded S3 server did not start (exit {process.poll()})")
        yield f"http://127.0.0.1:{port}", float(line[1])
    finally:
        process.terminate()
        process.wait(timeout=30)


def index_listings() -> None:
    """Answers ListObjectsV2 pages from a sorted index of the keys, as S3 does. Stock moto
    filters and sorts the whole bucket for every page of 1,000 keys, so listing N keys costs
    O(N^2): 20,000 keys list in 5.4 s but 80,000 in 31.8 s (2 CPU cores). Here the index is
    built when a listing starts (a request without a continuation token), and each page
    costs what its keys cost. Listings with a delimiter keep moto's own code."""
    from bisect import bisect_right

    from moto.s3.models import S3Backend

    stock = S3Backend.list_objects_v2
    started: dict[tuple[str, str], list[str]] = {}

    def list_objects_v2(self, bucket, prefix, delimiter, continuation_token, start_after, max_keys):  # type: ignore[no-untyped-def]
        if delimiter:
            return stock(self, bucket, prefix, delimiter, continuation_token, start_after, max_keys)
        listing = (bucket.name, prefix or "")
        if not continuation_token or listing not in started:
            started[listing] = sorted(name for name in bucket.keys if name.startswith(prefix or ""))
        names = started[listing]
        after = self._pagination_tokens.get(continuation_token) if continuation_token else start_after
        first = bisect_right(names, after) if after else 0
        page = [bucket.keys[name] for name in names[first : first + max_keys + 1] if name in bucket.keys]
        return self._truncate_result(page, max_keys)

    S3Backend.list_objects_v2 = list_objects_v2  # type: ignore[method-assign]


def main(argv: list[str]) -> None:
    from moto.server import ThreadedMotoServer

    index_listings()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(argv[0]), verbose=False)
    server.start()
    started = time.perf_counter()
    for pair in argv[1:]:
        bucket, count = pair.split("=")
        fill(bucket, int(count))
    print(f"ready {time.perf_counter() - started:.1f}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main(sys.argv[1:])
