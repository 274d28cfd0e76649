"""The documents a night writes under `runs/<run>/` for people and for later steps, one record
each: collect's manifest summary, the gate's quarantine list, the dataset reference, and an
attempt's blessing with what it trained. Their writers write through these records and every
reader (the night report, retention) reads through them (see tasks/records.py for the
contract)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tasks.records import ChampionScore, JsonRecord


@dataclass(frozen=True)
class ManifestSummary(JsonRecord):
    """`runs/<run>/manifest.json`: what collect listed and read tonight."""

    manifest_uri: str
    objects: int
    objects_read: int
    objects_new: int
    objects_changed: int
    objects_removed: int
    partitions: int
    class_names: list[str]
    class_names_from: str
    objects_per_folder: dict[str, int]
    skipped_as_noise: dict[str, int]


@dataclass(frozen=True)
class QuarantinedObject(JsonRecord):
    key: str
    reasons: list[str]


@dataclass(frozen=True)
class QuarantineList(JsonRecord):
    """`runs/<run>/quarantine.json`: the objects the raw gate set aside and why."""

    manifest_uri: str
    quarantined: list[QuarantinedObject]
    duplicates_dropped: list[str]  # keys of exact duplicates left out of the dataset
    rows_checked: int
    rows_carried: int
    gated_by_run: str  # the run that gated this manifest (an earlier one when unchanged)


@dataclass(frozen=True)
class DatasetRef(JsonRecord):
    """`runs/<run>/dataset_ref.json`: the dataset this run trains on (datasets are shared)."""

    dataset_uri: str
    dataset_id: str


@dataclass(frozen=True)
class AttemptTraining(JsonRecord):
    """What an attempt trained (for a retry: what it changed) and which epoch it published."""

    attempt: str
    epochs_trained: int
    kept_epoch: int


@dataclass(frozen=True)
class CandidateScores(JsonRecord):
    """An attempt as blessing compares it."""

    attempt: int
    model_uri: str
    accuracy: float
    macro_f1: float


@dataclass(frozen=True)
class Check(JsonRecord):
    """One blessing threshold applied to one metric."""

    metric: str
    kind: str  # "value" (>= threshold) or "change" (>= champion - margin)
    value: float
    threshold: float
    passed: bool


@dataclass(frozen=True)
class BlessingDocument(JsonRecord):
    """`runs/<run>/attempt-<n>/blessing.json`: the blessing of one attempt (the champion's
    full figures are in its evaluation.json)."""

    blessed: bool
    reason: str
    candidate: CandidateScores
    baseline: ChampionScore | None  # the champion's scores, when compared with one
    checks: list[Check] = field(default_factory=list)
    training: AttemptTraining | None = None


@dataclass(frozen=True)
class ClassificationMetrics(JsonRecord):
    """A model's figures on a test split (tasks.evaluate.classification_metrics)."""

    accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    macro_roc_auc_ovr: float | None  # None when the test split holds a single class
    per_class: dict[str, dict[str, float]]  # precision, recall, f1, support per class
    roc_auc_ovr: dict[str, float]
    confusion_matrix: list[list[int]]  # rows true, columns predicted, in class order
    class_names: list[str]


@dataclass(frozen=True)
class ChampionScores(JsonRecord):
    """The production model scored on the same test split as the candidate."""

    version: int
    model_uri: str
    accuracy: float
    macro_f1: float
    metrics: ClassificationMetrics

    def score(self) -> ChampionScore:
        return ChampionScore(self.version, self.model_uri, self.accuracy, self.macro_f1)


@dataclass(frozen=True, kw_only=True)
class EvaluationDocument(ClassificationMetrics):
    """`runs/<run>/attempt-<n>/evaluation.json` (copied into each version): an attempt's model
    scored on the dataset's test split (its metrics at the top level), and the champion it was
    compared with."""

    model_uri: str
    dataset_uri: str
    test_images: int
    champion: ChampionScores | None  # None: no production model with these classes and size

    def summary_metrics(self) -> dict[str, float | None]:
        """The headline figures a model card lists."""
        return {
            "accuracy": self.accuracy,
            "macro_precision": self.macro_precision,
            "macro_recall": self.macro_recall,
            "macro_f1": self.macro_f1,
            "macro_roc_auc_ovr": self.macro_roc_auc_ovr,
        }
