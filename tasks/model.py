"""The reference CNN: 3x(Conv3x3+MaxPool2x2) with 32/64/128 filters, Dense 1024, softmax.

At 128x128x3 input it has 25,794,634 parameters, 99.6% of them in Dense(1024). The recipe
(tasks/recipe.py) adds augmentation layers in front and dropout before the classifier while
training; neither has parameters. The published model drops the augmentation layers
(`inference_model`): Keras' random layers transform by default when called without
`training=False`, as a plain `model(images)` or the SavedModel export does.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tasks.recipe import LEARNING_RATE, Recipe, augmentation_layers, loss, optimizer

# Layers that hold weights, by name: a warm start copies these from the previous model.
WEIGHTED_LAYERS = ("conv_1", "conv_2", "conv_3", "dense", "probabilities")
# The layer of a flip-averaging model that takes the image's and the mirror's probabilities.
FLIP_AVERAGE_LAYER = "average_flips"


def build_reference_cnn(
    image_size: int = 128,
    class_count: int = 10,
    learning_rate: float = LEARNING_RATE,
    *,
    recipe: Recipe | None = None,
    total_steps: int = 1,
    warmup_steps: int = 0,
) -> Any:
    """Builds and compiles the model; `total_steps` sizes the learning-rate schedule, whose
    first `warmup_steps` raise the rate linearly from 0 (a warm start's re-warming)."""
    import keras
    from keras import layers

    recipe = recipe or Recipe()
    model = keras.Sequential(
        [
            keras.Input(shape=(image_size, image_size, 3), name="image"),
            *augmentation_layers(recipe),
            layers.Conv2D(32, 3, activation="relu", name="conv_1"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu", name="conv_2"),
            layers.MaxPooling2D(2),
            layers.Conv2D(128, 3, activation="relu", name="conv_3"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(1024, activation="relu", name="dense"),
            *([layers.Dropout(recipe.dropout, name="dropout")] if recipe.dropout else []),
            # float32 output keeps softmax stable when the rest runs in mixed_float16.
            layers.Dense(class_count, activation="softmax", name="probabilities", dtype="float32"),
        ],
        name="reference_cnn",
    )
    model.compile(
        optimizer=optimizer(recipe, learning_rate, total_steps, warmup_steps),
        loss=loss(recipe),
        metrics=["accuracy"],
    )
    return model


def copy_weights(source: Any, target: Any) -> None:
    """Warm start: the weighted layers' values from `source` into `target`, which may differ in
    its training-only layers (another augmentation or dropout)."""
    for name in WEIGHTED_LAYERS:
        target.get_layer(name).set_weights(source.get_layer(name).get_weights())


def shrink_and_perturb(source: Any, target: Any, shrink: float, perturb: float) -> None:
    """Warm start from a converged model (Ash & Adams 2020): each weighted layer of `target`
    becomes `shrink` times `source`'s values plus `perturb` times `target`'s own fresh
    initialization, so training can move the weights again instead of staying in the old
    model's minimum."""
    for name in WEIGHTED_LAYERS:
        fresh = target.get_layer(name).get_weights()
        trained = source.get_layer(name).get_weights()
        target.get_layer(name).set_weights(
            [shrink * old + perturb * new for old, new in zip(trained, fresh, strict=True)]
        )


def inference_model(trained: Any, recipe: Recipe) -> Any:
    """The trained weights in the stack without augmentation layers: what is published, so
    every way of calling it (`predict`, `model(images)`, the serving signature) sees images as
    they are. Dropout stays; it is inactive unless called with `training=True`.

    With the recipe's flip averaging, the same layers (shared, so the same names and parameter
    count) also see each image's mirror, and the model outputs the mean of both probabilities.
    """
    import keras

    image_size = trained.input_shape[1]
    class_count = trained.output_shape[-1]
    published = build_reference_cnn(
        image_size, class_count, recipe=replace(recipe, augment_flip=False, augment_shift=0.0)
    )
    copy_weights(trained, published)
    if not recipe.flip_average_applies:
        return published
    image = keras.Input(shape=(image_size, image_size, 3), name="image")
    mirrored = keras.ops.flip(image, axis=2)
    probabilities = [_apply_layers(published, image), _apply_layers(published, mirrored)]
    averaged = keras.Model(
        image, keras.layers.Average(name=FLIP_AVERAGE_LAYER)(probabilities), name="reference_cnn"
    )
    averaged.compile(optimizer=optimizer(recipe, LEARNING_RATE, 1), loss=loss(recipe), metrics=["accuracy"])
    return averaged


def _apply_layers(model: Any, images: Any) -> Any:
    for layer in model.layers:
        images = layer(images)
    return images
