"""The example store: content decoded once per image size, reused by later nights, written
chunk by chunk so that memory holds one chunk of images, not the dataset. (200 images split
80/10/10 by hash stray further from those shares than a large set: the tolerance is wider.)"""

from __future__ import annotations

import weakref

from images_factory import digit_like, encode
from steps import collect_and_build

from tasks.config import PipelineConfig
from tasks.examples import PREPROCESSING_VERSION, read_index
from tasks.layout import example_store
from tasks.storage import S3Uri, get_json, iter_objects, put_bytes


def packs(s3, bucket: str) -> set[str]:
    return {
        item["Key"]
        for item in iter_objects(s3, S3Uri(bucket, "examples/"))
        if item["Key"].endswith(".tfrecord")
    }


def test_a_second_night_decodes_nothing_and_refers_to_the_same_dataset(s3, small_digits, raw_reads):
    config = PipelineConfig(bucket=small_digits, image_size=32, split_tolerance=0.2)
    first = collect_and_build(s3, config, "night-1")
    assert (first.images_decoded, first.images_reused) == (200, 0)
    written = packs(s3, small_digits)
    reads = raw_reads(s3)
    second = collect_and_build(s3, config, "night-2")
    assert reads == []
    assert (second.images_decoded, second.images_reused) == (0, 200)
    assert second.dataset_uri == first.dataset_uri and second.fingerprint == first.fingerprint
    assert packs(s3, small_digits) == written


def test_only_new_content_is_decoded(s3, small_digits, raw_reads):
    config = PipelineConfig(bucket=small_digits, image_size=32, split_tolerance=0.2)
    first = collect_and_build(s3, config, "night-1")
    put_bytes(s3, S3Uri(small_digits, "raw/three/new.png"), encode(digit_like(903)))
    reads = raw_reads(s3)
    second = collect_and_build(s3, config, "night-2")
    assert reads == ["raw/three/new.png", "raw/three/new.png"]  # collect, then preprocess
    assert (second.images_decoded, second.images_reused) == (1, 200)
    assert second.fingerprint != first.fingerprint
    dataset = get_json(s3, S3Uri.parse(second.dataset_uri))
    assert sum(dataset["split_counts"].values()) == 201


def test_another_image_size_processes_everything_again(s3, small_digits):
    collect_and_build(s3, PipelineConfig(bucket=small_digits, image_size=32, split_tolerance=0.2), "night-1")
    bigger = collect_and_build(
        s3, PipelineConfig(bucket=small_digits, image_size=40, split_tolerance=0.2), "night-2"
    )
    assert (bigger.images_decoded, bigger.images_reused) == (200, 0)
    assert len(read_index(s3, example_store(small_digits, 40, PREPROCESSING_VERSION))) == 200


def test_preprocess_holds_one_chunk_of_images_at_a_time(s3, small_digits, monkeypatch):
    """Every decoded image is tracked until it is freed: at most one chunk is alive at once,
    however many images the dataset holds (the old code held all 200)."""
    import tasks.examples as examples

    monkeypatch.setattr(examples, "CHUNK_IMAGES", 20)
    alive, most = [0], [0]
    real_decode = examples.decode_rgb

    def decode_and_track(*args, **kwargs):
        image = real_decode(*args, **kwargs)
        alive[0] += 1
        most[0] = max(most[0], alive[0])
        weakref.finalize(image, lambda: alive.__setitem__(0, alive[0] - 1))
        return image

    monkeypatch.setattr(examples, "decode_rgb", decode_and_track)
    result = collect_and_build(
        s3, PipelineConfig(bucket=small_digits, image_size=32, split_tolerance=0.2), "bounded"
    )
    assert result.images_decoded == 200
    assert most[0] <= 2 * 20
