"""The S3 layout: every key the pipeline reads or writes, in one place.

    <raw_prefix><class_name>/<file>                 raw images (the raw-data contract)
    runs/<run>/manifest.csv, manifest.json          collect: one row per raw object; classes
    runs/<run>/quarantine.json, clean_manifest.csv  validate: what the gate left out and kept
    runs/<run>/dataset/dataset.json, *.tfrecord     preprocess: the shards training reads
    runs/<run>/attempt-<n>/                         train, evaluate, bless: one attempt
    reports/<run>/data_docs/{raw,processed}/        the gate's Data Docs and results
    models/<model_name>/<version>/                  an immutable published version
    models/<model_name>/production.json             the pointer consumers read
    predictions/<run>.csv                           the example consumer's output

`<run>` is the Airflow run id made safe as a path segment (`run_segment`). No other module
builds an S3 key by hand; it asks this one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tasks.config import PipelineConfig
from tasks.storage import S3Uri

RUNS_PREFIX = "runs/"
REPORTS_PREFIX = "reports/"
MODELS_PREFIX = "models/"
PREDICTIONS_PREFIX = "predictions/"

MODEL_FILE = "model.keras"
HISTORY_FILE = "history.json"
TRAIN_RESULT_FILE = "train_result.json"
EVALUATION_FILE = "evaluation.json"
CONFUSION_MATRIX_FILE = "confusion_matrix.png"
BLESSING_FILE = "blessing.json"
MARKER_FILE = "_COMPLETE"
POINTER_FILE = "production.json"


def run_segment(run_id: str) -> str:
    """A run id as an S3 path segment: Airflow's ids hold ':' and '+', which URL tools mangle."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", run_id)


@dataclass(frozen=True)
class AttemptLayout:
    """One training attempt's outputs; the trainer knows only this folder's URI."""

    root: S3Uri

    # What deploy copies from the attempt into a version, under the same names.
    PUBLISHED_FILES = (MODEL_FILE, EVALUATION_FILE, BLESSING_FILE, HISTORY_FILE, CONFUSION_MATRIX_FILE)

    @classmethod
    def at(cls, uri: str) -> AttemptLayout:
        return cls(S3Uri.parse(uri))

    @property
    def model(self) -> S3Uri:
        return self.root.join(MODEL_FILE)

    @property
    def history(self) -> S3Uri:
        return self.root.join(HISTORY_FILE)

    @property
    def train_result(self) -> S3Uri:
        """Written last by the trainer: its presence means the attempt's model is whole."""
        return self.root.join(TRAIN_RESULT_FILE)

    @property
    def evaluation(self) -> S3Uri:
        return self.root.join(EVALUATION_FILE)

    @property
    def confusion_matrix(self) -> S3Uri:
        return self.root.join(CONFUSION_MATRIX_FILE)

    @property
    def blessing(self) -> S3Uri:
        return self.root.join(BLESSING_FILE)

    @property
    def checkpoints(self) -> S3Uri:
        """Per-epoch backups that let a retried try resume; deleted when the attempt ends."""
        return self.root.join("checkpoints")

    @property
    def tensorboard(self) -> S3Uri:
        return self.root.join("tensorboard")

    def file(self, name: str) -> S3Uri:
        return self.root.join(name)


@dataclass(frozen=True)
class RunLayout:
    """Everything one DAG run writes: intermediates under runs/, reports under reports/."""

    root: S3Uri
    reports: S3Uri

    @property
    def manifest(self) -> S3Uri:
        return self.root.join("manifest.csv")

    @property
    def manifest_summary(self) -> S3Uri:
        """The classes of the run and where they came from (Param or raw folders)."""
        return self.root.join("manifest.json")

    @property
    def quarantine(self) -> S3Uri:
        return self.root.join("quarantine.json")

    @property
    def clean_manifest(self) -> S3Uri:
        return self.root.join("clean_manifest.csv")

    @property
    def dataset(self) -> S3Uri:
        """The folder of TFRecord shards."""
        return self.root.join("dataset")

    @property
    def dataset_record(self) -> S3Uri:
        """dataset.json, written after the shards: its presence means they are whole."""
        return self.dataset.join("dataset.json")

    def shard(self, file_name: str) -> S3Uri:
        return self.dataset.join(file_name)

    def data_docs(self, stage: str) -> S3Uri:
        """The Data Docs site of one gate stage (`raw` or `processed`)."""
        return self.reports.join("data_docs", stage)

    def data_docs_index(self, stage: str) -> S3Uri:
        return self.data_docs(stage).join("index.html")

    def validation_results(self, stage: str) -> S3Uri:
        return self.data_docs(stage).join("validation_results.json")

    def attempt(self, number: int) -> AttemptLayout:
        return AttemptLayout(self.root.join(f"attempt-{number}"))


@dataclass(frozen=True)
class VersionLayout:
    """One published, immutable model version."""

    root: S3Uri
    version: int

    @property
    def model(self) -> S3Uri:
        return self.root.join(MODEL_FILE)

    @property
    def evaluation(self) -> S3Uri:
        return self.root.join(EVALUATION_FILE)

    @property
    def deployment(self) -> S3Uri:
        """Claimed first, with a create-only write: it reserves the version number."""
        return self.root.join("deployment.json")

    @property
    def labels(self) -> S3Uri:
        return self.root.join("labels.json")

    @property
    def model_card(self) -> S3Uri:
        return self.root.join("model_card.json")

    @property
    def model_card_markdown(self) -> S3Uri:
        return self.root.join("model_card.md")

    @property
    def serving_base(self) -> S3Uri:
        """TensorFlow Serving's model base path; it polls the numbered folders below it."""
        return self.root.join("serving")

    @property
    def serving_export(self) -> S3Uri:
        return self.serving_base.join(str(self.version))

    @property
    def marker(self) -> S3Uri:
        """Written last: a version without it is incomplete and never loaded."""
        return self.root.join(MARKER_FILE)

    def file(self, name: str) -> S3Uri:
        return self.root.join(name)


@dataclass(frozen=True)
class ModelLayout:
    """The versions and the production pointer of one model."""

    root: S3Uri

    @classmethod
    def of(cls, bucket: str, model_name: str) -> ModelLayout:
        return cls(S3Uri(bucket, f"{MODELS_PREFIX}{model_name}"))

    @property
    def pointer(self) -> S3Uri:
        return self.root.join(POINTER_FILE)

    def version(self, number: int) -> VersionLayout:
        return VersionLayout(self.root.join(str(number)), number)


def raw_root(config: PipelineConfig) -> S3Uri:
    return S3Uri(config.bucket, config.raw_prefix)


def raw_image(bucket: str, raw_prefix: str, class_name: str, file_name: str) -> S3Uri:
    """Where an image of a class is uploaded, by the raw-data contract."""
    return S3Uri(bucket, f"{raw_prefix}{class_name}/{file_name}")


def raw_object(bucket: str, key: str) -> S3Uri:
    """A raw object by the key a listing returned."""
    return S3Uri(bucket, key)


def run_layout(config: PipelineConfig, run_id: str) -> RunLayout:
    segment = run_segment(run_id)
    return RunLayout(
        S3Uri(config.bucket, f"{RUNS_PREFIX}{segment}"), S3Uri(config.bucket, f"{REPORTS_PREFIX}{segment}")
    )


def model_layout(config: PipelineConfig) -> ModelLayout:
    return ModelLayout.of(config.bucket, config.model_name)


def predictions(bucket: str, run_id: str) -> S3Uri:
    return S3Uri(bucket, f"{PREDICTIONS_PREFIX}{run_segment(run_id)}.csv")


def output_prefixes(bucket: str) -> list[S3Uri]:
    """Where the pipeline writes (not raw/): what the demo mirrors locally."""
    return [S3Uri(bucket, prefix) for prefix in (RUNS_PREFIX, REPORTS_PREFIX, MODELS_PREFIX)]
