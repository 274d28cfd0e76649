"""One typed settings object for a pipeline run: defaults from the environment, overrides
from Airflow Params (or the CLI), validated once so every step can trust it."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

DIGIT_CLASS_NAMES: tuple[str, ...] = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
)


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class PipelineConfig:
    """Everything a run needs to know; Params in the Airflow UI map 1:1 onto these fields."""

    bucket: str = field(default_factory=lambda: _env("RETRAIN_BUCKET", "nightly-retrain"))
    raw_prefix: str = "raw/"
    runs_prefix: str = "runs/"
    reports_prefix: str = "reports/"
    models_prefix: str = "models/"
    model_name: str = field(default_factory=lambda: _env("RETRAIN_MODEL_NAME", "digits-cnn"))
    class_names: tuple[str, ...] = DIGIT_CLASS_NAMES
    image_size: int = 128
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    min_test_accuracy: float | None = 0.90
    min_macro_f1: float | None = None
    max_regression: float | None = 0.0  # how far below the champion a candidate may score
    max_attempts: int = 3
    retry_learning_rate_factor: float = 0.5
    retry_warm_start: bool = True
    min_images: int = 100
    # The data-quality gate (see README, "Data-quality gate").
    min_images_per_class: int = 10
    max_class_imbalance: float = 3.0
    max_quarantine_fraction: float = 0.01
    min_image_side: int = 16
    max_image_side: int = 8192
    max_image_bytes: int = 20 * 1024 * 1024
    allowed_formats: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "BMP")
    split_tolerance: float = 0.05
    fail_on_give_up: bool = True
    seed: int = 42

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise ValueError("invalid pipeline config: " + "; ".join(problems))

    def _problems(self):
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", self.bucket):
            yield f"bucket {self.bucket!r} is not a valid S3 bucket name"
        for name in ("raw_prefix", "runs_prefix", "reports_prefix", "models_prefix"):
            prefix = getattr(self, name)
            if not prefix.endswith("/") or prefix.startswith("/") or ".." in prefix:
                yield f"{name} {prefix!r} must be relative and end with '/'"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.model_name):
            yield f"model_name {self.model_name!r} may hold only letters, digits, '_', '.', '-'"
        if len(self.class_names) < 2:
            yield "class_names needs at least two classes"
        if len(set(self.class_names)) != len(self.class_names):
            yield f"class_names {list(self.class_names)} holds duplicates"
        for class_name in self.class_names:
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", class_name):
                yield f"class name {class_name!r} is not usable as an S3 prefix"
        # Three valid 3x3 convolutions with 2x2 pooling need at least 22 pixels.
        if not 22 <= self.image_size <= 512:
            yield f"image_size {self.image_size} must be within 22..512"
        if self.epochs < 1 or self.batch_size < 1 or self.max_attempts < 1:
            yield "epochs, batch_size and max_attempts must be at least 1"
        if not 0 < self.retry_learning_rate_factor <= 1:
            yield f"retry_learning_rate_factor {self.retry_learning_rate_factor} must be within (0, 1]"
        if not 0 < self.learning_rate < 1:
            yield f"learning_rate {self.learning_rate} must be within (0, 1)"
        for name in ("min_test_accuracy", "min_macro_f1", "max_regression"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                yield f"{name} {value} must be within [0, 1]"
        if self.min_images < 1 or self.min_images_per_class < 1:
            yield "min_images and min_images_per_class must be at least 1"
        if self.max_class_imbalance < 1:
            yield f"max_class_imbalance {self.max_class_imbalance} must be at least 1"
        if not 0 <= self.max_quarantine_fraction <= 1 or not 0 < self.split_tolerance < 1:
            yield "max_quarantine_fraction must be within [0, 1] and split_tolerance within (0, 1)"
        if not 1 <= self.min_image_side <= self.max_image_side:
            yield f"image sides {self.min_image_side}..{self.max_image_side} are not a valid range"

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> PipelineConfig:
        """Builds the config from Airflow Params or CLI options; unknown keys are ignored
        (Airflow adds its own), missing ones take the defaults."""
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in params.items() if key in known}
        for name in ("class_names", "allowed_formats"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)

    def to_params(self) -> dict[str, Any]:
        """The JSON-friendly form passed between tasks and into the trainer."""
        params = asdict(self)
        params["class_names"] = list(self.class_names)
        params["allowed_formats"] = list(self.allowed_formats)
        return params

    def run_prefix(self, run_id: str) -> str:
        """The key prefix (no trailing '/') under which one DAG run writes everything."""
        return f"{self.runs_prefix}{run_partition(run_id)}"

    def class_share_bounds(self) -> tuple[float, float]:
        """Each class's share of the images must lie within uniform / r .. uniform * r."""
        uniform = 1 / len(self.class_names)
        return uniform / self.max_class_imbalance, min(1.0, uniform * self.max_class_imbalance)


def run_partition(run_id: str) -> str:
    """A run id as an S3 path segment: Airflow's ids hold ':' and '+', which URL tools mangle."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", run_id)
