"""The S3 layout: every key the pipeline reads or writes, in one place.

    <raw_prefix><class_name>/<file>                 raw images (the raw-data contract)
    catalog/<raw_prefix>slots/<slot>.csv            what collect knows of each raw object (a cache)
    catalog/<raw_prefix>gate-<rules>/<slot>.csv     validate: each raw object's row-level outcome (a cache)
    catalog/<raw_prefix>gate-<rules>/nights/<m>/    validate: the last manifest passed, its results (a cache)
    catalog/<raw_prefix>plans/<p>/                  plan: the last plan from an S3 Inventory report (a cache)
    runs/<run>/listing/<part>.csv                   plan: the raw objects of each collect partition
    runs/<run>/manifest/<part>.csv                  collect: one row per raw object, per partition
    runs/<run>/manifest.csv, manifest.json          validate: the merged manifest; the classes
    runs/<run>/quarantine.json, clean_manifest.csv  validate: what the gate left out and kept
    runs/<run>/clean/<part>.csv                     validate: the clean rows of each preprocess partition
    runs/<run>/processed/<part>.json                preprocess: a partition's packs and statistics
    runs/<run>/dataset_ref.json                     preprocess: which dataset the run trains on
    runs/<run>/attempt-<n>/                         train, evaluate, bless: one attempt
    examples/<version>-<size>px/index/<slot>.csv    every processed example (sha256, split, pack)
    examples/<version>-<size>px/<split>/<pack>.tfrecord   processed examples, content-addressed
    datasets/<dataset_id>/dataset.json, labels.csv  a dataset: its packs and labels (immutable)
    reports/<run>/data_docs/{raw,processed}/        the gate's Data Docs and results
    reports/<run>/night_report.html, .json          the night report, its outcome and pictures
    reports/<run>/data_docs/processed/<part>/       the per-image checks of one preprocess partition
    models/<model_name>/<version>/                  an immutable published version
    models/<model_name>/production.json             the pointer consumers read
    predictions/<run>.csv                           the example consumer's output

`<run>` is the Airflow run id made safe as a path segment (`run_segment`), `<part>` a partition
(`part-0001-of-0004`) and `<slot>` one of the 256 slots of tasks/partitions.py. No other module
builds an S3 key by hand; it asks this one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tasks.config import PipelineConfig
from tasks.storage import S3Uri

CATALOG_PREFIX = "catalog/"
EXAMPLES_PREFIX = "examples/"
DATASETS_PREFIX = "datasets/"
RUNS_PREFIX = "runs/"
REPORTS_PREFIX = "reports/"
MODELS_PREFIX = "models/"
PREDICTIONS_PREFIX = "predictions/"

MODEL_FILE = "model.keras"
HISTORY_FILE = "history.json"
TRAIN_RESULT_FILE = "train_result.json"
EVALUATION_FILE = "evaluation.json"
CONFUSION_MATRIX_FILE = "confusion_matrix.png"
TRAINING_CURVES_FILE = "training_curves.png"
BLESSING_FILE = "blessing.json"
MARKER_FILE = "_COMPLETE"
POINTER_FILE = "production.json"


def best_weights_name(epoch: int) -> str:
    return f"epoch-{epoch}.weights.h5"


SEGMENT_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


def run_segment(run_id: str) -> str:
    """A run id as an S3 path segment, one per run id: letters, digits, '.', '_' and '-' stay as
    they are; every other character (Airflow's ':' and '+', and '~' itself) becomes '~' and
    two hex digits per UTF-8 byte. So `scheduled__2026-01-02T02:00:00+00:00` is
    `scheduled__2026-01-02T02~3A00~3A00~2B00~3A00`, and no two run ids share a folder."""
    return "".join(
        character
        if character in SEGMENT_CHARACTERS
        else "".join(f"~{byte:02X}" for byte in character.encode())
        for character in run_id
    )


def legacy_run_segment(run_id: str) -> str:
    """The folder runs written before one-folder-per-run-id used: every other character became
    '_', so two run ids could share it. Read only where an earlier run's outputs must still
    be found (retention, the night report of such a run): see docs/security.md."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", run_id)


@dataclass(frozen=True)
class AttemptLayout:
    """One training attempt's outputs; the trainer knows only this folder's URI."""

    root: S3Uri

    # What deploy copies from the attempt into a version, under the same names.
    PUBLISHED_FILES = (
        MODEL_FILE,
        EVALUATION_FILE,
        BLESSING_FILE,
        HISTORY_FILE,
        CONFUSION_MATRIX_FILE,
        TRAINING_CURVES_FILE,
    )

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
    def training_curves(self) -> S3Uri:
        return self.root.join(TRAINING_CURVES_FILE)

    @property
    def blessing(self) -> S3Uri:
        return self.root.join(BLESSING_FILE)

    @property
    def checkpoints(self) -> S3Uri:
        """Per-epoch backups that let a retried try resume; deleted when the attempt ends."""
        return self.root.join("checkpoints")

    @property
    def checkpoint_backup(self) -> S3Uri:
        """BackupAndRestore's state and the epoch ledger."""
        return self.checkpoints.join("backup/")

    @property
    def checkpoint_best(self) -> S3Uri:
        """The best epoch's weights so far (one file, named by its epoch)."""
        return self.checkpoints.join("best/")

    def best_weights(self, epoch: int) -> S3Uri:
        return self.checkpoint_best.join(best_weights_name(epoch))

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
    def dataset_ref(self) -> S3Uri:
        """Which dataset the run trained on (datasets are shared between runs)."""
        return self.root.join("dataset_ref.json")

    def listing_part(self, part: str) -> S3Uri:
        return self.root.join("listing", f"{part}.csv")

    def manifest_part(self, part: str) -> S3Uri:
        return self.root.join("manifest", f"{part}.csv")

    def clean_part(self, part: str) -> S3Uri:
        return self.root.join("clean", f"{part}.csv")

    def processed_part(self, part: str) -> S3Uri:
        return self.root.join("processed", f"{part}.json")

    def data_docs(self, stage: str) -> S3Uri:
        """The Data Docs site of one gate stage (`raw` or `processed`)."""
        return self.reports.join("data_docs", stage)

    def data_docs_index(self, stage: str) -> S3Uri:
        return self.data_docs(stage).join("index.html")

    def validation_results(self, stage: str) -> S3Uri:
        return self.data_docs(stage).join("validation_results.json")

    def validation_pages(self, stage: str) -> S3Uri:
        """The folder of a gate stage's Data Docs pages, one per validation run."""
        return self.data_docs(stage).join("validations/")

    @property
    def night_report(self) -> S3Uri:
        return self.reports.join("night_report.html")

    @property
    def night_outcome(self) -> S3Uri:
        """How the night ended, as the report says it (night_report.json)."""
        return self.reports.join("night_report.json")

    def report_file(self, relative: str) -> S3Uri:
        """A file next to the night report (a picture it shows), by its path from there."""
        return self.reports.join(relative)

    def attempt(self, number: int) -> AttemptLayout:
        return AttemptLayout(self.root.join(f"attempt-{number}"))


@dataclass(frozen=True)
class ExampleStore:
    """Processed examples of one image size and preprocessing version, in packs (TFRecord
    files) named by the hash of their content, so a pack is written once and shared by every
    dataset that holds its examples."""

    root: S3Uri

    @property
    def index(self) -> S3Uri:
        """The folder of the index: sha256, split, pack and pixel facts of every stored
        example (a cache of the packs), one file per content slot."""
        return self.root.join("index")

    def index_slot(self, slot: int) -> S3Uri:
        return self.index.join(f"{slot:03d}.csv")

    def pack(self, split: str, pack_id: str) -> S3Uri:
        return self.root.join(split, f"{pack_id}.tfrecord")


@dataclass(frozen=True)
class DatasetLayout:
    """One dataset: which packs and labels make it. Named by its content, written once."""

    root: S3Uri

    @classmethod
    def at(cls, record_uri: str) -> DatasetLayout:
        """The dataset whose dataset.json is at record_uri."""
        parsed = S3Uri.parse(record_uri)
        return cls(S3Uri(parsed.bucket, parsed.key.rsplit("/", 1)[0]))

    @property
    def record(self) -> S3Uri:
        """dataset.json, written after labels.csv: its presence means the dataset is whole."""
        return self.root.join("dataset.json")

    @property
    def labels(self) -> S3Uri:
        return self.root.join("labels.csv")


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
    def model_card_page(self) -> S3Uri:
        """The card as a page people open (the UI's "Model card" link, the night report's)."""
        return self.root.join("model_card.html")

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


def catalog(config: PipelineConfig) -> S3Uri:
    """The folder of the raw-object catalog of the bucket's raw prefix, one file per key slot."""
    return S3Uri(config.bucket, f"{CATALOG_PREFIX}{config.raw_prefix}slots")


def catalog_slot(config: PipelineConfig, slot: int) -> S3Uri:
    return catalog(config).join(f"{slot:03d}.csv")


def bucket_root(bucket: str) -> S3Uri:
    """Every key of the bucket."""
    return S3Uri(bucket, "")


def inventory_delivery(report: S3Uri, began: str) -> S3Uri:
    """The folder of one delivery of an S3 Inventory report (`began`: 2026-12-01T01-00Z)."""
    return report.join(began).folder()


def inventory_data_file(report: S3Uri, name: str) -> S3Uri:
    return report.join("data", name)


def inventory_delivery_files(delivery: S3Uri) -> tuple[S3Uri, S3Uri]:
    """An S3 Inventory delivery's manifest.json and manifest.checksum (tasks/inventory.py)."""
    return delivery.join("manifest.json"), delivery.join("manifest.checksum")


def gate_rules_root(config: PipelineConfig, rules_digest: str) -> S3Uri:
    """What the gate keeps for the raw prefix under one set of row rules (a folder)."""
    return S3Uri(config.bucket, f"{CATALOG_PREFIX}{config.raw_prefix}gate-{rules_digest}/")


def row_outcomes_slot(config: PipelineConfig, rules_digest: str, slot: int) -> S3Uri:
    """The gate's row-level outcomes for the keys of one slot, under the rules they were
    reached with (tasks/row_outcomes.py)."""
    return gate_rules_root(config, rules_digest).join(f"{slot:03d}.csv")


@dataclass(frozen=True)
class GatedNightLayout:
    """A manifest the gate passed and what it made of it, kept so that a night with the same
    manifest parts takes them by copy (tasks/gated_nights.py)."""

    root: S3Uri

    @property
    def record(self) -> S3Uri:
        """gated.json, written last: its presence means the rest is whole."""
        return self.root.join("gated.json")

    @property
    def manifest(self) -> S3Uri:
        return self.root.join("manifest.csv")

    @property
    def clean_manifest(self) -> S3Uri:
        return self.root.join("clean_manifest.csv")

    def clean_part(self, part: str) -> S3Uri:
        return self.root.join("clean", f"{part}.csv")


def gated_nights(config: PipelineConfig, rules_digest: str) -> S3Uri:
    """Every kept gated night under one set of row rules."""
    return gate_rules_root(config, rules_digest).join("nights/")


def gate_memory(config: PipelineConfig) -> S3Uri:
    """What the gate keeps for the raw prefix, under every set of row rules (a key prefix)."""
    return S3Uri(config.bucket, f"{CATALOG_PREFIX}{config.raw_prefix}gate-")


def gated_night(config: PipelineConfig, rules_digest: str, manifest_digest: str) -> GatedNightLayout:
    return GatedNightLayout(gated_nights(config, rules_digest).join(manifest_digest))


@dataclass(frozen=True)
class KeptPlanLayout:
    """A plan made from an S3 Inventory report, kept so that a night whose report holds the
    same rows takes its listing parts by copy (tasks/kept_plans.py)."""

    root: S3Uri

    @property
    def record(self) -> S3Uri:
        """plan.json, written last: its presence means the parts are whole."""
        return self.root.join("plan.json")

    def listing_part(self, part: str) -> S3Uri:
        return self.root.join("listing", f"{part}.csv")


def kept_plans(config: PipelineConfig) -> S3Uri:
    """Every kept plan of the raw prefix (a folder)."""
    return S3Uri(config.bucket, f"{CATALOG_PREFIX}{config.raw_prefix}plans/")


def kept_plan(config: PipelineConfig, plan_digest: str) -> KeptPlanLayout:
    return KeptPlanLayout(kept_plans(config).join(plan_digest))


def example_store(bucket: str, image_size: int, preprocessing_version: str) -> ExampleStore:
    return ExampleStore(S3Uri(bucket, f"{EXAMPLES_PREFIX}{preprocessing_version}-{image_size}px"))


def dataset_layout(bucket: str, dataset_id: str) -> DatasetLayout:
    return DatasetLayout(S3Uri(bucket, f"{DATASETS_PREFIX}{dataset_id}"))


def runs_root(bucket: str) -> S3Uri:
    return S3Uri(bucket, RUNS_PREFIX)


def datasets_root(bucket: str) -> S3Uri:
    return S3Uri(bucket, DATASETS_PREFIX)


def examples_root(bucket: str) -> S3Uri:
    return S3Uri(bucket, EXAMPLES_PREFIX)


def models_root(bucket: str) -> S3Uri:
    return S3Uri(bucket, MODELS_PREFIX)


def run_layout_of(bucket: str, segment: str) -> RunLayout:
    """A run's layout from its folder name (as listed under runs/)."""
    return RunLayout(S3Uri(bucket, f"{RUNS_PREFIX}{segment}"), S3Uri(bucket, f"{REPORTS_PREFIX}{segment}"))


def raw_root(config: PipelineConfig) -> S3Uri:
    return S3Uri(config.bucket, config.raw_prefix)


def raw_image(bucket: str, raw_prefix: str, class_name: str, file_name: str) -> S3Uri:
    """Where an image of a class is uploaded, by the raw-data contract."""
    return S3Uri(bucket, f"{raw_prefix}{class_name}/{file_name}")


def raw_object(bucket: str, key: str) -> S3Uri:
    """A raw object by the key a listing returned."""
    return S3Uri(bucket, key)


def run_layout(config: PipelineConfig, run_id: str) -> RunLayout:
    return run_layout_of(config.bucket, run_segment(run_id))


def model_layout(config: PipelineConfig) -> ModelLayout:
    return ModelLayout.of(config.bucket, config.model_name)


def predictions(bucket: str, run_id: str) -> S3Uri:
    return S3Uri(bucket, f"{PREDICTIONS_PREFIX}{run_segment(run_id)}.csv")


def output_prefixes(bucket: str) -> list[S3Uri]:
    """Where the pipeline writes (not raw/): what the demo mirrors locally."""
    prefixes = (RUNS_PREFIX, REPORTS_PREFIX, DATASETS_PREFIX, MODELS_PREFIX)
    return [S3Uri(bucket, prefix) for prefix in prefixes]
