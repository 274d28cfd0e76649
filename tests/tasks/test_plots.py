"""The report pictures: real PNGs, sized for their content, the kept epoch marked."""

from __future__ import annotations

import io
from dataclasses import replace

from PIL import Image

from tasks.checkpoints import TrainingHistory
from tasks.plots import confusion_matrix_png, training_curves_png

FASHION = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
HISTORY = TrainingHistory(
    epochs=[1, 2, 3],
    metrics={
        "loss": [1.2, 0.8, 0.6],
        "accuracy": [0.6, 0.75, 0.8],
        "val_loss": [1.0, 0.7, 0.9],
        "val_accuracy": [0.65, 0.78, 0.74],
    },
    kept_epoch=2,
    kept_by="val_accuracy",
)


def pixels(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return image.convert("RGB")


def test_confusion_matrix_grows_with_the_classes_and_is_not_blank():
    small = pixels(confusion_matrix_png([[5, 1], [0, 4]], ["cat", "dog"], "two classes"))
    matrix = [[90 if row == column else 1 for column in range(10)] for row in range(10)]
    large = pixels(confusion_matrix_png(matrix, FASHION, "attempt 1: accuracy 0.9000 on 1,000 images"))
    assert large.width > small.width and large.height > small.height
    assert len(set(large.getdata())) > 50  # text, colour scale and cells, not an empty canvas


def test_training_curves_mark_the_kept_epoch():
    with_mark = pixels(training_curves_png(HISTORY, "attempt 1"))
    without_mark = pixels(training_curves_png(replace(HISTORY, kept_epoch=0), "attempt 1"))
    assert with_mark.size == without_mark.size
    assert with_mark.tobytes() != without_mark.tobytes()
