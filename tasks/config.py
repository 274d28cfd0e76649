"""One typed settings object for a pipeline run, each setting declared once.

Every field carries its default, bounds, description and trigger-form section. The Airflow
Params of the DAG are generated from these declarations (`param_schemas`), and the config
validates with the same bounds, so the form, the REST API and the CLI refuse the same values.
Settings that are deliberately not Params are the `DeploymentSettings`, read from the
environment once per installation.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields, replace
from datetime import timedelta
from typing import Any

from tasks.errors import InvalidSettingsError
from tasks.recipe import (
    BATCH_SIZE,
    EPOCHS,
    LEARNING_RATE,
    SEED,
    WARM_EPOCHS,
    WARM_START_DEFAULT,
    WARM_START_MODES,
    Recipe,
)
from tasks.settings import (
    BLESSING,
    DATA_GATE,
    DATA_SOURCE,
    EXECUTION,
    SECTIONS,
    TRAINING,
    JsonSchema,
    declared_problems,
    json_schemas,
    same_setting_as,
    setting,
    value_problems,
)

# Settings held as tuples, given as lists in Params and JSON.
LIST_SETTINGS = ("class_names", "ignore_patterns", "allowed_formats")

# The retrain loop is unrolled into this many task groups when the DAG is parsed, so it
# bounds `max_attempts`.
ATTEMPT_GROUPS = int(os.environ.get("RETRAIN_ATTEMPT_GROUPS", "3"))
TRAINER_BACKENDS = ("docker", "local")
PREFIX_PATTERN = r"^(?!/)(?!.*\.\.).*/$"
CLASS_NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"


def _env(name: str, default: str) -> Any:
    return lambda: os.environ.get(name, default)


def _bucket_patterns(text: str) -> tuple[str, ...]:
    return tuple(pattern.strip() for pattern in text.split(",") if pattern.strip())


def _default_backend() -> str:
    """docker where an engine is configured or its socket exists, else in-process."""
    if "RETRAIN_TRAINER_BACKEND" in os.environ:
        return os.environ["RETRAIN_TRAINER_BACKEND"]
    has_engine = {"RETRAIN_DOCKER_URL", "DOCKER_HOST"} & set(os.environ)
    return "docker" if has_engine or os.path.exists("/var/run/docker.sock") else "local"


# Param names and their JSON values, as the trigger form, a run's conf or the CLI give them.
Params = dict[str, Any]


@dataclass(frozen=True)
class PipelineConfig:
    """Everything a run needs to know; built once per task from the run's Params."""

    # Data source
    bucket: str = setting(
        default_factory=_env("RETRAIN_BUCKET", "nightly-retrain"),
        description="S3 bucket holding raw/, runs/, reports/ and models/",
        section=DATA_SOURCE,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
    )
    raw_prefix: str = setting(
        "raw/",
        description="Prefix of the raw images, laid out as <raw_prefix><class_name>/<file>",
        section=DATA_SOURCE,
        pattern=PREFIX_PATTERN,
    )
    inventory_uri: str = setting(
        default_factory=_env("RETRAIN_S3_INVENTORY", ""),
        description="An S3 Inventory report of the bucket (CSV, with size and ETag), as "
        "s3://<destination>/<prefix>/<bucket>/<config id>/; collect reads its latest report "
        "instead of listing raw_prefix (empty: list)",
        section=DATA_SOURCE,
        pattern=r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.*/)?$",
    )
    class_names: tuple[str, ...] = setting(
        (),
        description="Labels in output order, each a folder under raw_prefix; empty: the folders "
        "under raw_prefix, sorted",
        section=DATA_SOURCE,
        items={"type": "string", "pattern": CLASS_NAME_PATTERN},
        uniqueItems=True,
    )
    ignore_patterns: tuple[str, ...] = setting(
        (),
        description="More objects to skip at listing, as glob patterns on the key below raw_prefix "
        "(such as *.txt or exports/*); desktop and job-marker files (.DS_Store, Thumbs.db, "
        "_SUCCESS, __MACOSX/, ...) are always skipped",
        section=DATA_SOURCE,
        items={"type": "string", "minLength": 1},
    )
    model_name: str = setting(
        default_factory=_env("RETRAIN_MODEL_NAME", "digits-cnn"),
        description="The model's name under models/ (one registry per name)",
        section=DATA_SOURCE,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
    )
    # Data-quality gate
    min_images: int = setting(
        100, description="Fewer usable images than this fails the gate", section=DATA_GATE, minimum=1
    )
    min_images_per_class: int = setting(
        10, description="A class with fewer usable images fails the gate", section=DATA_GATE, minimum=1
    )
    max_class_imbalance: float = setting(
        3.0,
        description="Each class's share must lie within uniform/r .. uniform*r",
        section=DATA_GATE,
        minimum=1,
    )
    max_quarantine_fraction: float = setting(
        0.01,
        description="Fail when a larger share of the objects is quarantined",
        section=DATA_GATE,
        minimum=0,
        maximum=1,
    )
    min_image_side: int = setting(
        16, description="Images with a shorter side are quarantined (too small)", section=DATA_GATE, minimum=1
    )
    max_image_side: int = setting(
        8192,
        description="Images with a longer side are quarantined (too large)",
        section=DATA_GATE,
        minimum=1,
    )
    max_image_bytes: int = setting(
        20 * 1024 * 1024,
        description="Larger objects are quarantined (too large)",
        section=DATA_GATE,
        minimum=1,
    )
    allowed_formats: tuple[str, ...] = setting(
        ("PNG", "JPEG", "WEBP", "BMP"),
        description="Image formats accepted, by Pillow's names",
        section=DATA_GATE,
        items={"type": "string"},
        minItems=1,
    )
    split_tolerance: float = setting(
        0.05,
        description="How far each split's share may stray from 80/10/10",
        section=DATA_GATE,
        exclusiveMinimum=0,
        exclusiveMaximum=1,
    )
    # Training
    image_size: int = setting(
        128,
        description="Images are resized to image_size x image_size RGB (three valid 3x3 convolutions "
        "with 2x2 pooling need at least 22)",
        section=TRAINING,
        minimum=22,
        maximum=512,
    )
    epochs: int = setting(EPOCHS, description="Epochs per attempt", section=TRAINING, minimum=1)
    batch_size: int = setting(BATCH_SIZE, description="Images per training step", section=TRAINING, minimum=1)
    learning_rate: float = setting(
        LEARNING_RATE,
        description="Adam's learning rate for the first attempt",
        section=TRAINING,
        exclusiveMinimum=0,
        exclusiveMaximum=1,
    )
    seed: int = setting(
        SEED,
        description="Seed of weights and shuffling (retries add the attempt)",
        section=TRAINING,
        minimum=0,
    )
    # The recipe's settings, declared in tasks/recipe.py.
    augment_flip: bool = same_setting_as(Recipe, "augment_flip")
    augment_shift: float = same_setting_as(Recipe, "augment_shift")
    average_flips: bool = same_setting_as(Recipe, "average_flips")
    dropout: float = same_setting_as(Recipe, "dropout")
    label_smoothing: float = same_setting_as(Recipe, "label_smoothing")
    weight_decay: float = same_setting_as(Recipe, "weight_decay")
    lr_schedule: str = same_setting_as(Recipe, "lr_schedule")
    keep_epoch_by: str = same_setting_as(Recipe, "keep_epoch_by")
    early_stopping_patience: int = same_setting_as(Recipe, "early_stopping_patience")
    warm_start: str = setting(
        default_factory=_env("RETRAIN_WARM_START", WARM_START_DEFAULT),
        description="auto: a changed night continues from the production model when its classes, "
        "input size, training settings and trainer code are this night's and it is fewer than "
        "full_retrain_every warm generations deep; never: every night trains from scratch; always: "
        "continue whenever the classes and input size allow",
        section=TRAINING,
        enum=list(WARM_START_MODES),
    )
    warm_epochs: int = setting(
        WARM_EPOCHS,
        description="Epochs of a warm-started attempt (the learning rate re-warms over its first "
        "epoch, then follows lr_schedule)",
        section=TRAINING,
        minimum=1,
    )
    full_retrain_every: int = setting(
        7,
        description="A production model this many warm generations deep is followed by a night "
        "that trains from scratch",
        section=TRAINING,
        minimum=1,
    )
    force_retrain: bool = setting(
        False,
        description="Train even when the data, the training settings and the trainer code are those "
        "the production model was trained with",
        section=TRAINING,
    )
    # Blessing and retries
    min_test_accuracy: float | None = setting(
        0.90,
        description="Deploy only at or above this test accuracy (null: no such check)",
        section=BLESSING,
        minimum=0,
        maximum=1,
    )
    min_macro_f1: float | None = setting(
        None,
        description="Deploy only at or above this macro F1 (null: no such check)",
        section=BLESSING,
        minimum=0,
        maximum=1,
    )
    max_regression: float | None = setting(
        0.0,
        description="How far below the production model a candidate may score (null: no comparison)",
        section=BLESSING,
        minimum=0,
        maximum=1,
    )
    max_attempts: int = setting(
        3,
        description="Training attempts before giving up",
        section=BLESSING,
        minimum=1,
        maximum=ATTEMPT_GROUPS,
    )
    retry_learning_rate_factor: float = setting(
        0.5,
        description="Each retry multiplies the learning rate by this",
        section=BLESSING,
        exclusiveMinimum=0,
        maximum=1,
    )
    retry_warm_start: bool = setting(
        True,
        description="Retries continue from the previous attempt's weights (else: a fresh model, new seed)",
        section=BLESSING,
    )
    fail_on_give_up: bool = setting(
        True, description="Fail the run when no attempt is blessed", section=BLESSING
    )
    # Execution
    keep_runs: int = setting(
        14,
        description="Retention: the newest runs whose intermediates are kept (model versions, what "
        "production needs and the runs that made them are always kept)",
        section=EXECUTION,
        minimum=1,
    )
    partitions: int = setting(
        0,
        description="How many mapped collect and preprocess tasks share the data work across the "
        "workers; 0 = one per 8,000 raw objects, at most 64. The result is the same at any value",
        section=EXECUTION,
        minimum=0,
        maximum=256,
    )

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise InvalidSettingsError("invalid pipeline config: " + "; ".join(problems))

    def _problems(self) -> Iterator[str]:
        yield from declared_problems(self)
        if len(self.class_names) == 1:
            yield "class_names needs at least two classes (or none, to use the raw folders)"
        if self.min_image_side > self.max_image_side:
            yield f"min_image_side {self.min_image_side} is above max_image_side {self.max_image_side}"

    @classmethod
    def from_params(cls, params: Params) -> PipelineConfig:
        """Builds the config from Airflow Params or CLI options; keys that are not settings
        are ignored here (see `unknown_params` to refuse them), missing ones take defaults."""
        known = {f.name for f in fields(cls)}
        values = {
            key: value
            for key, value in params.items()
            if key in known and not (value is None and form_optional(key))
        }
        for name in LIST_SETTINGS:
            if isinstance(values.get(name), list):
                values[name] = tuple(values[name])
        return cls(**values)

    def to_params(self) -> Params:
        """The JSON-friendly form recorded in model cards."""
        params = asdict(self)
        for name in LIST_SETTINGS:
            params[name] = list(params[name])
        return params

    def with_classes(self, class_names: list[str]) -> PipelineConfig:
        """The config with the classes a run resolved (from the Param or the raw folders)."""
        return replace(self, class_names=tuple(class_names))

    def class_share_bounds(self) -> tuple[float, float]:
        """Each class's share of the images must lie within uniform / r .. uniform * r."""
        uniform = 1 / len(self.class_names)
        return uniform / self.max_class_imbalance, min(1.0, uniform * self.max_class_imbalance)


@dataclass(frozen=True)
class DeploymentSettings:
    """Settings fixed per installation, deliberately not Params: they shape the DAG when it is
    parsed (schedule, task groups, timeouts), name infrastructure a run must not switch, or
    decide what code runs with the pipeline's S3 keys and where those keys may be used (see
    docs/security.md). Each comes from the environment variable in its description."""

    aws_conn_id: str = setting(
        default_factory=_env("RETRAIN_AWS_CONN_ID", "aws_default"),
        description="RETRAIN_AWS_CONN_ID: the Airflow connection of the S3 endpoint",
    )
    schedule: str = setting(
        default_factory=_env("RETRAIN_SCHEDULE", "0 2 * * *"),
        description="RETRAIN_SCHEDULE: a cron expression, or none for triggered runs only",
    )
    training_timeout_hours: int = setting(
        default_factory=lambda: int(os.environ.get("RETRAIN_TRAINING_TIMEOUT_HOURS", "4")),
        description="RETRAIN_TRAINING_TIMEOUT_HOURS: a training try taking longer fails",
    )
    docker_url: str = setting(
        default_factory=lambda: os.environ.get(
            "RETRAIN_DOCKER_URL", os.environ.get("DOCKER_HOST", "unix://var/run/docker.sock")
        ),
        description="RETRAIN_DOCKER_URL (else DOCKER_HOST): the engine that runs trainer containers",
    )
    docker_network: str = setting(
        default_factory=_env("RETRAIN_DOCKER_NETWORK", "bridge"),
        description="RETRAIN_DOCKER_NETWORK: host reaches an endpoint on the worker's loopback; a "
        "compose network reaches MinIO by name",
    )
    trainer_shm_bytes: int = setting(
        default_factory=lambda: int(os.environ.get("RETRAIN_TRAINER_SHM_BYTES", str(2 * 1024**3))),
        description="RETRAIN_TRAINER_SHM_BYTES: /dev/shm of the trainer container",
    )
    alert_webhook_url: str = setting(
        default_factory=_env("RETRAIN_ALERT_WEBHOOK_URL", ""),
        description="RETRAIN_ALERT_WEBHOOK_URL: where failure alerts are POSTed; empty: alerts off",
    )
    run_timeout_hours: float | None = setting(
        default_factory=lambda: (
            float(os.environ["RETRAIN_RUN_TIMEOUT_HOURS"])
            if os.environ.get("RETRAIN_RUN_TIMEOUT_HOURS")
            else None
        ),
        description="RETRAIN_RUN_TIMEOUT_HOURS: a night running longer fails (and the next can start); "
        "default: every attempt's training time limit plus 2 h for the data work and deploy",
    )
    training_pool: str = setting(
        default_factory=_env("RETRAIN_TRAINING_POOL", "default_pool"),
        description="RETRAIN_TRAINING_POOL: the Airflow pool training tasks take a slot of (create it "
        "with as many slots as trainers may run at once)",
    )
    trainer_backend: str = setting(
        default_factory=_default_backend,
        description="RETRAIN_TRAINER_BACKEND: docker, the trainer image through DockerOperator (the "
        "default where an engine is configured); local, in the worker's process",
    )
    trainer_image: str = setting(
        default_factory=_env("RETRAIN_TRAINER_IMAGE", "nightly-retrain-trainer:latest"),
        description="RETRAIN_TRAINER_IMAGE: the image (and tag) the docker backend runs",
    )
    gpus: str = setting(
        default_factory=_env("RETRAIN_GPUS", "0"),
        description="RETRAIN_GPUS: GPUs for the trainer container: all, a count, or 0 for CPU",
    )
    trainer_role_arn: str = setting(
        default_factory=_env("RETRAIN_TRAINER_ROLE_ARN", ""),
        description="RETRAIN_TRAINER_ROLE_ARN: a role the connection may assume: each trainer container "
        "gets credentials of it minted for its attempt (scoped to it, lasting past its time limit); "
        "empty: the connection's own",
    )
    allowed_buckets: tuple[str, ...] = setting(
        default_factory=lambda: _bucket_patterns(
            os.environ.get("RETRAIN_ALLOWED_BUCKETS") or os.environ.get("RETRAIN_BUCKET", "nightly-retrain")
        ),
        description="RETRAIN_ALLOWED_BUCKETS: the buckets a run's bucket and inventory_uri may name, "
        "comma-separated (shell-style patterns, * for any); default: RETRAIN_BUCKET's",
    )

    def bucket_refusal(self, config: PipelineConfig) -> str | None:
        """Why this deployment refuses the buckets a run's settings name, or None."""
        named = {"bucket": config.bucket}
        if config.inventory_uri:
            named["inventory_uri"] = config.inventory_uri.removeprefix("s3://").split("/", 1)[0]
        for name, bucket in named.items():
            if not any(fnmatch.fnmatchcase(bucket, pattern) for pattern in self.allowed_buckets):
                return (
                    f"{name}: bucket {bucket!r} is not one this deployment allows "
                    f"({', '.join(self.allowed_buckets)}); an admin adds it to RETRAIN_ALLOWED_BUCKETS"
                )
        return None

    # RETRAIN_ATTEMPT_GROUPS (ATTEMPT_GROUPS above) belongs here too; the config needs it as
    # the bound of max_attempts, so it is read once at import.

    @property
    def run_timeout(self) -> timedelta:
        """RETRAIN_RUN_TIMEOUT_HOURS, else every attempt's training limit plus 2 h."""
        hours = self.run_timeout_hours
        return timedelta(hours=ATTEMPT_GROUPS * self.training_timeout_hours + 2 if hours is None else hours)

    @property
    def schedule_or_none(self) -> str | None:
        return None if self.schedule.lower() == "none" else self.schedule


def form_optional(name: str) -> bool:
    """Lists, switches and text that may be left empty: their Params also take null, meaning
    the default. Airflow's trigger form marks every Param whose type excludes null as required
    (*) and refuses to submit a required field left empty, which would block the whole form
    where an empty list, an unset switch or empty text is the point."""
    schema = json_schemas(PipelineConfig)[name]
    if schema["type"] in ("array", "boolean"):
        return True
    return schema["type"] == "string" and not list(value_problems(name, schema, ""))


def field_problems(name: str, value: Any) -> Iterator[str]:
    """What is wrong with one value of a config setting, as its Param's schema would say
    (null stands for the default of a list, a switch or text that may be empty, see
    `form_optional`)."""
    if value is None and form_optional(name):
        return iter(())
    return value_problems(name, json_schemas(PipelineConfig)[name], value)


def report_settings(params: Params) -> PipelineConfig:
    """Where a run's night report goes and what it may show, also for a run whose Params fail
    the checks (the night failed; its report says why): the run's settings, else its bucket and
    model name alone, else the deployment's. A bucket the deployment does not allow is never
    used: the deployment's own is."""
    deployment = DeploymentSettings()
    location: Params = {name: params[name] for name in ("bucket", "model_name") if name in params}
    for candidate in (params, location, {}):
        try:
            config = PipelineConfig.from_params(candidate)
        except InvalidSettingsError:
            continue
        if deployment.bucket_refusal(config) is None:
            return config
    return PipelineConfig.from_params({})


# A deployment's own defaults for the Params, as a JSON object (the trigger form shows them).
PARAM_DEFAULTS_ENV = "RETRAIN_PARAM_DEFAULTS"


def deployment_param_defaults() -> Params:
    """The Param defaults the deployment sets in RETRAIN_PARAM_DEFAULTS, e.g. `make ui`'s
    digits (classes in label order, no flips); each checked as a run's value would be."""
    text = os.environ.get(PARAM_DEFAULTS_ENV, "").strip()
    if not text:
        return {}
    try:
        defaults = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidSettingsError(f"{PARAM_DEFAULTS_ENV}: not a JSON object ({error})") from None
    if not isinstance(defaults, dict):
        raise InvalidSettingsError(f"{PARAM_DEFAULTS_ENV}: not a JSON object of Param names and values")
    refused = unknown_params(list(defaults), known=[option.name for option in fields(PipelineConfig)])
    if refused:
        raise InvalidSettingsError(f"{PARAM_DEFAULTS_ENV}: {refused}")
    try:
        PipelineConfig.from_params(defaults)
    except InvalidSettingsError as error:
        raise InvalidSettingsError(f"{PARAM_DEFAULTS_ENV}: {error}") from None
    return defaults


def param_schemas() -> dict[str, JsonSchema]:
    """Each Param's default and JSON schema (type, bounds, description, section), in form order.
    Defaults are read now, so environment defaults (and the deployment's Param defaults) apply
    when the DAG file is parsed."""
    defaults = PipelineConfig.from_params(deployment_param_defaults())
    schemas = json_schemas(PipelineConfig)
    declared = {option.name: option for option in fields(PipelineConfig)}
    ordered = {}
    for section in SECTIONS:
        for name, schema in schemas.items():
            if declared[name].metadata["section"] != section:
                continue
            default = getattr(defaults, name)
            ordered[name] = {
                "default": list(default) if isinstance(default, tuple) else default,
                "description": declared[name].metadata["description"] + bounds_note(schema),
                "section": section,
                **schema,
            }
            if form_optional(name):
                ordered[name]["type"] = ["null", schema["type"]]
    return ordered


def bounds_note(schema: JsonSchema) -> str:
    """The allowed range of a number, for the form's help text: the form's number fields clamp
    an out-of-range entry to the nearest bound when the field loses focus, so the range is
    said where the value is typed."""
    lower = [f">= {schema['minimum']}"] if "minimum" in schema else []
    lower += [f"> {schema['exclusiveMinimum']}"] if "exclusiveMinimum" in schema else []
    upper = [f"<= {schema['maximum']}"] if "maximum" in schema else []
    upper += [f"< {schema['exclusiveMaximum']}"] if "exclusiveMaximum" in schema else []
    bounds = lower + upper
    return f" (allowed: {', '.join(bounds)})" if bounds else ""


def unknown_params(keys: list[str], known: list[str]) -> str | None:
    """One line refusing conf keys that are not among `known` (a DAG's Params), each with the
    nearest known name as a suggestion."""
    unknown = sorted(set(keys) - set(known))
    if not unknown:
        return None
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hints.append(f"unknown Param {key}" + (f"; did you mean {close[0]}?" if close else ""))
    return "; ".join(hints) + f" (the Params are: {', '.join(known)})"
