"""Noise files: what desktops, archivers and data jobs leave in a bucket is skipped at
listing, counted, and never quarantined."""

from __future__ import annotations

import pytest
from images_factory import seed_images

from tasks.collect import collect_manifest, read_manifest
from tasks.config import PipelineConfig
from tasks.layout import run_layout
from tasks.noise import noise_kind
from tasks.storage import S3Uri, get_json, put_bytes
from tasks.validate import gate_raw_manifest

NOISE = {
    "raw/zero/.DS_Store": ".DS_Store",
    "raw/.DS_Store": ".DS_Store",
    "raw/one/._img-00.png": "._* (AppleDouble)",
    "raw/one/Thumbs.db": "Thumbs.db",
    "raw/zero/desktop.ini": "desktop.ini",
    "raw/__MACOSX/one/img-01.png": "__MACOSX/",
    "raw/_SUCCESS": "_SUCCESS",
    "raw/zero/_committed_123": "_committed_*",
    "raw/one/_temporary/0/part-0.png": "_temporary/",
    "raw/zero/.part-0.png.crc": ".part-0.png.crc",
    "raw/one_$folder$": "*_$folder$",
    "raw/one/": "folder marker",
    "raw/.ipynb_checkpoints/x.png": ".ipynb_checkpoints/",
}


@pytest.mark.parametrize(("key", "kind"), NOISE.items())
def test_well_known_non_data_names_are_noise(key, kind):
    assert noise_kind(key, "raw/") == kind


@pytest.mark.parametrize(
    "key",
    [
        "raw/zero/img-00.png",
        "raw/one/photo.DS_Store.png",
        "raw/zero/success.png",
        "raw/zero/../../etc/passwd.png",  # unsafe: left to the gate, which quarantines it
    ],
)
def test_images_are_not_noise(key):
    assert noise_kind(key, "raw/") is None


def test_ignore_patterns_extend_the_list():
    assert noise_kind("raw/zero/notes.txt", "raw/", ("*.txt",)) == "ignore_patterns *.txt"
    assert noise_kind("raw/exports/a.png", "raw/", ("exports/*",)) == "ignore_patterns exports/*"
    assert noise_kind("raw/zero/a.png", "raw/", ("*.txt",)) is None


def test_noise_is_skipped_counted_and_not_quarantined(s3, bucket):
    seed_images(s3, bucket, classes=("zero", "one"), per_class=20)
    for key in NOISE:
        put_bytes(s3, S3Uri(bucket, key), b"\x00 not an image")
    put_bytes(s3, S3Uri(bucket, "raw/zero/notes.txt"), b"labelled by hand")
    config = PipelineConfig(
        bucket=bucket, min_images=20, max_quarantine_fraction=0.01, ignore_patterns=("*.txt",)
    )
    collected = collect_manifest(s3, config, "noisy")
    assert collected.class_names == ["one", "zero"]  # no class from __MACOSX or _temporary
    assert len(read_manifest(s3, collected.manifest_uri)) == 40
    summary = get_json(s3, run_layout(config, "noisy").manifest_summary)
    assert sum(summary["skipped_as_noise"].values()) == len(NOISE) + 1
    assert summary["skipped_as_noise"][".DS_Store"] == 2
    gate = gate_raw_manifest(s3, config.with_classes(collected.class_names), collected.manifest_uri, "noisy")
    assert gate.quarantined == 0 and gate.images == 40
