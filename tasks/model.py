"""The reference CNN: 3x(Conv3x3+MaxPool2x2) with 32/64/128 filters, Dense 1024, softmax.

At 128x128x3 input it has 25,794,634 parameters, 99.6% of them in Dense(1024).
"""

from __future__ import annotations

from typing import Any


def build_reference_cnn(image_size: int = 128, class_count: int = 10, learning_rate: float = 1e-3) -> Any:
    """Builds and compiles the model (Adam, categorical cross-entropy, accuracy)."""
    import keras
    from keras import layers

    model = keras.Sequential(
        [
            keras.Input(shape=(image_size, image_size, 3), name="image"),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(128, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(1024, activation="relu"),
            # float32 output keeps softmax stable when the rest runs in mixed_float16.
            layers.Dense(class_count, activation="softmax", name="probabilities", dtype="float32"),
        ],
        name="reference_cnn",
    )
    compile_model(model, learning_rate)
    return model


def compile_model(model: Any, learning_rate: float) -> None:
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
