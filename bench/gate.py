"""Cost of the data-quality gate next to collection: rows/second of (a) collection alone
(listing, parallel download and hashing), (b) the same plus decoding every image to build
the manifest, and (c) the Great Expectations suites over that manifest."""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path

from tasks.collect import collect_manifest, read_manifest
from tasks.config import PipelineConfig
from tasks.expectations import Validator
from tasks.layout import catalog, raw_object, raw_root
from tasks.storage import S3Client, delete_prefix, get_bytes, iter_objects, parallel_map
from tasks.validate import gate_manifest


def measure(client: S3Client, config: PipelineConfig) -> dict[str, float]:
    started = time.perf_counter()
    keys = [item["Key"] for item in iter_objects(client, raw_root(config))]
    parallel_map(
        lambda key: hashlib.sha256(get_bytes(client, raw_object(config.bucket, key))).hexdigest(), keys
    )
    collection_seconds = time.perf_counter() - started

    delete_prefix(client, catalog(config).folder())  # read every object
    started = time.perf_counter()
    manifest_uri = collect_manifest(client, config, "bench-gate").manifest_uri
    manifest_seconds = time.perf_counter() - started

    manifest = read_manifest(client, manifest_uri)
    with tempfile.TemporaryDirectory() as scratch:
        gate_manifest(manifest, config, Validator(Path(scratch) / "warm-up"))  # imports, registries
        started = time.perf_counter()
        gate_manifest(manifest, config, Validator(Path(scratch) / "docs"))
        validation_seconds = time.perf_counter() - started
    rows = len(keys)
    return {
        "collection": rows / collection_seconds,
        "manifest": rows / manifest_seconds,
        "validation": rows / validation_seconds,
    }
