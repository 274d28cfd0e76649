"""Safe image decoding shared by collection (inspection) and preprocessing (pixels).

Guards against decompression bombs (the header's size is checked before any pixel is
decoded), applies EXIF orientation, and turns grayscale, palette, RGBA, CMYK and 16-bit
images into 8-bit RGB.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tasks.errors import PermanentError

# Checked from the header, before any pixel is decoded. Pillow's own guard (which refuses at
# twice its MAX_IMAGE_PIXELS while opening) is aligned with it.
MAX_PIXELS = 40_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageDecodeError(PermanentError, ValueError):
    """An object that is not a usable image; the message names the key and the reason.
    Permanent: trying again reads the same bytes."""


@dataclass(frozen=True)
class ImageFacts:
    format: str | None
    width: int | None
    height: int | None
    mode: str | None
    channels: int | None
    problem: str | None  # None when the image decodes fully within the pixel limit


def unsafe_key(key: str) -> bool:
    """A key that would escape a local staging folder if used as a relative path."""
    return key.startswith("/") or ".." in key.split("/")


def _opened(body: bytes) -> Image.Image:
    if not body:
        raise ImageDecodeError("empty object (0 bytes)")
    try:
        image = Image.open(io.BytesIO(body))
    except Image.DecompressionBombError as error:
        raise ImageDecodeError(f"exceeds the {MAX_PIXELS:,}-pixel limit (decompression bomb?)") from error
    except UnidentifiedImageError as error:
        raise ImageDecodeError("not an image format Pillow knows") from error
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageDecodeError(f"does not decode ({error})") from error
    if image.width * image.height > MAX_PIXELS:
        raise ImageDecodeError(
            f"{image.width}x{image.height} exceeds the {MAX_PIXELS:,}-pixel limit (decompression bomb?)"
        )
    return image


def inspect(body: bytes) -> ImageFacts:
    """Reads the header, then decodes every pixel to prove the image is whole."""
    try:
        image = _opened(body)
    except ImageDecodeError as error:
        return ImageFacts(None, None, None, None, None, str(error))
    header = (image.format, image.width, image.height, image.mode, len(image.getbands()))
    try:
        image.load()
    except (OSError, ValueError, SyntaxError) as error:
        return ImageFacts(*header, problem=f"does not decode ({error})")
    return ImageFacts(*header, problem=None)


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB, upright; transparency is composited onto white, 16-bit is scaled down."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        pixels = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or pixels.max() > 255 else 255.0
        image = Image.fromarray(np.uint8(np.clip(pixels / peak * 255.0, 0, 255).round()), "L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("RGB")


def decode_rgb(body: bytes, image_size: int, key: str) -> np.ndarray:
    """Any accepted image -> image_size x image_size x 3 uint8 RGB."""
    try:
        image = _opened(body)
        rgb = to_rgb(image).resize((image_size, image_size), Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)
    except ImageDecodeError as error:
        raise ImageDecodeError(f"{key}: {error}") from error
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageDecodeError(f"{key}: not a decodable image ({error})") from error
