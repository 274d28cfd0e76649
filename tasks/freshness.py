"""Whether a night has anything to train: a run whose dataset, training settings and trainer
code are those the production model was trained with would only repeat that training.

The three are summed up in a training signature that deploy records with every version
(model card, deployment.json and production.json); a run compares its own with production's
and skips training, evaluation and deploy when they are equal, unless `force_retrain` is set.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.config import PipelineConfig
from tasks.recipe import Recipe
from tasks.registry import Registry
from tasks.storage import S3Client, S3Uri, get_json

log = logging.getLogger(__name__)

# The settings that change what training produces from the same dataset.
TRAINING_SETTINGS = (
    "epochs",
    "batch_size",
    "learning_rate",
    "seed",
    "retry_learning_rate_factor",
    "retry_warm_start",
    *Recipe.names(),
)
# The code that decides what a trained model is: the model, the recipe and its input.
TRAINER_SOURCES = ("model.py", "recipe.py", "train.py", "shards.py", "checkpoints.py")


def trainer_code_version() -> str:
    """A hash of the trainer's source files, the same in the worker and in the trainer image."""
    digest = hashlib.sha256()
    for name in TRAINER_SOURCES:
        digest.update((Path(__file__).resolve().parent / name).read_bytes())
    return digest.hexdigest()[:16]


def training_signature(config: PipelineConfig, dataset_id: str) -> str:
    """What a trained model depends on: the dataset (content, labels, image size, classes and
    preprocessing), the training settings and the trainer's code."""
    settings = {name: getattr(config, name) for name in TRAINING_SETTINGS}
    payload = json.dumps([dataset_id, settings, trainer_code_version()], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class TrainingNeed:
    train: bool
    reason: str
    signature: str


def check_for_change(client: S3Client, config: PipelineConfig, dataset_uri: str) -> TrainingNeed:
    """Compares this run's training signature with the production model's."""
    dataset: dict[str, Any] = get_json(client, S3Uri.parse(dataset_uri))
    signature = training_signature(config, dataset["dataset_id"])
    pointer = Registry(client, config.bucket, config.model_name).pointer()
    if pointer is None:
        return TrainingNeed(True, "no production model yet: training", signature)
    version = pointer.get("version")
    if pointer.get("training_signature") != signature:
        same_data = pointer.get("dataset_fingerprint") == dataset["fingerprint"]
        what = "settings or trainer code changed" if same_data else "the data changed"
        return TrainingNeed(True, f"{what} since version {version}: training", signature)
    if config.force_retrain:
        return TrainingNeed(
            True, f"no change since version {version}, but force_retrain is set: training", signature
        )
    return TrainingNeed(
        False,
        f"no change since version {version} (dataset {dataset['fingerprint'][:12]}..., same settings "
        "and trainer code): nothing to train",
        signature,
    )
