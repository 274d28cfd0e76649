"""Peak resident memory of preprocess and of training at N and 4N images, each measured in a
fresh process (so one measurement's memory does not carry into the next). With memory that
does not grow with the dataset, the 4N/N ratio stays near 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tasks.config import PipelineConfig
from tasks.demo.data import DIGIT_CLASS_NAMES, upload_digits
from tasks.storage import S3Client

IMAGE_SIZE = 128
SMALL = 400  # N; 4N = 1,600 of the 1,797 digits


def peak_rss_mib() -> float:
    """This process's peak resident memory. (getrusage's maxrss would carry the parent's
    peak across fork and exec.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(command: list[str], endpoint_url: str) -> dict:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.memory", *command],
        env={**os.environ, "AWS_ENDPOINT_URL": endpoint_url},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def measure(endpoint_url: str, client: S3Client) -> list[tuple[str, float, float]]:
    peaks: dict[str, dict[int, float]] = {"preprocess": {}, "training": {}}
    for count in (SMALL, 4 * SMALL):
        bucket = f"bench-memory-{count}"
        upload_digits(client, bucket, "raw/", IMAGE_SIZE, count)
        built = child(["preprocess", bucket], endpoint_url)
        peaks["preprocess"][count] = built["peak_mib"]
        trained = child(["train", built["dataset_uri"], f"s3://{bucket}/runs/memory/attempt-1"], endpoint_url)
        peaks["training"][count] = trained["peak_mib"]
    big = 4 * SMALL
    return [
        (
            f"memory: peak MiB of {step}, {big} vs {SMALL} images at {IMAGE_SIZE} px",
            peaks[step][big],
            peaks[step][SMALL],
        )
        for step in ("preprocess", "training")
    ]


def main(argv: list[str]) -> None:
    from tasks.storage import make_client

    client = make_client()
    if argv[0] == "preprocess":
        from tasks.collect import collect_manifest
        from tasks.preprocess import build_dataset

        config = PipelineConfig(bucket=argv[1], image_size=IMAGE_SIZE, class_names=DIGIT_CLASS_NAMES)
        result = build_dataset(
            client, config, collect_manifest(client, config, "memory").manifest_uri, "memory"
        )
        print(json.dumps({"peak_mib": peak_rss_mib(), "dataset_uri": result.dataset_uri}))
    else:
        from tasks.train import TrainRequest, run_training

        run_training(client, TrainRequest(argv[1], argv[2], epochs=1))
        print(json.dumps({"peak_mib": peak_rss_mib()}))


if __name__ == "__main__":
    main(sys.argv[1:])
