"""Where a changed night's first attempt starts: from the production model's weights (a warm
start, a fraction of the epochs) or from random weights.

A night continues from production only when what production was trained for is what this night
trains: the same classes in the same order, the same input size, the same training settings and
the same trainer code (the training signature without the dataset, recorded with every version).
It trains from scratch when production is `full_retrain_every` warm generations deep, so
the errors of continuing do not pile up, and when the warm attempt is not blessed (the retry
starts from scratch, see `tasks.train.plan_attempt`). `warm_start` chooses the policy: auto
(the rules above), never, or always (whenever the classes and input size allow).
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.config import PipelineConfig
from tasks.freshness import settings_digest, trainer_code_version
from tasks.records import DatasetRecord, JsonRecord, Pointer
from tasks.registry import Registry
from tasks.storage import S3Client


@dataclass(frozen=True)
class StartingPoint(JsonRecord):
    """A warm start's parent (version, model and generation), or none, and why."""

    reason: str
    parent_version: int | None = None
    parent_model_uri: str | None = None
    warm_generation: int = 0  # 0: trained from scratch; N: N warm nights since the last one

    @property
    def warm(self) -> bool:
        return self.parent_version is not None


def choose_starting_point(
    config: PipelineConfig, production: Pointer | None, dataset: DatasetRecord
) -> StartingPoint:
    """Applies the warm_start policy to this night's dataset and the production pointer."""
    if config.warm_start == "never":
        return StartingPoint("from scratch: warm_start is never")
    if production is None:
        return StartingPoint("from scratch: no production model to continue")
    version = production.version
    if production.class_names != dataset.class_names or production.image_size != dataset.image_size:
        return StartingPoint(f"from scratch: the classes or the input size changed since version {version}")
    if config.warm_start == "auto":
        refusal = _auto_refusal(config, production)
        if refusal:
            return StartingPoint(f"from scratch: {refusal}")
    generation = production.warm_generation + 1
    return StartingPoint(
        f"warm start from version {version} (warm generation {generation}, "
        f"full retrain every {config.full_retrain_every})",
        parent_version=version,
        parent_model_uri=production.model_uri,
        warm_generation=generation,
    )


def _auto_refusal(config: PipelineConfig, production: Pointer) -> str | None:
    """Why `auto` does not continue from production, or None when it does."""
    version = production.version
    if production.trainer_code is None or production.settings_digest is None:
        return f"version {version} does not record the trainer code and settings it was trained with"
    if production.trainer_code != trainer_code_version():
        return f"the trainer code changed since version {version}"
    if production.settings_digest != settings_digest(config):
        return f"the training settings changed since version {version}"
    if production.warm_generation >= config.full_retrain_every:
        return (
            f"version {version} is {production.warm_generation} warm generation(s) deep "
            f"(full_retrain_every {config.full_retrain_every})"
        )
    return None


def production_starting_point(client: S3Client, config: PipelineConfig, dataset_uri: str) -> StartingPoint:
    """The starting point of a night's first attempt on the dataset at `dataset_uri`."""
    production = Registry(client, config.bucket, config.model_name).pointer()
    return choose_starting_point(config, production, DatasetRecord.read(client, dataset_uri))
