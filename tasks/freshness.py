"""Whether a night has anything to train: a run whose dataset, training settings and trainer
code are those the production model was trained with would only repeat that training.

The three are summed up in a training signature that deploy records with every version
(model card, deployment.json and production.json); a run compares its own with production's
and skips training, evaluation and deploy when they are equal, unless `force_retrain` is set.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from tasks.config import PipelineConfig
from tasks.recipe import Recipe
from tasks.records import COMPILING, DatasetRecord
from tasks.registry import Registry
from tasks.storage import S3Client

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
# warm_start, warm_epochs and full_retrain_every are not among them: they choose how a night
# reaches a model of these settings, not which model the settings describe.
# The code that decides what a trained model is: the model, the recipe and its input.
TRAINER_SOURCES = ("model.py", "recipe.py", "train.py", "shards.py", "checkpoints.py")


# Calls whose statements only report (log lines, prints): editing their text trains nothing.
REPORTING_CALLERS = frozenset({"log", "logger", "logging", "print"})


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def _is_report(statement: ast.stmt) -> bool:
    """A statement that is only a call of `log.info(...)`, `logger.warning(...)`, `print(...)`."""
    if not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)):
        return False
    function = statement.value.func
    while isinstance(function, ast.Attribute):
        function = function.value
    return isinstance(function, ast.Name) and function.id in REPORTING_CALLERS


def code_shape(source: str) -> str:
    """The source's syntax tree without docstrings, comments, log lines and positions: what the
    code does, not how it is worded or laid out."""
    with COMPILING:
        tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
            kept = [part for part in body if not (_is_docstring(part) or _is_report(part))]
            node.body = kept or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.dump(tree, include_attributes=False)


def trainer_code_version() -> str:
    """A hash of the trainer's code (its syntax trees, so a docstring, comment or log-line edit
    keeps it), the same in the worker and in the trainer image."""
    digest = hashlib.sha256()
    for name in TRAINER_SOURCES:
        digest.update(name.encode() + b"\0")
        digest.update(code_shape((Path(__file__).resolve().parent / name).read_text()).encode())
    return digest.hexdigest()[:16]


def settings_digest(config: PipelineConfig) -> str:
    """A hash of the training settings alone (a warm start needs production's to be the same)."""
    settings = {name: getattr(config, name) for name in TRAINING_SETTINGS}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


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
    dataset = DatasetRecord.read(client, dataset_uri)
    signature = training_signature(config, dataset.dataset_id)
    pointer = Registry(client, config.bucket, config.model_name).pointer()
    if pointer is None:
        return TrainingNeed(True, "no production model yet: training", signature)
    version = pointer.version
    if pointer.training_signature != signature:
        same_data = pointer.dataset_fingerprint == dataset.fingerprint
        what = "settings or trainer code changed" if same_data else "the data changed"
        return TrainingNeed(True, f"{what} since version {version}: training", signature)
    if config.force_retrain:
        return TrainingNeed(
            True, f"no change since version {version}, but force_retrain is set: training", signature
        )
    return TrainingNeed(
        False,
        f"no change since version {version} (dataset {dataset.fingerprint[:12]}..., same settings "
        "and trainer code): nothing to train",
        signature,
    )
