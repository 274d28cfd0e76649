"""The reference CNN's architecture, and the recipe's training-only layers around it."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.model import build_reference_cnn, copy_weights, inference_model
from tasks.recipe import REFERENCE_RECIPE, Recipe

BARE = REFERENCE_RECIPE
REFERENCE_STACK = [
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


def kinds(model) -> list[str]:
    return [layer.__class__.__name__ for layer in model.layers]


def test_reference_architecture_at_128_pixels():
    model = build_reference_cnn(recipe=BARE)
    assert model.count_params() == 25_794_634
    assert kinds(model) == REFERENCE_STACK
    assert [layer.filters for layer in model.layers if hasattr(layer, "filters")] == [32, 64, 128]
    assert model.layers[-2].units == 1024
    assert model.output_shape == (None, 10)
    assert model.optimizer.__class__.__name__ == "Adam"
    assert float(model.optimizer.learning_rate) == np.float32(1e-3)
    assert model.loss.get_config()["label_smoothing"] == 0.0


def test_default_recipe_adds_layers_without_parameters():
    model = build_reference_cnn()
    assert model.count_params() == 25_794_634
    assert kinds(model) == ["RandomFlip", "RandomTranslation", *REFERENCE_STACK[:-1], "Dropout", "Dense"]
    assert model.loss.get_config()["label_smoothing"] == Recipe().label_smoothing


def test_augmentation_and_dropout_are_inactive_in_the_published_model():
    recipe = Recipe(augment_shift=0.2, dropout=0.5, average_flips=False)
    augmented = build_reference_cnn(image_size=32, recipe=recipe)
    bare = build_reference_cnn(image_size=32, recipe=BARE)
    copy_weights(augmented, bare)
    images = np.random.default_rng(0).random((8, 32, 32, 3)).astype("float32")
    expected = bare.predict(images, verbose=0)
    np.testing.assert_allclose(augmented.predict(images, verbose=0), expected, atol=1e-6)
    assert np.abs(np.asarray(augmented(images, training=True)) - expected).max() > 1e-4
    # A plain call of the training model augments (Keras' random layers default to it), as the
    # SavedModel export would: the published model leaves those layers out.
    assert np.abs(np.asarray(augmented(images)) - expected).max() > 1e-4
    published = inference_model(augmented, recipe)
    assert kinds(published) == [*REFERENCE_STACK[:-1], "Dropout", "Dense"]
    np.testing.assert_allclose(np.asarray(published(images)), expected, atol=1e-6)
    np.testing.assert_allclose(published.predict(images, verbose=0), expected, atol=1e-6)


def test_published_model_averages_each_image_with_its_mirror(tmp_path):
    import keras

    trained = build_reference_cnn(image_size=32, recipe=Recipe())
    bare = build_reference_cnn(image_size=32, recipe=BARE)
    copy_weights(trained, bare)
    images = np.random.default_rng(1).random((8, 32, 32, 3)).astype("float32")
    plain = bare.predict(images, verbose=0)
    mirrored = bare.predict(images[:, :, ::-1], verbose=0)
    assert np.abs(plain - mirrored).max() > 1e-4  # random weights see an image and its mirror apart

    published = inference_model(trained, Recipe(average_flips=True))
    expected = (plain + mirrored) / 2
    np.testing.assert_allclose(published.predict(images, verbose=0), expected, atol=1e-6)
    np.testing.assert_allclose(np.asarray(published(images)), expected, atol=1e-6)
    assert published.count_params() == bare.count_params()
    assert published.input_shape == (None, 32, 32, 3) and published.output_shape == (None, 10)

    # Saved and loaded as consumers and the next warm start do: built-in layers and ops only.
    path = tmp_path / "model.keras"
    published.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, atol=1e-6)
    warm = build_reference_cnn(image_size=32, recipe=Recipe())
    copy_weights(loaded, warm)
    np.testing.assert_allclose(warm.predict(images, verbose=0), plain, atol=1e-6)

    # The serving export (what deploy publishes for TF Serving) averages too.
    import tensorflow as tf

    published.export(str(tmp_path / "serving"), format="tf_saved_model", verbose=False)
    serve = tf.saved_model.load(str(tmp_path / "serving")).signatures["serving_default"]
    (served,) = serve(tf.constant(images)).values()
    np.testing.assert_allclose(served.numpy(), expected, atol=1e-6)


def test_without_flip_augmentation_the_published_model_predicts_on_the_image_alone():
    trained = build_reference_cnn(image_size=32, recipe=Recipe(augment_flip=False))
    published = inference_model(trained, Recipe(augment_flip=False, average_flips=True))
    assert kinds(published) == [*REFERENCE_STACK[:-1], "Dropout", "Dense"]


def test_class_count_and_image_size_follow_the_config():
    model = build_reference_cnn(image_size=32, class_count=3)
    assert model.input_shape == (None, 32, 32, 3)
    assert model.output_shape == (None, 3)


def test_shrink_and_perturb_mixes_the_old_weights_with_a_fresh_initialization():
    from tasks.model import WEIGHTED_LAYERS, shrink_and_perturb

    trained = build_reference_cnn(32, 3)
    fresh = build_reference_cnn(32, 3)
    before = {name: fresh.get_layer(name).get_weights() for name in WEIGHTED_LAYERS}
    shrink_and_perturb(trained, fresh, 0.5, 0.1)
    for name in WEIGHTED_LAYERS:
        for mixed, old, new in zip(
            fresh.get_layer(name).get_weights(),
            trained.get_layer(name).get_weights(),
            before[name],
            strict=True,
        ):
            np.testing.assert_allclose(mixed, 0.5 * old + 0.1 * new, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_a_warm_start_rewarms_the_learning_rate_then_follows_the_schedule(schedule):
    from tasks.recipe import learning_rate_schedule

    rate = learning_rate_schedule(Recipe(lr_schedule=schedule), 1e-3, total_steps=110, warmup_steps=10)
    at = {step: float(rate(step)) for step in (0, 5, 10, 60, 110)}
    assert at[0] == 0.0 and at[5] == pytest.approx(5e-4) and at[10] == pytest.approx(1e-3)
    if schedule == "cosine":
        assert at[60] == pytest.approx(5e-4, rel=1e-3) and at[110] == pytest.approx(0.0, abs=1e-9)
    else:
        assert at[60] == pytest.approx(1e-3) and at[110] == pytest.approx(1e-3)
