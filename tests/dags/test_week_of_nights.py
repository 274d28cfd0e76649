"""A week of nights: the DAG runs seven times through `dag.test()` on one bucket whose data
changes between nights as a real catalogue does (images added, deleted, overwritten with new
content, corrupt files and desktop/Spark leftovers uploaded, one night with no change at all).
The first night holds a decompression bomb and a file that is no image in a folder of no
class. After every night the outcome is what the data warrants and the bucket stays tidy."""

from __future__ import annotations

import random
import uuid

import numpy as np
import pytest
from reliability import record

from tasks.demo.data import DIGIT_CLASS_NAMES, DIGIT_PARAMS, digit_png
from tasks.layout import dataset_layout, example_store, run_layout_of
from tasks.preprocess import PREPROCESSING_VERSION
from tasks.registry import Registry
from tasks.storage import S3Uri, create_bucket, delete_prefix, exists, get_json, iter_objects, put_bytes

pytestmark = pytest.mark.slow

IMAGE_SIZE = 24
FIRST_NIGHT_IMAGES = 500
KEEP_RUNS = 2
CONF = {
    "image_size": IMAGE_SIZE,
    "epochs": 1,
    "min_images": 100,
    # The data decides each night's outcome, not one epoch's accuracy against the champion's.
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


def check_tidy(client, bucket: str, versions: int) -> None:
    """Retention's promise: at most KEEP_RUNS runs beyond those behind model versions, and no
    example pack that no kept dataset holds."""
    folders = run_folders(client, bucket)
    assert len(folders) <= KEEP_RUNS + versions, sorted(folders)
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
    assert stored <= referenced, sorted(stored - referenced)


def test_a_week_of_changing_nights(run_night, s3):
    bucket = f"week-{uuid.uuid4().hex[:6]}"
    create_bucket(s3, bucket)
    catalogue = Catalogue(s3, bucket)
    model_name = "weekly"
    registry = Registry(s3, bucket, model_name)
    changes = {
        1: lambda: (catalogue.add(FIRST_NIGHT_IMAGES), catalogue.add_unusable(), catalogue.add_noise()),
        2: lambda: (catalogue.change(0.02, 0.01, 0.01, corrupt=0.005), catalogue.add_noise()),
        3: lambda: None,  # nobody touched the bucket
        4: lambda: catalogue.change(0.02, 0.01, 0.01),
        5: lambda: catalogue.change(0.02, 0.01, 0.01, corrupt=0.005),
        6: lambda: catalogue.change(0.02, 0.0, 0.0),
        7: lambda: catalogue.change(0.0, 0.01, 0.01),
    }
    outcomes, sizes, deployed = [], [], 0
    for night, change in changes.items():
        change()
        ran = run_night(bucket=bucket, model_name=model_name, **CONF)
        states = ran.states
        assert ran.state == "success", (night, states)
        layout = run_layout_of(bucket, ran.segment)
        assert sum(get_json(s3, layout.manifest_summary)["skipped_as_noise"].values()) == len(NOISE)
        quarantined = {entry["key"] for entry in get_json(s3, layout.quarantine)["quarantined"]}
        assert quarantined == set(catalogue.corrupt), night
        if night == 1:  # a night with quarantined objects deploys and publishes its gates' reports
            for part in ("raw", "processed"):
                data_docs = layout.reports.join("data_docs", part)
                assert exists(s3, data_docs.join("index.html"))
                assert exists(s3, data_docs.join("validation_results.json"))
        if night == 3:
            assert states["nothing_to_train"] == "success" and states["deploy"] == "skipped", states
            outcomes.append("skip")
        else:
            assert states["deploy"] == "success", (night, states)
            deployed += 1
            outcomes.append(f"deploy ({len(quarantined)} quarantined)" if quarantined else "deploy")
        versions = registry.versions()
        assert [(v.version, v.complete) for v in versions] == [(n, True) for n in range(1, deployed + 1)]
        pointer = registry.pointer()
        assert pointer.version == deployed
        assert exists(s3, S3Uri.parse(pointer.version_uri).join("_COMPLETE"))
        check_tidy(s3, bucket, deployed)
        sizes.append(pipeline_bytes(s3, bucket))

    assert [outcome.split(" ")[0] for outcome in outcomes] == ["deploy"] * 2 + ["skip"] + ["deploy"] * 4
    record(
        "week-of-nights",
        f"7 nights on {FIRST_NIGHT_IMAGES}+ images: +2%/-1%/~1% overwritten per night, 0.5% corrupt on "
        "nights 2 and 5 (left in the bucket), a decompression bomb and a non-image on night 1, noise files, "
        "one night unchanged",
        7,
        ", ".join(outcomes) + f"; versions 1-{deployed} consecutive and complete",
        "nothing; pipeline storage (all but raw/) per night in KiB: "
        + " ".join(str(size // 1024) for size in sizes),
    )
    delete_prefix(s3, S3Uri(bucket, ""))
