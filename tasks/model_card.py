"""The model card published with every version: where the model came from and how good it is.
`ModelCard` is the record of `models/<name>/<version>/model_card.json`, written by deploy and
read by the registry, the model page, retention, scoring and the CLI; tasks/card_pages.py
renders it as Markdown and as an HTML page for people."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.config import Params
from tasks.records import ChampionScore, JsonRecord, Lineage, RecordJson
from tasks.run_documents import Check

if TYPE_CHECKING:
    from tasks.records import DatasetRecord
    from tasks.run_documents import BlessingDocument, EvaluationDocument
    from tasks.train import TrainResult


def code_version() -> str:
    """The package version, plus the git commit when running from a checkout."""
    version = metadata.version("nightly-retrain")
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git as the user's PATH finds it
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{version}+{commit}" if commit else version


@dataclass(frozen=True)
class CardDataset(JsonRecord):
    """The data a version was trained and tested on."""

    fingerprint: str
    manifest_uri: str
    split_counts: dict[str, int]
    class_names: list[str]  # in the model's output order
    image_size: int
    dataset_id: str | None = None  # None on versions published before datasets had ids


@dataclass(frozen=True)
class CardTraining(JsonRecord):
    """How the published weights were trained (train_result.json, summarized)."""

    epochs_trained: int
    kept_epoch: int
    final_val_accuracy: float
    train_seconds: float
    images_per_second: float
    resumed_after_epoch: int
    hyperparameters: RecordJson  # the attempt's TrainRequest
    recipe: str


@dataclass(frozen=True)
class CardMetrics(JsonRecord):
    """The version's scores on its dataset's test split."""

    accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    macro_roc_auc_ovr: float | None
    test_images: int
    per_class: dict[str, dict[str, float]]


@dataclass(frozen=True)
class CardBlessing(JsonRecord):
    blessed: bool
    reason: str
    checks: list[Check]  # one per threshold


@dataclass(frozen=True)
class ModelCard(Lineage):
    """`models/<name>/<version>/model_card.json`."""

    model_name: str
    version: int
    run_id: str
    attempt: int
    code_version: str
    dataset: CardDataset
    params: Params  # the run's (PipelineConfig.to_params)
    training: CardTraining
    metrics: CardMetrics
    blessing: CardBlessing
    champion: ChampionScore | None  # the champion's scores as blessing compared them


@dataclass(frozen=True)
class Deployment(Lineage):
    """`models/<name>/<version>/deployment.json`: the claim of a version number by one run's
    accepted attempt, written create-only before anything else of the version."""

    run_id: str
    attempt: int
    dataset_fingerprint: str
    source_uri: str  # the attempt the version's files are copied from
    accuracy: float
    macro_f1: float
    version: int | None = None  # set by the claim


def build_card(
    *,
    model_name: str,
    version: int,
    run_id: str,
    attempt: int,
    params: Params,
    dataset: DatasetRecord,
    trained: TrainResult,
    evaluation: EvaluationDocument,
    blessing: BlessingDocument,
    lineage: Lineage,
) -> ModelCard:
    from tasks.recipe import Recipe

    return ModelCard(
        model_name=model_name,
        version=version,
        run_id=run_id,
        attempt=attempt,
        code_version=code_version(),
        dataset=CardDataset(
            fingerprint=dataset.fingerprint,
            manifest_uri=dataset.manifest_uri,
            split_counts=dataset.split_counts,
            class_names=dataset.class_names,
            image_size=dataset.image_size,
            dataset_id=dataset.dataset_id,
        ),
        params=params,
        training=CardTraining(
            epochs_trained=trained.epochs_trained,
            kept_epoch=trained.kept_epoch,
            final_val_accuracy=trained.final_val_accuracy,
            train_seconds=trained.train_seconds,
            images_per_second=trained.images_per_second,
            resumed_after_epoch=trained.resumed_after_epoch,
            hyperparameters=trained.request,
            recipe=Recipe.of(trained.request).summary(),
        ),
        metrics=CardMetrics.from_json(
            evaluation.summary_metrics()
            | {"test_images": evaluation.test_images, "per_class": evaluation.per_class}
        ),
        blessing=CardBlessing(blessing.blessed, blessing.reason, blessing.checks),
        champion=blessing.baseline,
        **lineage.to_json(),
    )


def started_from(card: ModelCard) -> str:
    """Where a version's training started, for people: its parent version or random weights."""
    if card.parent_version is None:
        return "from scratch (random weights)"
    return f"from version {card.parent_version}'s weights (warm generation {card.warm_generation or 1})"
