"""The demo data set: real digits as RGB PNGs under the raw-data contract."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from tasks.demo.data import DIGIT_CLASS_NAMES, digit_png, upload_digits
from tasks.storage import S3Uri, get_bytes, iter_objects


def test_digit_becomes_an_rgb_png_of_the_requested_size():
    pixels = np.zeros((8, 8))
    pixels[2:6, 3] = 16
    with Image.open(io.BytesIO(digit_png(pixels, 128))) as image:
        assert (image.format, image.mode, image.size) == ("PNG", "RGB", (128, 128))
        array = np.asarray(image)
    assert array.max() > 200 and array.min() == 0  # ink and background survive the upscale


def test_upload_follows_the_raw_contract(s3, bucket):
    assert upload_digits(s3, bucket, "raw/", image_size=32, limit=30) == 30
    keys = [item["Key"] for item in iter_objects(s3, S3Uri(bucket, "raw/"))]
    assert len(keys) == 30
    assert {key.split("/")[1] for key in keys} <= set(DIGIT_CLASS_NAMES)
    assert "raw/zero/digit-0000.png" in keys
    with Image.open(io.BytesIO(get_bytes(s3, S3Uri(bucket, keys[0])))) as image:
        assert image.size == (32, 32)
