"""The training recipe around the reference CNN: augmentation, regularization, the learning-rate
schedule and which epoch's weights are kept. Each part is a setting (a DAG Param and a trainer
CLI option) with a measured default; see docs/training-recipe.md for the figures.

Augmentation runs as Keras preprocessing layers inside the model, active only while training,
so the saved model and its serving signature take the same input as the bare stack.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from tasks.errors import InvalidSettingsError
from tasks.settings import TRAINING, declared_problems, setting

LR_SCHEDULES = ("constant", "cosine")
KEEP_EPOCH_BY = ("val_accuracy", "val_loss", "last")
# Epochs per attempt. Four times the reference's 10: with augmentation and dropout the model
# is still improving on validation data at epoch 30 (docs/training-recipe.md has the figures).
EPOCHS = 40
# The reference's batch size and Adam learning rate, and the seed of weights and shuffling.
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
SEED = 42
# Warm-started nights (tasks/warm_start.py): how a changed night may start from production.
WARM_START_MODES = ("auto", "never", "always")
WARM_START_DEFAULT = "never"
WARM_EPOCHS = 10
# Shrink and perturb (Ash & Adams 2020) before a warm start: the production weights times
# WARM_SHRINK plus a fresh initialization times WARM_PERTURB, which restores the plasticity
# a converged model lost and closes most of the generalization gap of a plain warm start.
WARM_SHRINK = 0.5
WARM_PERTURB = 0.1


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """The recipe's settings, each declared here once (the pipeline's config and the trainer's
    CLI carry these declarations); checked against their bounds when made."""

    augment_flip: bool = setting(
        True,
        description="Augmentation: random left-right flips while training (off where mirror images "
        "mean something else, such as text)",
        section=TRAINING,
    )
    augment_shift: float = setting(
        0.06,
        description="Augmentation: random shifts up to this fraction of the image side while training "
        "(0: off)",
        section=TRAINING,
        minimum=0,
        maximum=0.5,
    )
    average_flips: bool = setting(
        False,
        description="The published model predicts on each image and its left-right mirror and "
        "averages the two (twice the inference compute; only with augment_flip)",
        section=TRAINING,
    )
    dropout: float = setting(
        0.5,
        description="Dropout rate before the classifier (0: none)",
        section=TRAINING,
        minimum=0,
        maximum=0.9,
    )
    label_smoothing: float = setting(
        0.1,
        description="Label smoothing of the cross-entropy loss",
        section=TRAINING,
        minimum=0,
        maximum=0.5,
    )
    weight_decay: float = setting(
        0.0,
        description="Decoupled weight decay (AdamW); 0 trains with plain Adam",
        section=TRAINING,
        minimum=0,
        maximum=0.5,
    )
    lr_schedule: str = setting(
        "cosine",
        description="constant, or cosine decay of the learning rate to 0 over each attempt's epochs",
        section=TRAINING,
        enum=list(LR_SCHEDULES),
    )
    keep_epoch_by: str = setting(
        "val_accuracy",
        description="Publish the weights of the epoch best by this validation metric (last: the last "
        "epoch's)",
        section=TRAINING,
        enum=list(KEEP_EPOCH_BY),
    )
    early_stopping_patience: int = setting(
        0,
        description="Stop an attempt after this many epochs without a better keep_epoch_by (0: train "
        "every epoch)",
        section=TRAINING,
        minimum=0,
    )

    def __post_init__(self) -> None:
        problems = declared_problems(self)
        if problems:
            raise InvalidSettingsError("invalid training settings: " + "; ".join(problems))

    @classmethod
    def names(cls) -> list[str]:
        return [option.name for option in fields(cls)]

    @classmethod
    def of(cls, source: Mapping[str, Any] | object) -> Recipe:
        """The recipe part of a Params or request dict, or of an object with the same attribute
        names (the pipeline's config, a train request); names it lacks keep their defaults."""
        values = source if isinstance(source, Mapping) else vars(source)
        return cls(**{name: values[name] for name in cls.names() if name in values})

    @property
    def flip_average_applies(self) -> bool:
        """Averaging over mirrors helps only a model that learned mirrors are the same class."""
        return self.augment_flip and self.average_flips

    def summary(self) -> str:
        """One line for logs and model cards."""
        augmentation = [
            name for name, on in (("flip", self.augment_flip), ("shift", self.augment_shift)) if on
        ]
        return (
            f"augmentation {'+'.join(augmentation) or 'none'}"
            + (f" ({self.augment_shift:g})" if self.augment_shift else "")
            + f", dropout {self.dropout:g}, label smoothing {self.label_smoothing:g}, "
            f"weight decay {self.weight_decay:g}, {self.lr_schedule} learning rate, "
            f"keeps the epoch best by {self.keep_epoch_by}"
            + (", predicts on each image and its mirror" if self.flip_average_applies else "")
            + (
                f", early stopping after {self.early_stopping_patience}"
                if self.early_stopping_patience
                else ""
            )
        )


# The recipe as the reference result states it: no augmentation or regularization, a constant
# learning rate, the last epoch published. As Params: `dataclasses.asdict(REFERENCE_RECIPE)`.
REFERENCE_RECIPE = Recipe(
    augment_flip=False,
    augment_shift=0.0,
    average_flips=False,
    dropout=0.0,
    label_smoothing=0.0,
    weight_decay=0.0,
    lr_schedule="constant",
    keep_epoch_by="last",
)


def augmentation_layers(recipe: Recipe) -> list[Any]:
    """Keras preprocessing layers that transform images in training and pass them through at
    inference (`training=False`, which `predict`, `evaluate` and the export use)."""
    from keras import layers

    stack: list[Any] = []
    if recipe.augment_flip:
        stack.append(layers.RandomFlip("horizontal", name="augment_flip"))
    if recipe.augment_shift:
        stack.append(
            layers.RandomTranslation(
                recipe.augment_shift, recipe.augment_shift, fill_mode="constant", name="augment_shift"
            )
        )
    return stack


def learning_rate_schedule(
    recipe: Recipe, learning_rate: float, total_steps: int, warmup_steps: int = 0
) -> Any:
    """`learning_rate`, constant or cosine-decayed to 0 over `total_steps` (the attempt's epochs
    times its steps per epoch); with `warmup_steps`, it first rises linearly from 0 to
    `learning_rate` over those steps."""
    import keras

    if warmup_steps:
        return keras.optimizers.schedules.CosineDecay(
            0.0,
            decay_steps=max(1, total_steps - warmup_steps),
            alpha=0.0 if recipe.lr_schedule == "cosine" else 1.0,  # 1.0: no decay after warming
            warmup_target=learning_rate,
            warmup_steps=warmup_steps,
        )
    if recipe.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, total_steps))
    return learning_rate


def optimizer(recipe: Recipe, learning_rate: float, total_steps: int, warmup_steps: int = 0) -> Any:
    """Adam (AdamW when weight decay is set) on `learning_rate_schedule`."""
    import keras

    rate = learning_rate_schedule(recipe, learning_rate, total_steps, warmup_steps)
    if recipe.weight_decay:
        return keras.optimizers.AdamW(learning_rate=rate, weight_decay=recipe.weight_decay)
    return keras.optimizers.Adam(learning_rate=rate)


def loss(recipe: Recipe) -> Any:
    import keras

    return keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing)


def steps_per_epoch(image_count: int, batch_size: int) -> int:
    return max(1, math.ceil(image_count / batch_size))
