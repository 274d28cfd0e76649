"""`make bench`: throughput of the pipeline's I/O paths as ratios against baselines measured in
the same run, on the same machine, against a local S3 server.

  collect   parallel object hashing (16 threads) vs one-at-a-time downloads
  shards    reading a split through tf.data from TFRecord shards vs iterating in-memory arrays
  gate      building the manifest (collect + decode) and validating it vs collection alone
  training  fitting the reference CNN from shards through tf.data vs from in-memory tensors
            (and vs the reference GPU run's 770 images/s when a GPU is visible)
  nights    a night with no change, and one with 1% new images, vs the first night: wall time
            of collect + validate + preprocess, raw-object reads, images decoded, bucket growth
  memory    peak resident memory of preprocess and of training at N and 4N images
  listing   keys/s listing raw/ on 10 paginators (folders and key ranges) vs one paginator
  partitions  the mapped data plane on a real Airflow (LocalExecutor, parallelism 2): wall time
            of collect + validate + preprocess at 4 partitions vs 1, and per-worker rates
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench import gate, listing, memory, nights, partitions, training
from tasks.collect import collect_manifest
from tasks.config import PipelineConfig
from tasks.demo.data import DIGIT_CLASS_NAMES, upload_digits
from tasks.demo.local_s3 import LocalS3
from tasks.layout import catalog, raw_object, raw_root
from tasks.preprocess import build_dataset
from tasks.records import DatasetRecord
from tasks.storage import delete_prefix, get_bytes, iter_objects, make_client
from tasks.train import open_split

IMAGE_COUNT = 1797
IMAGE_SIZE = 128
TRAINING_IMAGES = 512  # first shard of the train split: two epochs each way, about a minute on CPU


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def bench_collect(client, config: PipelineConfig) -> tuple[float, float]:
    keys = [item["Key"] for item in iter_objects(client, raw_root(config))]
    sequential = timed(lambda: [get_bytes(client, raw_object(config.bucket, key)) for key in keys])
    # Without the catalog, as on a first night: every object is read.
    delete_prefix(client, catalog(config).folder())
    parallel = timed(lambda: collect_manifest(client, config, "bench"))
    return len(keys) / sequential, len(keys) / parallel


def bench_shards(client, dataset_uri: str) -> tuple[float, float]:
    import numpy as np
    import tensorflow as tf

    dataset = DatasetRecord.read(client, dataset_uri)
    count = dataset.split_counts["train"]
    with tempfile.TemporaryDirectory() as scratch:
        pipeline = open_split(client, dataset, "train", Path(scratch), 32, shuffle_seed=1)
        arrays = [(images.numpy(), labels.numpy()) for images, labels in pipeline]
        images = np.concatenate([a for a, _ in arrays])
        labels = np.concatenate([b for _, b in arrays])
        in_memory = tf.data.Dataset.from_tensor_slices((images, labels)).batch(32)
        memory_seconds = min(timed(lambda: [None for _ in in_memory]) for _ in range(3))
        shard_seconds = min(timed(lambda: [None for _ in pipeline]) for _ in range(3))
        fit = training.measure(pipeline, min(TRAINING_IMAGES, count), IMAGE_SIZE, 10)
    return count / memory_seconds, count / shard_seconds, fit


def main() -> None:
    with LocalS3() as s3:
        client = make_client(s3.endpoint_url)
        config = PipelineConfig(bucket="bench", image_size=IMAGE_SIZE, class_names=DIGIT_CLASS_NAMES)
        upload_digits(client, config.bucket, config.raw_prefix, IMAGE_SIZE, IMAGE_COUNT)
        sequential, parallel = bench_collect(client, config)
        gate_rates = gate.measure(client, config)
        manifest_uri = collect_manifest(client, config, "bench").manifest_uri
        dataset = build_dataset(client, config, manifest_uri, "bench")
        in_memory, shards, fit = bench_shards(client, dataset.dataset_uri)
        night_rows = nights.measure(client, IMAGE_SIZE)
        memory_rows = memory.measure(s3.endpoint_url, client)
        listing_rows = listing.measure(client)
    partition_rows = partitions.measure()
    rows = [
        ("collect: objects/s, 16 threads vs sequential GETs", parallel, sequential),
        (
            "gate: rows/s, collect with decoding vs collection alone",
            gate_rates["manifest"],
            gate_rates["collection"],
        ),
        (
            "gate: rows/s, GX validation vs collection alone",
            gate_rates["validation"],
            gate_rates["collection"],
        ),
        ("shards: images/s, tf.data from TFRecord vs in-memory", shards, in_memory),
        (f"training ({fit['device']}): images/s, shards vs in-memory", fit["shards"], fit["memory"]),
        (
            f"training ({fit['device']}): images/s vs reference GPU run",
            fit["shards"],
            training.REFERENCE_GPU_IMAGES_PER_SECOND,
        ),
        *night_rows,
        *memory_rows,
        *partition_rows,
        *listing_rows,
    ]
    print(f"{'benchmark':<72} {'measured':>10} {'baseline':>10} {'ratio':>7}")
    for name, measured, baseline in rows:
        ratio = f"{measured / baseline:>6.2f}x" if baseline else "      -"
        print(f"{name:<72} {measured:>10.4g} {baseline:>10.4g} {ratio}")


if __name__ == "__main__":
    main()
