"""
### Nightly retrain of the image classifier

Collects the labelled images under `raw/<class_name>/` in S3, gates them with Great
Expectations, preprocesses them into TFRecord shards, trains the reference CNN, evaluates it
on a test split that is stable across nights, and publishes it as a new model version when
its test accuracy meets `min_test_accuracy`. Otherwise it trains again (warm start, lower
learning rate) up to `max_attempts` times, then gives up and leaves production as it was.

Outputs: `runs/<run_id>/` (manifest, shards, each attempt's model and metrics) and
`models/<model_name>/<version>/` plus the pointer `models/<model_name>/production.json`.
This file only wires tasks; the logic lives in the `tasks` package.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Label, Param, TriggerRule, dag, get_current_context, task, task_group

from retrain_airflow import failing_fast, production_asset, run_config, s3_client
from tasks.config import PipelineConfig
from trainer_operator import BACKENDS, TrainerOperator

log = logging.getLogger("retrain.dag")

AWS_CONN_ID = os.environ.get("RETRAIN_AWS_CONN_ID", "aws_default")
# A cron expression, or "none" for runs triggered only by hand or through the API.
SCHEDULE = os.environ.get("RETRAIN_SCHEDULE", "0 2 * * *")
# The retrain loop is unrolled into this many task groups; `max_attempts` may use fewer.
ATTEMPT_GROUPS = int(os.environ.get("RETRAIN_ATTEMPT_GROUPS", "3"))
TRAINING_TIMEOUT = timedelta(hours=int(os.environ.get("RETRAIN_TRAINING_TIMEOUT_HOURS", "4")))
DOCKER_URL = os.environ.get("RETRAIN_DOCKER_URL", os.environ.get("DOCKER_HOST", "unix://var/run/docker.sock"))
# "host" reaches an S3 endpoint on the worker's loopback; a compose network reaches MinIO by name.
DOCKER_NETWORK = os.environ.get("RETRAIN_DOCKER_NETWORK", "bridge")
TRAINER_SHM_BYTES = int(os.environ.get("RETRAIN_TRAINER_SHM_BYTES", str(2 * 1024**3)))
DEFAULT_BACKEND = os.environ.get(
    "RETRAIN_TRAINER_BACKEND",
    "docker"
    if "RETRAIN_DOCKER_URL" in os.environ
    or "DOCKER_HOST" in os.environ
    or os.path.exists("/var/run/docker.sock")
    else "local",
)
S3_RETRIES = {"retries": 3, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True}

DEFAULTS = PipelineConfig()
PARAMS = {
    "bucket": Param(DEFAULTS.bucket, type="string", description="S3 bucket holding raw/, runs/ and models/"),
    "raw_prefix": Param(DEFAULTS.raw_prefix, type="string", description="Prefix of raw/<class_name>/<file>"),
    "model_name": Param(DEFAULTS.model_name, type="string", description="Name under models/"),
    "class_names": Param(
        list(DEFAULTS.class_names),
        type="array",
        items={"type": "string"},
        description="Labels in output order; each is a folder under raw_prefix",
    ),
    "image_size": Param(
        DEFAULTS.image_size,
        type="integer",
        minimum=22,
        maximum=512,
        description="Images are resized to image_size x image_size RGB",
    ),
    "epochs": Param(DEFAULTS.epochs, type="integer", minimum=1, description="Epochs per attempt"),
    "batch_size": Param(DEFAULTS.batch_size, type="integer", minimum=1),
    "learning_rate": Param(DEFAULTS.learning_rate, type="number", exclusiveMinimum=0, maximum=1),
    "min_macro_f1": Param(
        DEFAULTS.min_macro_f1,
        type=["null", "number"],
        minimum=0,
        maximum=1,
        description="Optional: deploy only at or above this macro F1",
    ),
    "max_regression": Param(
        DEFAULTS.max_regression,
        type=["null", "number"],
        minimum=0,
        maximum=1,
        description="How far below the production model a candidate may score (null: no check)",
    ),
    "min_test_accuracy": Param(
        DEFAULTS.min_test_accuracy,
        type=["null", "number"],
        minimum=0,
        maximum=1,
        description="Deploy only at or above this test accuracy",
    ),
    "max_attempts": Param(
        DEFAULTS.max_attempts,
        type="integer",
        minimum=1,
        maximum=ATTEMPT_GROUPS,
        description="Training attempts before giving up",
    ),
    "retry_learning_rate_factor": Param(
        DEFAULTS.retry_learning_rate_factor,
        type="number",
        exclusiveMinimum=0,
        maximum=1,
        description="Each retry multiplies the learning rate by this",
    ),
    "retry_warm_start": Param(
        DEFAULTS.retry_warm_start,
        type="boolean",
        description="Retries continue from the previous attempt's weights (else: fresh model, new seed)",
    ),
    "min_images": Param(
        DEFAULTS.min_images,
        type="integer",
        minimum=1,
        description="Fewer usable images than this fails the data gate",
    ),
    "min_images_per_class": Param(
        DEFAULTS.min_images_per_class,
        type="integer",
        minimum=1,
        description="A class with fewer usable images fails the data gate",
    ),
    "max_class_imbalance": Param(
        DEFAULTS.max_class_imbalance,
        type="number",
        minimum=1,
        description="Each class's share within uniform/r .. uniform*r",
    ),
    "max_quarantine_fraction": Param(
        DEFAULTS.max_quarantine_fraction,
        type="number",
        minimum=0,
        maximum=1,
        description="Fail when more objects are quarantined",
    ),
    "min_image_side": Param(
        DEFAULTS.min_image_side,
        type="integer",
        minimum=1,
        description="Smaller images are quarantined (too small)",
    ),
    "max_image_side": Param(
        DEFAULTS.max_image_side,
        type="integer",
        minimum=1,
        description="Larger images are quarantined (too large)",
    ),
    "allowed_formats": Param(
        list(DEFAULTS.allowed_formats),
        type="array",
        items={"type": "string"},
        description="Image formats accepted (Pillow's names)",
    ),
    "trainer_backend": Param(
        DEFAULT_BACKEND,
        type="string",
        enum=list(BACKENDS),
        description="docker: the trainer image via DockerOperator; local: in-process",
    ),
    "gpus": Param(
        os.environ.get("RETRAIN_GPUS", "0"),
        type="string",
        pattern="^(all|[0-9]+)$",
        description="GPUs for the trainer container: all, a count, or 0 for CPU",
    ),
    "trainer_image": Param(
        os.environ.get("RETRAIN_TRAINER_IMAGE", "nightly-retrain-trainer:latest"),
        type="string",
        description="Image (and tag) the docker backend runs",
    ),
    "fail_on_give_up": Param(
        DEFAULTS.fail_on_give_up,
        type="boolean",
        description="Fail the run (alerting on-call) when no attempt passes",
    ),
}


@task(**S3_RETRIES)
def collect() -> dict[str, Any]:
    """Lists raw/ and writes the run's manifest (key, class, size, ETag, sha256)."""
    from dataclasses import asdict

    from tasks.collect import collect as collect_manifest

    context = get_current_context()
    with failing_fast():
        return asdict(collect_manifest(s3_client(AWS_CONN_ID), run_config(context), context["run_id"]))


@task
def validate(collected: dict[str, Any]) -> str:
    """The data-quality gate: quarantines bad objects, fails the run on unfit data."""
    from tasks.collect import read_manifest
    from tasks.validate import validate as validate_manifest

    context = get_current_context()
    client = s3_client(AWS_CONN_ID)
    with failing_fast():
        manifest = read_manifest(client, collected["manifest_uri"])
        gate = validate_manifest(
            client, run_config(context), manifest, collected["manifest_uri"], context["run_id"]
        )
    return gate.clean_manifest_uri


@task(**S3_RETRIES)
def preprocess(manifest_uri: str) -> dict[str, Any]:
    """Decodes, resizes and splits the images into TFRecord shards under the run."""
    from dataclasses import asdict

    from tasks.preprocess import preprocess as preprocess_images

    context = get_current_context()
    with failing_fast():
        result = preprocess_images(
            s3_client(AWS_CONN_ID), run_config(context), manifest_uri, context["run_id"]
        )
    return asdict(result)


@task
def plan(dataset: dict[str, Any], attempt: int, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Decides what this attempt trains (and what it changes from the last one)."""
    from dataclasses import asdict

    from tasks.train import plan_attempt

    context = get_current_context()
    config = run_config(context)
    attempt_uri = f"s3://{config.bucket}/{config.run_prefix(context['run_id'])}/attempt-{attempt}"
    request, change = plan_attempt(
        dataset["dataset_uri"],
        attempt_uri,
        attempt,
        config.epochs,
        config.batch_size,
        config.learning_rate,
        config.seed,
        previous["model_uri"] if previous else None,
        config.retry_learning_rate_factor,
        config.retry_warm_start,
    )
    log.info(change)
    return asdict(request)


def train(train_request: Any) -> TrainerOperator:
    """Trains one attempt in the trainer container (or in-process with trainer_backend=local)."""
    return TrainerOperator(
        task_id="train",
        train_request=train_request,
        backend="{{ params.trainer_backend }}",
        gpus="{{ params.gpus }}",
        image="{{ params.trainer_image }}",
        aws_conn_id=AWS_CONN_ID,
        docker_url=DOCKER_URL,
        network_mode=DOCKER_NETWORK,
        shm_size=TRAINER_SHM_BYTES,
        execution_timeout=TRAINING_TIMEOUT,
        doc_md="Runs `python -m tasks.train` with this attempt's S3 URIs and hyperparameters.",
    )


@task
def evaluate(dataset: dict[str, Any], trained: dict[str, Any], attempt: int) -> dict[str, Any]:
    """Scores the attempt's model, and the production model if any, on the same test split;
    writes evaluation.json and confusion_matrix.png beside the model."""
    from dataclasses import asdict

    from tasks.deploy import current_champion
    from tasks.evaluate import evaluate as evaluate_model

    client = s3_client(AWS_CONN_ID)
    attempt_uri = trained["request"]["output_uri"]
    champion = current_champion(client, run_config(get_current_context()))
    evaluation = evaluate_model(client, dataset["dataset_uri"], trained["model_uri"], attempt_uri, champion)
    return {"attempt": attempt, "attempt_uri": attempt_uri, **asdict(evaluation)}


def attempt_group(
    attempt: int, dataset: Any, previous: Any, earlier_evaluations: list[Any]
) -> tuple[Any, Any, Any, Any, Any]:
    """One training attempt: plan -> train -> evaluate -> decide, with accept and give-up ends.
    Returns the attempt's first task, its training output, its evaluation, its branch and its
    accept task."""

    @task_group(group_id=f"attempt_{attempt}")
    def group() -> tuple[Any, Any, Any, Any, Any]:
        planned = plan(dataset, attempt, previous)
        trained = train(planned).output
        evaluation = evaluate(dataset, trained, attempt)

        @task.branch
        def decide(evaluation: dict[str, Any]) -> str:
            """Blesses or not (blessing.json), then deploys, retrains or gives up."""
            from tasks.blessing import BlessingConfigError, bless
            from tasks.decide import Verdict
            from tasks.decide import decide as decide_next
            from tasks.storage import S3Uri, put_json

            config = run_config(get_current_context())
            try:
                blessing = bless(
                    {k: evaluation[k] for k in ("attempt", "model_uri", "accuracy", "macro_f1")},
                    evaluation["champion"],
                    config.min_test_accuracy,
                    config.min_macro_f1,
                    config.max_regression,
                )
            except BlessingConfigError as error:
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(str(error)) from error
            blessing_uri = S3Uri.parse(evaluation["attempt_uri"]).join("blessing.json")
            put_json(s3_client(AWS_CONN_ID), blessing_uri, blessing.to_json())
            decision = decide_next(
                blessing.blessed, blessing.reason, attempt, min(config.max_attempts, ATTEMPT_GROUPS)
            )
            log.info("%s (%s)", decision.reason, blessing_uri)
            return {
                Verdict.DEPLOY: f"attempt_{attempt}.accept",
                Verdict.RETRAIN: f"attempt_{attempt + 1}.plan",
                Verdict.GIVE_UP: f"attempt_{attempt}.give_up",
            }[decision.verdict]

        @task
        def accept(evaluation: dict[str, Any], dataset: dict[str, Any]) -> dict[str, Any]:
            """Hands this attempt's evaluation, and the data it was trained on, to deploy."""
            return {
                **evaluation,
                "dataset_fingerprint": dataset["fingerprint"],
                "dataset_uri": dataset["dataset_uri"],
            }

        @task
        def give_up(evaluations: list[dict[str, Any]]) -> None:
            """No attempt was blessed: production stays; the run fails unless configured not to."""
            from tasks.decide import give_up_reason

            config = run_config(get_current_context())
            reason = give_up_reason(evaluations, config.min_test_accuracy)
            if config.fail_on_give_up:
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(reason)
            log.warning(reason)

        decision = decide(evaluation)
        accepted = accept(evaluation, dataset)
        gave_up = give_up([*earlier_evaluations, evaluation])
        decision >> Label("blessed") >> accepted
        decision >> Label("attempts used up") >> gave_up
        return planned, trained, evaluation, decision, accepted

    return group()


PRODUCTION_MODEL = production_asset()


@task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, outlets=[PRODUCTION_MODEL], **S3_RETRIES)
def deploy(candidates: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Publishes the accepted attempt as a new version, then moves production.json.
    Its only upstreams are the accept tasks, so it runs exactly when one attempt passed."""
    from dataclasses import asdict

    from airflow.sdk.exceptions import AirflowFailException

    from tasks.deploy import Candidate, publish

    context = get_current_context()
    accepted = [candidate for candidate in candidates if candidate]
    if len(accepted) != 1:
        raise AirflowFailException(f"expected one accepted attempt, found {len(accepted)}")
    candidate = Candidate(**{k: accepted[0][k] for k in Candidate.__dataclass_fields__})
    with failing_fast():
        publication = publish(
            s3_client(AWS_CONN_ID),
            run_config(context),
            candidate,
            context["run_id"],
            accepted[0]["dataset_fingerprint"],
            accepted[0]["dataset_uri"],
        )
    context["outlet_events"][PRODUCTION_MODEL].extra = {
        "version": publication.version,
        "version_uri": publication.version_uri,
        "accuracy": publication.accuracy,
        "bucket": run_config(context).bucket,
    }
    return asdict(publication)


@dag(
    dag_id="image_classifier_retrain",
    schedule=None if SCHEDULE.lower() == "none" else SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    params=PARAMS,
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["ml", "retrain", "image-classifier"],
)
def image_classifier_retrain() -> None:
    dataset = preprocess(validate(collect()))
    previous = None
    accepted_per_attempt = []
    evaluations = []
    previous_decision = None
    for attempt in range(1, ATTEMPT_GROUPS + 1):
        planned, trained, evaluation, decision, accepted = attempt_group(
            attempt, dataset, previous, list(evaluations)
        )
        evaluations.append(evaluation)
        if previous_decision is not None:
            # A Label between task groups would wire the group's leaves instead of this task.
            previous_decision >> planned
            planned.operator.dag.set_edge_info(
                previous_decision.operator.task_id,
                planned.operator.task_id,
                {"label": "not blessed: retrain"},
            )
        accepted_per_attempt.append(accepted)
        previous, previous_decision = trained, decision
    deploy(accepted_per_attempt)


image_classifier_retrain()
