"""The catalogue of bad inputs, each against the moto server: the object is quarantined with
the right reason (and the rest goes on), or the gate fails with a readable line."""

from __future__ import annotations

import pytest
from images_factory import (
    CLASSES,
    PER_CLASS,
    digit_like,
    encode,
    exif_rotated_jpeg,
    png_declaring,
    seed_images,
    sixteen_bit_png,
)
from PIL import Image

from tasks.collect import collect_manifest
from tasks.config import PipelineConfig
from tasks.preprocess import build_dataset
from tasks.records import GateResults
from tasks.storage import S3Uri, get_json, put_bytes
from tasks.validate import DataValidationError, gate_raw_manifest

GATE = {
    "class_names": CLASSES,
    "min_images": 20,
    "min_images_per_class": 5,
    "max_quarantine_fraction": 0.1,
    "image_size": 32,
}


def run_gate(s3, bucket: str, run_id: str = "gate", **overrides):
    """collect + validate, as the DAG runs them."""
    config = PipelineConfig(bucket=bucket, **{**GATE, **overrides})
    collected = collect_manifest(s3, config, run_id)
    return gate_raw_manifest(s3, config.with_classes(collected.class_names), collected.manifest_uri, run_id)


def quarantine_of(s3, bucket: str, run_id: str = "gate") -> dict[str, list[str]]:
    document = get_json(s3, S3Uri(bucket, f"runs/{run_id}/quarantine.json"))
    return {entry["key"]: entry["reasons"] for entry in document["quarantined"]}


@pytest.fixture
def seeded(s3, bucket) -> str:
    seed_images(s3, bucket)
    return bucket


QUARANTINED = [
    ("zero-byte", "raw/zero/empty.png", b"", "undecodable: empty object (0 bytes)"),
    (
        "truncated-jpeg",
        "raw/zero/cut.jpg",
        encode(digit_like(7), "JPEG")[:400],
        "undecodable: does not decode",
    ),
    ("text-named-png", "raw/one/notes.png", b"this is a text file\n", "undecodable: not an image format"),
    (
        "pixel-bomb",
        "raw/one/bomb.png",
        png_declaring(100_000, 100_000),
        "undecodable: exceeds the 40,000,000",
    ),
    ("tiny", "raw/two/tiny.png", encode(Image.new("RGB", (4, 4))), "too small"),
    ("unknown-class", "raw/cat/x.png", encode(digit_like(42)), "unknown class"),
    ("no-class-folder", "raw/loose.png", encode(digit_like(43)), "not under a class folder"),
    ("unsupported-format", "raw/two/anim.gif", encode(digit_like(44), "GIF"), "unsupported format"),
    ("dot-dot-key", "raw/zero/../../etc/passwd.png", encode(digit_like(45)), "unsafe key"),
]


@pytest.mark.parametrize(
    ("key", "body", "reason"), [case[1:] for case in QUARANTINED], ids=[case[0] for case in QUARANTINED]
)
def test_bad_object_is_quarantined_and_the_rest_goes_on(s3, seeded, key, body, reason):
    put_bytes(s3, S3Uri(seeded, key), body)
    result = run_gate(s3, seeded)
    quarantine = quarantine_of(s3, seeded)
    assert list(quarantine) == [key]
    assert quarantine[key][0].startswith(reason), quarantine[key]
    assert result.images == len(CLASSES) * PER_CLASS
    assert result.quarantined == 1


def test_with_inferred_classes_a_stray_object_under_raw_is_still_quarantined(s3, seeded):
    put_bytes(s3, S3Uri(seeded, "raw/loose.png"), encode(digit_like(43)))
    result = run_gate(s3, seeded, class_names=())
    assert result.class_names == sorted(CLASSES)
    assert quarantine_of(s3, seeded) == {"raw/loose.png": ["not under a class folder"]}
    assert result.images == len(CLASSES) * PER_CLASS


def test_the_same_image_under_two_classes_is_a_label_conflict(s3, seeded):
    body = encode(digit_like(77))
    put_bytes(s3, S3Uri(seeded, "raw/zero/dup.png"), body)
    put_bytes(s3, S3Uri(seeded, "raw/one/dup.png"), body)
    run_gate(s3, seeded)
    assert quarantine_of(s3, seeded) == {
        "raw/one/dup.png": ["label conflict"],
        "raw/zero/dup.png": ["label conflict"],
    }


def test_exact_duplicates_within_a_class_are_counted_and_kept_once(s3, seeded):
    body = encode(digit_like(0))  # the same bytes as raw/zero/img-00.png
    put_bytes(s3, S3Uri(seeded, "raw/zero/copy.png"), body)
    result = run_gate(s3, seeded)
    assert result.duplicates == 1 and result.quarantined == 0
    document = get_json(s3, S3Uri(seeded, "runs/gate/quarantine.json"))
    assert document["duplicates_dropped"] == ["raw/zero/img-00.png"]  # listing order: copy.png first
    assert result.images == len(CLASSES) * PER_CLASS


@pytest.mark.parametrize(
    ("key", "body"),
    [
        ("raw/zero/gray.png", encode(Image.new("L", (32, 32), 90))),
        ("raw/one/alpha.png", encode(Image.new("RGBA", (32, 32), (10, 200, 30, 128)))),
        ("raw/two/deep.png", sixteen_bit_png(40000)),
        ("raw/zero/print.jpg", encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG")),
        ("raw/one/phone.jpg", exif_rotated_jpeg()),
    ],
    ids=["grayscale-png", "rgba-png", "16-bit-png", "cmyk-jpeg", "exif-rotated-jpeg"],
)
def test_convertible_images_are_kept_and_preprocessed(s3, seeded, key, body):
    put_bytes(s3, S3Uri(seeded, key), body)
    result = run_gate(s3, seeded)
    assert quarantine_of(s3, seeded) == {}
    assert result.images == len(CLASSES) * PER_CLASS + 1
    processed = build_dataset(s3, PipelineConfig(bucket=seeded, **GATE), result.clean_manifest_uri, "gate")
    assert sum(processed.split_counts.values()) == result.images


def test_a_class_with_no_images_fails_naming_it(s3, bucket):
    seed_images(s3, bucket, classes=("zero", "one"))
    with pytest.raises(DataValidationError, match=r"class two: 0 images < min_images_per_class 5\b"):
        run_gate(s3, bucket)


def test_too_many_quarantined_objects_fail_with_the_count(s3, seeded):
    for index in range(5):
        put_bytes(s3, S3Uri(seeded, f"raw/zero/broken-{index}.png"), b"broken")
    with pytest.raises(DataValidationError, match=r"quarantined 5 of 41 objects \(12\.2%\) > 10\.0% allowed"):
        run_gate(s3, seeded)
    assert len(quarantine_of(s3, seeded)) == 5  # written even though the gate failed


def test_imbalance_beyond_bounds_fails(s3, bucket):
    seed_images(s3, bucket, per_class=6)
    for index in range(40):
        put_bytes(s3, S3Uri(bucket, f"raw/zero/more-{index:02d}.png"), encode(digit_like(500 + index)))
    with pytest.raises(
        DataValidationError, match=r"class zero: 0\.\d+ share > share bound from max_class_imbalance 0\.\d+"
    ):
        run_gate(s3, bucket, max_class_imbalance=2.0)


def test_data_docs_and_results_are_published(s3, seeded):
    result = run_gate(s3, seeded)
    assert result.data_docs_uri == f"s3://{seeded}/reports/gate/data_docs/raw/index.html"
    body = s3.get_object(Bucket=seeded, Key="reports/gate/data_docs/raw/index.html")["Body"].read()
    assert b"raw_manifest_rows" in body
    results = GateResults.read(s3, S3Uri(seeded, "reports/gate/data_docs/raw/validation_results.json"))
    assert set(results.suites) == {"raw_manifest_rows", "raw_manifest_classes"}
    assert results.success and results.failures == []
