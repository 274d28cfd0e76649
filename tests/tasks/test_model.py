"""The reference CNN's architecture."""

from __future__ import annotations

from tasks.model import build_reference_cnn


def test_reference_architecture_at_128_pixels():
    model = build_reference_cnn()
    assert model.count_params() == 25_794_634
    kinds = [layer.__class__.__name__ for layer in model.layers]
    assert kinds == [
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "MaxPooling2D",
        "Flatten",
        "Dense",
        "Dense",
    ]
    assert [layer.filters for layer in model.layers if hasattr(layer, "filters")] == [32, 64, 128]
    assert model.layers[-2].units == 1024
    assert model.output_shape == (None, 10)
    assert model.optimizer.learning_rate.numpy() == 1e-3
    assert model.loss == "categorical_crossentropy"


def test_class_count_and_image_size_follow_the_config():
    model = build_reference_cnn(image_size=32, class_count=3)
    assert model.input_shape == (None, 32, 32, 3)
    assert model.output_shape == (None, 3)
