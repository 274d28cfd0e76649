"""The plain reference CNN's training rate on this machine, in images per second: 128x128x3
inputs, batch 32, fitted from in-memory tensors, the second epoch timed (the first traces).
One number to compare machines by: `make test` prints it before the tests, so a suite's time
on one machine can be compared with its time on another.

    python -m bench.training_rate [IMAGES]
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

IMAGE_SIZE = 128
CLASS_COUNT = 10
DEFAULT_IMAGES = 256


def training_rate(image_count: int = DEFAULT_IMAGES) -> float:
    """Images per second of the reference CNN's second epoch over `image_count` images."""
    import keras
    import numpy as np

    from bench.training import _epoch_seconds
    from tasks.model import build_reference_cnn

    image_count = max(32, image_count // 32 * 32)
    generator = np.random.default_rng(0)
    images = generator.uniform(0, 1, (image_count, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
    labels = np.eye(CLASS_COUNT, dtype="float32")[generator.integers(0, CLASS_COUNT, image_count)]
    keras.utils.set_random_seed(1)
    model = build_reference_cnn(IMAGE_SIZE, CLASS_COUNT)
    seconds = _epoch_seconds(
        lambda timer: model.fit(images, labels, batch_size=32, epochs=2, callbacks=[timer], verbose=0)
    )
    return image_count / seconds


def main() -> None:
    image_count = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_IMAGES
    rate = training_rate(image_count)
    print(f"reference CNN training rate on this machine: {rate:.0f} images/s (128x128, batch 32, CPU)")


if __name__ == "__main__":
    main()
