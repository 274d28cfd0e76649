"""Real image bytes for tests, good and bad, made with Pillow (no fixtures on disk)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def digit_like(seed: int, size: int = 32) -> Image.Image:
    """A distinct RGB image per seed (a bar whose position depends on the seed)."""
    pixels = np.zeros((size, size, 3), dtype=np.uint8)
    column = seed % (size - 4)
    pixels[:, column : column + 4] = 255
    pixels[seed % size, :] = (seed * 37) % 256
    return Image.fromarray(pixels, "RGB")


CLASSES = ("zero", "one", "two")
PER_CLASS = 12


def seed_images(s3, bucket: str, classes=CLASSES, per_class: int = PER_CLASS) -> None:
    """Distinct good PNGs under raw/<class>/img-NN.png."""
    from tasks.storage import S3Uri, put_bytes

    for class_index, class_name in enumerate(classes):
        for index in range(per_class):
            body = encode(digit_like(class_index * 100 + index))
            put_bytes(s3, S3Uri(bucket, f"raw/{class_name}/img-{index:02d}.png"), body)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height (a decompression bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def sixteen_bit_png(value: int, size: int = 32) -> bytes:
    return encode(Image.fromarray(np.full((size, size), value, dtype=np.uint16)))


def exif_rotated_jpeg() -> bytes:
    """40 wide x 20 high, white on the left half, stored with EXIF orientation 6 (the viewer
    must rotate it 90 degrees clockwise, giving 20 wide x 40 high, white on top)."""
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(Image.fromarray(pixels, "RGB"), "JPEG", exif=exif.tobytes(), quality=95)
