"""Safe decoding: every accepted mode becomes upright 8-bit RGB; bad bytes are named."""

from __future__ import annotations

import numpy as np
import pytest
from images_factory import digit_like, encode, exif_rotated_jpeg, png_declaring, sixteen_bit_png
from PIL import Image

from tasks.images import ImageDecodeError, decode_rgb, inspect, to_rgb, unsafe_key


def test_a_good_png_is_described():
    facts = inspect(encode(digit_like(3)))
    assert (facts.format, facts.width, facts.height, facts.mode, facts.channels, facts.problem) == (
        "PNG",
        32,
        32,
        "RGB",
        3,
        None,
    )


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"", "empty object (0 bytes)"),
        (b"hello, I am text", "not an image format Pillow knows"),
        (encode(digit_like(1), "JPEG")[:300], "does not decode"),
        (png_declaring(100_000, 100_000), "exceeds the 40,000,000-pixel limit"),
    ],
    ids=["zero-byte", "text", "truncated-jpeg", "pixel-bomb"],
)
def test_bad_bytes_are_explained(body, problem):
    assert problem in inspect(body).problem


def test_decode_names_the_key_and_never_decodes_a_bomb():
    with pytest.raises(ImageDecodeError, match=r"raw/cat/0042.png: .*pixel limit"):
        decode_rgb(png_declaring(100_000, 100_000), 24, "raw/cat/0042.png")


def test_grayscale_palette_and_rgba_become_rgb():
    gray = decode_rgb(encode(Image.new("L", (40, 30), 128)), 24, "k")
    assert gray.shape == (24, 24, 3) and gray.dtype == np.uint8 and (gray == 128).all()
    palette = decode_rgb(encode(digit_like(5).convert("P")), 24, "k")
    assert palette.shape == (24, 24, 3)
    transparent = decode_rgb(encode(Image.new("RGBA", (10, 10), (255, 0, 0, 0))), 10, "k")
    assert (transparent == 255).all()  # fully transparent composites onto white


def test_sixteen_bit_is_scaled_not_clipped():
    assert decode_rgb(sixteen_bit_png(65535), 8, "k").min() == 255
    assert decode_rgb(sixteen_bit_png(32896), 8, "k").max() == 128


def test_cmyk_jpeg_becomes_rgb():
    red = decode_rgb(encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG"), 16, "k")
    r, g, b = red.reshape(-1, 3).mean(axis=0)
    assert r > 200 and g < 60 and b < 60


def test_exif_orientation_is_applied():
    with Image.open(__import__("io").BytesIO(exif_rotated_jpeg())) as image:
        upright = np.asarray(to_rgb(image))
    assert upright.shape == (40, 20, 3)
    assert upright[:15].mean() > 200 and upright[25:].mean() < 50


@pytest.mark.parametrize("key", ["raw/cat/../../etc/passwd", "/abs/key.png", "raw/../x.png"])
def test_escaping_keys_are_unsafe(key):
    assert unsafe_key(key)


def test_ordinary_keys_are_safe():
    assert not unsafe_key("raw/cat/..hidden.png")
