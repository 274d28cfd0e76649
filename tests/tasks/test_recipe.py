"""The recipe's optimizer, schedule and loss follow its settings; bad values are refused."""

from __future__ import annotations

import pytest

from tasks.recipe import Recipe, loss, optimizer, steps_per_epoch


def test_cosine_schedule_decays_to_zero_over_the_attempt():
    adam = optimizer(Recipe(lr_schedule="cosine"), 1e-3, total_steps=100)
    schedule = adam.get_config()["learning_rate"]
    assert schedule["class_name"] == "CosineDecay"
    assert schedule["config"]["initial_learning_rate"] == pytest.approx(1e-3)
    assert schedule["config"]["decay_steps"] == 100
    assert adam._learning_rate(100).numpy() == pytest.approx(0.0, abs=1e-9)


def test_constant_schedule_and_weight_decay():
    adam = optimizer(Recipe(lr_schedule="constant"), 5e-4, total_steps=100)
    assert adam.__class__.__name__ == "Adam"
    assert adam.get_config()["learning_rate"] == pytest.approx(5e-4)
    adamw = optimizer(Recipe(weight_decay=1e-4), 1e-3, total_steps=10)
    assert adamw.__class__.__name__ == "AdamW"
    assert adamw.get_config()["weight_decay"] == pytest.approx(1e-4)


def test_label_smoothing_and_steps():
    assert loss(Recipe(label_smoothing=0.2)).get_config()["label_smoothing"] == pytest.approx(0.2)
    assert steps_per_epoch(100, 32) == 4


def test_unknown_choices_are_refused_and_the_summary_names_every_part():
    with pytest.raises(ValueError, match="lr_schedule"):
        Recipe(lr_schedule="step")
    with pytest.raises(ValueError, match="keep_epoch_by"):
        Recipe(keep_epoch_by="accuracy")
    summary = Recipe(early_stopping_patience=2).summary()
    for part in ("flip+shift", "dropout 0.5", "label smoothing 0.1", "cosine", "val_accuracy", "after 2"):
        assert part in summary
    assert "mirror" not in summary
    assert "mirror" in Recipe(average_flips=True).summary()


def test_flip_averaging_applies_only_to_a_model_trained_on_flips():
    assert Recipe(average_flips=True).flip_average_applies
    assert not Recipe().flip_average_applies
    assert not Recipe(augment_flip=False, average_flips=True).flip_average_applies
    assert "mirror" not in Recipe(augment_flip=False, average_flips=True).summary()
