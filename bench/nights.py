"""Nights after the first: what a night with no change, and one with 1% new images, cost next
to the first night on the same bucket (collect + validate + preprocess, as the DAG runs them)."""

from __future__ import annotations

import time

from tasks.collect import collect_manifest
from tasks.config import PipelineConfig
from tasks.demo.data import DIGIT_CLASS_NAMES, digit_png, upload_digits
from tasks.layout import raw_image
from tasks.preprocess import build_dataset
from tasks.storage import S3Client, S3Uri, iter_objects, put_bytes
from tasks.validate import gate_raw_manifest

BUCKET = "bench-nights"


def stored_bytes(client: S3Client) -> int:
    """What the pipeline keeps in the bucket (everything but raw/)."""
    return sum(
        item["Size"] for item in iter_objects(client, S3Uri(BUCKET, "")) if not item["Key"].startswith("raw/")
    )


def night(client: S3Client, config: PipelineConfig, run_id: str) -> dict[str, float]:
    reads: list[str] = []

    def record(params: dict, **_: object) -> None:
        if params["Key"].startswith("raw/"):
            reads.append(params["Key"])

    client.meta.events.register("provide-client-params.s3.GetObject", record)
    before = stored_bytes(client)
    started = time.perf_counter()
    collected = collect_manifest(client, config, run_id)
    resolved = config.with_classes(collected.class_names)
    gate = gate_raw_manifest(client, resolved, collected.manifest_uri, run_id)
    dataset = build_dataset(client, resolved, gate.clean_manifest_uri, run_id)
    seconds = time.perf_counter() - started
    client.meta.events.unregister("provide-client-params.s3.GetObject", record)
    return {
        "seconds": seconds,
        "reads": len(reads),
        "decoded": dataset.images_decoded,
        "bytes": stored_bytes(client) - before,
    }


def measure(client: S3Client, image_size: int) -> list[tuple[str, float, float]]:
    import numpy as np

    config = PipelineConfig(bucket=BUCKET, image_size=image_size, class_names=DIGIT_CLASS_NAMES)
    count = upload_digits(client, BUCKET, config.raw_prefix, image_size)
    first = night(client, config, "night-1")
    unchanged = night(client, config, "night-2")
    new = count // 100
    rng = np.random.default_rng(0)
    for index in range(new):  # 1% new images: noisy digits, so their content is new
        pixels = np.clip(rng.normal(8, 4, (8, 8)), 0, 16)
        put_bytes(
            client,
            raw_image(BUCKET, config.raw_prefix, "seven", f"new-{index}.png"),
            digit_png(pixels, image_size),
        )
    grown = night(client, config, "night-3")
    return [
        (
            "nights: s, no-change night vs first night (collect+validate+preprocess)",
            unchanged["seconds"],
            first["seconds"],
        ),
        ("nights: raw GETs, no-change night vs first night", unchanged["reads"], first["reads"]),
        ("nights: bytes stored, no-change night vs first night", unchanged["bytes"], first["bytes"]),
        (
            f"nights: raw GETs, night with {new} new images (1%) vs first night",
            grown["reads"],
            first["reads"],
        ),
        (
            f"nights: images decoded, night with {new} new images vs first night",
            grown["decoded"],
            first["decoded"],
        ),
        ("nights: s, night with 1% new images vs first night", grown["seconds"], first["seconds"]),
    ]
