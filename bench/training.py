"""Training throughput: the real input pipeline (TFRecord shards through tf.data) against the
same model fed from in-memory tensors, in the same process, so the ratio shows what the
input pipeline costs. Also the ratio to the reference GPU run (about 770 images/s) when a
GPU is visible."""

from __future__ import annotations

import time
from typing import Any

REFERENCE_GPU_IMAGES_PER_SECOND = 770.0


def _epoch_seconds(fit) -> float:
    """Runs two epochs and returns the second's duration (the first traces and fills caches)."""
    import keras

    durations: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            durations.append(time.perf_counter() - self.started)

    fit(Timer())
    return durations[-1]


def measure(split: Any, image_count: int, image_size: int, class_count: int) -> dict:
    """`split`: a batched (batch 32) tf.data pipeline of the train split; its first
    image_count images are fitted both ways."""
    import keras
    import numpy as np
    import tensorflow as tf

    from tasks.model import build_reference_cnn

    pipeline = split.take(image_count // 32)
    image_count = (image_count // 32) * 32
    batches = list(pipeline)
    images = np.concatenate([b[0].numpy() for b in batches])
    labels = np.concatenate([b[1].numpy() for b in batches])

    keras.utils.set_random_seed(1)
    model = build_reference_cnn(image_size, class_count)
    shard_seconds = _epoch_seconds(
        lambda timer: model.fit(pipeline, epochs=2, callbacks=[timer], verbose=0, shuffle=False)
    )
    model = build_reference_cnn(image_size, class_count)
    memory_seconds = _epoch_seconds(
        lambda timer: model.fit(images, labels, batch_size=32, epochs=2, callbacks=[timer], verbose=0)
    )
    gpus = tf.config.list_physical_devices("GPU")
    return {
        "shards": image_count / shard_seconds,
        "memory": image_count / memory_seconds,
        "device": f"{len(gpus)} GPU(s)" if gpus else "CPU",
    }
