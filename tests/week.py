"""A week of nights on one bucket whose data changes between nights as a real catalogue does
(images added, deleted, overwritten with new content, corrupt files and desktop/Spark
leftovers uploaded, one night with no change at all), run once per session (`week_of_nights`).
The nights warm-start as a deployment with `warm_start=auto` and `full_retrain_every=1` would:
from scratch, warm, (no change), from scratch, warm, from scratch, warm.

The fixture only runs and observes: after each night it records what the bucket held (the
quarantine, the registry, retention's tidiness, the pipeline's storage), since later nights
change it; tests/dags/test_week_of_nights.py and test_warm_start_nights.py assert on that.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from nights import Night

from tasks.demo.data import DIGIT_CLASS_NAMES, DIGIT_PARAMS, digit_png
from tasks.layout import dataset_layout, example_store, run_layout_of
from tasks.preprocess import PREPROCESSING_VERSION
from tasks.registry import Registry
from tasks.storage import (
    S3Uri,
    create_bucket,
    delete_prefix,
    exists,
    get_json,
    iter_objects,
    make_client,
    put_bytes,
)

IMAGE_SIZE = 24
FIRST_NIGHT_IMAGES = 500
KEEP_RUNS = 2
MODEL_NAME = "weekly"
CONF = {
    "image_size": IMAGE_SIZE,
    "epochs": 2,
    "warm_epochs": 1,
    "warm_start": "auto",
    "full_retrain_every": 1,
    "min_images": 100,
    # The data decides each night's outcome, not a short training's accuracy.
    "min_test_accuracy": 0.0,
    "max_regression": None,
    "max_attempts": 1,
    "keep_runs": KEEP_RUNS,
    "max_quarantine_fraction": 0.02,  # two nights add 0.5% corrupt files each, and they stay
    **DIGIT_PARAMS,
}
NOISE = (
    "raw/.DS_Store",
    "raw/three/.DS_Store",
    "raw/_SUCCESS",
    "raw/__MACOSX/five/._digit.png",
    "raw/Thumbs.db",
)


class Catalogue:
    """The bucket's raw/ images as the users change them, from scikit-learn's 1,797 digits."""

    def __init__(self, client, bucket: str) -> None:
        from sklearn.datasets import load_digits

        self.client, self.bucket = client, bucket
        self.digits = load_digits()
        self.unused = list(range(len(self.digits.images)))
        random.Random(7).shuffle(self.unused)
        self.keys: dict[str, int] = {}  # key -> label
        self.corrupt: list[str] = []
        self.random = random.Random(11)

    def put_digit(self, key: str | None = None, label: int | None = None) -> None:
        """A new image at `key` (a new key when None); for an existing key, of the same class."""
        while True:
            index = self.unused.pop()
            if label is None or int(self.digits.target[index]) == label:
                break
        label = int(self.digits.target[index])
        key = key or f"raw/{DIGIT_CLASS_NAMES[label]}/digit-{index:04d}.png"
        put_bytes(self.client, S3Uri(self.bucket, key), digit_png(self.digits.images[index], IMAGE_SIZE))
        self.keys[key] = label

    def add(self, count: int) -> None:
        for _ in range(count):
            self.put_digit()

    def delete(self, count: int) -> None:
        for key in self.random.sample(sorted(self.keys), count):
            self.client.delete_object(Bucket=self.bucket, Key=key)
            del self.keys[key]

    def overwrite(self, count: int) -> None:
        for key in self.random.sample(sorted(self.keys), count):
            self.put_digit(key, self.keys[key])

    def add_corrupt(self, count: int) -> None:
        for _ in range(count):
            key = f"raw/{self.random.choice(DIGIT_CLASS_NAMES)}/broken-{uuid.uuid4().hex[:6]}.png"
            put_bytes(self.client, S3Uri(self.bucket, key), b"\x89PNG\r\n\x1a\n" + np.random.bytes(64))
            self.corrupt.append(key)

    def add_unusable(self) -> None:
        """A decompression bomb and a file that is no image, in a folder of no class."""
        from images_factory import png_declaring

        for key, body in (
            ("raw/seven/bomb.png", png_declaring(90_000, 90_000)),
            ("raw/parrot/hello.png", b"not even an image"),
        ):
            put_bytes(self.client, S3Uri(self.bucket, key), body)
            self.corrupt.append(key)

    def add_noise(self) -> None:
        for key in NOISE:
            put_bytes(self.client, S3Uri(self.bucket, key), b"\x00\x01noise")

    def change(self, add: float, delete: float, overwrite: float, corrupt: float = 0.0) -> None:
        size = len(self.keys)
        self.add(round(size * add))
        self.delete(round(size * delete))
        self.overwrite(round(size * overwrite))
        self.add_corrupt(round(size * corrupt))


def run_folders(client, bucket: str) -> set[str]:
    return {item["Key"].split("/")[1] for item in iter_objects(client, S3Uri(bucket, "runs/"))}


def pipeline_bytes(client, bucket: str) -> int:
    """The bucket's size outside raw/: what the pipeline itself stores."""
    items = iter_objects(client, S3Uri(bucket, ""))
    return sum(item["Size"] for item in items if not item["Key"].startswith("raw/"))


def untidy(client, bucket: str, versions: int) -> list[str]:
    """What breaks retention's promise: more than KEEP_RUNS runs beyond those behind model
    versions, or an example pack that no kept dataset holds."""
    problems = []
    folders = run_folders(client, bucket)
    if len(folders) > KEEP_RUNS + versions:
        problems.append(f"{len(folders)} run folders kept: {sorted(folders)}")
    referenced: set[str] = set()
    for folder in folders:
        reference = run_layout_of(bucket, folder).dataset_ref
        if exists(client, reference):
            record_uri = dataset_layout(bucket, get_json(client, reference)["dataset_id"]).record
            for uris in get_json(client, record_uri)["packs"].values():
                referenced.update(uris)
    store = example_store(bucket, IMAGE_SIZE, PREPROCESSING_VERSION).root.folder()
    stored = {
        f"s3://{bucket}/{item['Key']}"
        for item in iter_objects(client, store)
        if item["Key"].endswith(".tfrecord")
    }
    problems += [f"{uri}: no kept dataset holds it" for uri in sorted(stored - referenced)]
    return problems


@dataclass(frozen=True)
class ObservedNight:
    """One night of the week and what the bucket held right after it."""

    night: Night
    corrupt: frozenset[str]  # the corrupt or unusable keys in raw/ that night
    quarantined: frozenset[str]
    skipped_as_noise: int
    data_docs_published: bool  # both gates' Data Docs: index.html and validation_results.json
    versions: list[tuple[int, bool]]  # (version, complete) as the registry lists them
    pointer_complete: bool  # production names a version whose _COMPLETE exists
    untidy: list[str]
    pipeline_bytes: int


@dataclass(frozen=True)
class Week:
    bucket: str
    catalogue: Catalogue
    nights: list[ObservedNight]


def observe(s3, bucket: str, night: Night, catalogue: Catalogue) -> ObservedNight:
    registry = Registry(s3, bucket, MODEL_NAME)
    layout = run_layout_of(bucket, night.segment)
    data_docs = [layout.reports.join("data_docs", part) for part in ("raw", "processed")]
    versions = registry.versions()
    pointer = registry.pointer()
    return ObservedNight(
        night=night,
        corrupt=frozenset(catalogue.corrupt),
        quarantined=frozenset(entry["key"] for entry in get_json(s3, layout.quarantine)["quarantined"]),
        skipped_as_noise=sum(get_json(s3, layout.manifest_summary)["skipped_as_noise"].values()),
        data_docs_published=all(
            exists(s3, folder.join(name))
            for folder in data_docs
            for name in ("index.html", "validation_results.json")
        ),
        versions=[(version.version, version.complete) for version in versions],
        pointer_complete=pointer is not None
        and exists(s3, S3Uri.parse(pointer.version_uri).join("_COMPLETE")),
        untidy=untidy(s3, bucket, len(versions)),
        pipeline_bytes=pipeline_bytes(s3, bucket),
    )


@pytest.fixture(scope="session")
def week_of_nights(run_night, s3_endpoint) -> Iterator[Week]:
    s3 = make_client(s3_endpoint)
    bucket = f"week-{uuid.uuid4().hex[:6]}"
    create_bucket(s3, bucket)
    catalogue = Catalogue(s3, bucket)
    changes = (
        lambda: (catalogue.add(FIRST_NIGHT_IMAGES), catalogue.add_unusable(), catalogue.add_noise()),
        lambda: (catalogue.change(0.02, 0.01, 0.01, corrupt=0.005), catalogue.add_noise()),
        lambda: None,  # nobody touched the bucket
        lambda: catalogue.change(0.02, 0.01, 0.01),
        lambda: catalogue.change(0.02, 0.01, 0.01, corrupt=0.005),
        lambda: catalogue.change(0.02, 0.0, 0.0),
        lambda: catalogue.change(0.0, 0.01, 0.01),
    )
    nights = []
    for change in changes:
        change()
        night = run_night(bucket=bucket, model_name=MODEL_NAME, **CONF)
        nights.append(observe(s3, bucket, night, catalogue))
    yield Week(bucket, catalogue, nights)
    delete_prefix(s3, S3Uri(bucket, ""))
