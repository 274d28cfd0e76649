"""
### Nightly retrain of the image classifier

Collects the labelled images under `raw/<class_name>/` in S3, gates them with Great
Expectations, preprocesses them into TFRecord packs, trains the reference CNN, evaluates it
on a test split that is stable across nights, and publishes it as a new model version when
it is blessed (`min_test_accuracy`, and no worse than production). Otherwise it trains again
(warm start, lower learning rate) up to `max_attempts` times, then gives up and leaves
production as it was. A failed run sends one alert when RETRAIN_ALERT_WEBHOOK_URL is set
(plugins/retrain_alerts.py). collect and preprocess are mapped over partitions of the data (the
`partitions` Param), so the workers share them; the gate and the dataset checks run once over
the whole. A night whose data, training settings and trainer code are those of
the production model trains nothing (`force_retrain` overrides that). Each night ends by
removing what runs older than the newest `keep_runs` no longer need.

Outputs: `runs/<run>/`, `reports/<run>/` and `models/<model_name>/<version>/` plus the
pointer `models/<model_name>/production.json` (see `tasks/layout.py`). This file only wires
tasks; the logic lives in the `tasks` package, the Airflow glue in `plugins/`.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Label, TriggerRule, dag, get_current_context, task, task_group
from airflow.sdk.exceptions import AirflowFailException

from retrain_airflow import (
    DEPLOYMENT,
    PARTITION_LABEL,
    mapped_partition,
    mapped_results,
    pipeline_step,
    production_asset,
    retrain_params,
    s3_client,
)
from retrain_alerts import FailureAlert
from tasks.config import ATTEMPT_GROUPS
from trainer_operator import TrainerOperator

log = logging.getLogger("retrain.dag")

S3_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
}
PRODUCTION_MODEL = production_asset()
ACCEPT_TASKS = [f"attempt_{attempt}.accept" for attempt in range(1, ATTEMPT_GROUPS + 1)]


@task(**S3_RETRIES)
def plan_partitions() -> list[dict[str, Any]]:
    """Lists raw/ once, resolves the classes and splits the keys into partitions: one mapped
    collect (and preprocess) instance each. Each partition carries the run's classes."""
    from tasks.collect import plan_collection

    with pipeline_step() as step:
        plan = plan_collection(step.client, step.config, step.run_id)
    classes = {
        "class_names": plan.class_names,
        "class_names_from": plan.class_names_from,
        "skipped": plan.skipped,
    }
    return [{**partition, **classes} for partition in plan.partitions]


@task(map_index_template=PARTITION_LABEL, **S3_RETRIES)
def collect(partition: dict[str, Any]) -> dict[str, Any]:
    """One partition: hashes and inspects its new or changed objects (the rest come from the
    catalog) and writes its part of the manifest."""
    from tasks.collect import collect_partition

    with pipeline_step(partition["class_names"]) as step:
        part = mapped_partition(step.context, partition)
        return collect_partition(step.client, step.config, part, step.run_id).to_json()


@task(**S3_RETRIES)
def validate(planned: list[dict[str, Any]], parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merges the manifest parts and runs the data-quality gate once over the whole:
    quarantines bad objects, fails the run on unfit data; then splits the clean rows by
    content into as many partitions for preprocess, each carrying the classes and the clean
    manifest. A manifest the gate has passed already takes that night's results."""
    from tasks.collect import PartCollected
    from tasks.gated_nights import validate_night

    with pipeline_step(planned[0]["class_names"]) as step:
        validated = validate_night(
            step.client,
            step.config,
            step.run_id,
            [PartCollected.from_json(part) for part in mapped_results(parts)],
            planned[0]["class_names_from"],
            planned[0]["skipped"],
        )
    carried = {
        "class_names": validated.gate.class_names,
        "clean_manifest_uri": validated.gate.clean_manifest_uri,
        "fingerprint": validated.fingerprint,
    }
    return [{**partition, **carried} for partition in validated.partitions]


@task(map_index_template=PARTITION_LABEL, **S3_RETRIES)
def preprocess(partition: dict[str, Any]) -> dict[str, Any]:
    """One partition of the content: decodes, resizes and packs the images the example store
    lacks, and checks every image of the partition."""
    from tasks.preprocess import preprocess_partition

    with pipeline_step(partition["class_names"]) as step:
        part = mapped_partition(step.context, partition)
        return preprocess_partition(step.client, step.config, part, step.run_id).to_json()


@task(**S3_RETRIES)
def assemble_dataset(gated: list[dict[str, Any]], parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Checks the dataset as a whole (split fractions, labels per split) from the partitions'
    statistics and writes it, unless one with the same content exists."""
    from tasks.preprocess import PartProcessed, finish_dataset

    clean_manifest_uri = gated[0]["clean_manifest_uri"]
    processed = [PartProcessed.from_json(part) for part in mapped_results(parts)]
    with pipeline_step(gated[0]["class_names"]) as step:
        dataset = finish_dataset(
            step.client,
            step.config,
            clean_manifest_uri,
            processed,
            step.run_id,
            gated[0].get("fingerprint", ""),
        )
    return dataset.to_json()


@task.branch(**S3_RETRIES)
def check_for_change(dataset: dict[str, Any]) -> str:
    """Trains only when the data, the training settings or the trainer code changed since
    the production model (or force_retrain is set)."""
    from tasks.freshness import check_for_change as compare_with_production
    from tasks.preprocess import PreprocessResult

    with pipeline_step() as step:
        dataset_uri = PreprocessResult.from_json(dataset).dataset_uri
        need = compare_with_production(step.client, step.config, dataset_uri)
    log.info(need.reason)
    return "attempt_1.plan" if need.train else "nothing_to_train"


@task
def nothing_to_train() -> None:
    """Production already holds what this run would train: it stays as it is."""


@task(**S3_RETRIES)
def plan(dataset: dict[str, Any], attempt: int, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Decides what this attempt trains (and what it changes from the last one); the first
    attempt may continue from the production model (the warm_start Param)."""
    from tasks.layout import run_layout
    from tasks.preprocess import PreprocessResult
    from tasks.train import TrainResult, plan_attempt
    from tasks.warm_start import production_starting_point

    dataset_uri = PreprocessResult.from_json(dataset).dataset_uri
    with pipeline_step() as step:
        start = production_starting_point(step.client, step.config, dataset_uri) if attempt == 1 else None
        if start is not None:
            log.info(start.reason)
        request, change = plan_attempt(
            step.config,
            dataset_uri=dataset_uri,
            attempt_uri=str(run_layout(step.config, step.run_id).attempt(attempt).root),
            attempt=attempt,
            start=start,
            previous=TrainResult.from_json(previous) if previous else None,
        )
    log.info(change)
    return request.to_json()


def train(train_request: Any) -> TrainerOperator:
    """Trains one attempt in the trainer container (or in-process with trainer_backend=local)."""
    return TrainerOperator(
        task_id="train",
        train_request=train_request,
        backend="{{ params.trainer_backend }}",
        gpus="{{ params.gpus }}",
        image="{{ params.trainer_image }}",
        aws_conn_id=DEPLOYMENT.aws_conn_id,
        docker_url=DEPLOYMENT.docker_url,
        network_mode=DEPLOYMENT.docker_network,
        shm_size=DEPLOYMENT.trainer_shm_bytes,
        execution_timeout=timedelta(hours=DEPLOYMENT.training_timeout_hours),
        doc_md="Runs `python -m tasks.train` with this attempt's S3 URIs and hyperparameters.",
    )


@task(**S3_RETRIES)
def evaluate(dataset: dict[str, Any], trained: dict[str, Any], attempt: int) -> dict[str, Any]:
    """Scores the attempt's model, and the production model if comparable, on the same test
    split; writes evaluation.json and confusion_matrix.png beside the model."""
    from tasks.evaluate import evaluate_attempt
    from tasks.preprocess import PreprocessResult
    from tasks.train import TrainRequest

    with pipeline_step() as step:
        evaluation = evaluate_attempt(
            step.client,
            step.config,
            dataset_uri=PreprocessResult.from_json(dataset).dataset_uri,
            attempt=attempt,
            attempt_uri=TrainRequest.from_json(trained["request"]).output_uri,
        )
    return evaluation.to_json()


@task.branch(**S3_RETRIES)
def decide(evaluation: dict[str, Any]) -> str:
    """Blesses or not (blessing.json), then deploys, retrains or gives up."""
    from tasks.blessing import Verdict, bless_attempt
    from tasks.records import Evaluation

    evaluated = Evaluation.from_json(evaluation)
    with pipeline_step() as step:
        decision = bless_attempt(step.client, step.config, evaluated)
    attempt = evaluated.attempt
    return {
        Verdict.DEPLOY: f"attempt_{attempt}.accept",
        Verdict.RETRAIN: f"attempt_{attempt + 1}.plan",
        Verdict.GIVE_UP: f"attempt_{attempt}.give_up",
    }[decision.verdict]


@task
def accept(evaluation: dict[str, Any], dataset: dict[str, Any]) -> dict[str, Any]:
    """Hands this attempt's evaluation, and the data it was trained on, to deploy."""
    from tasks.preprocess import PreprocessResult
    from tasks.records import Candidate, Evaluation

    trained_on = PreprocessResult.from_json(dataset)
    return Candidate.accepted(
        Evaluation.from_json(evaluation), trained_on.dataset_uri, trained_on.fingerprint
    ).to_json()


@task
def give_up(evaluations: list[dict[str, Any]]) -> None:
    """No attempt was blessed: production stays; the run fails unless configured not to."""
    from tasks.blessing import give_up_reason
    from tasks.records import Evaluation

    with pipeline_step() as step:
        reason = give_up_reason([Evaluation.from_json(each) for each in evaluations], step.config)
        if step.config.fail_on_give_up:
            raise AirflowFailException(reason)
    log.warning(reason)


@task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, outlets=[PRODUCTION_MODEL], **S3_RETRIES)
def deploy() -> dict[str, Any]:
    """Publishes the accepted attempt as a new version, then moves production.json.
    Its only upstreams are the accept tasks, so it runs exactly when one attempt passed. It
    reads the result of the accept task that ran, found by the run's task states: pulling the
    skipped ones' results too would log Airflow's `XCom not found` error for each."""
    from tasks.deploy import publish_version
    from tasks.records import Candidate

    with pipeline_step() as step:
        ti = step.context["ti"]
        states = ti.get_task_states(dag_id=ti.dag_id, task_ids=ACCEPT_TASKS, run_ids=[step.run_id])
        ran = [task_id for task_id, state in states[step.run_id].items() if state == "success"]
        if len(ran) != 1:
            raise AirflowFailException(f"expected one accepted attempt, found {len(ran)}")
        candidate = Candidate.from_json(ti.xcom_pull(task_ids=ran[0]))
        publication = publish_version(step.client, step.config, candidate, run_id=step.run_id)
    step.context["outlet_events"][PRODUCTION_MODEL].extra = {
        "version": publication.version,
        "version_uri": publication.version_uri,
        "accuracy": publication.accuracy,
        "bucket": step.config.bucket,
    }
    return publication.to_json()


@task(trigger_rule=TriggerRule.ALL_DONE, **S3_RETRIES)
def night_report() -> str:
    """Writes the night report (reports/<run>/night_report.html), whatever the night's end:
    deployed, nothing to train, gave up or failed. The UI shows it on each run."""
    from retrain_alerts import RunRecords, failed_tasks, recording_failure
    from tasks.config import report_settings
    from tasks.errors import PermanentError
    from tasks.night_report import outcome_of, write_night_report
    from tasks.records import Publication

    context = get_current_context()
    ti, run_id = context["ti"], context["run_id"]
    records = RunRecords(ti.dag_id, run_id, ti)
    states = records.task_states()
    failed = failed_tasks(states, list(context["dag"].task_ids))
    published = ti.xcom_pull(task_ids="deploy") if states.get("deploy") == "success" else None
    version = Publication.from_json(published).version if published else None
    outcome = outcome_of(states, failed, records.failure_reason, version)
    config, _ = report_settings(dict(context["params"]))
    with recording_failure(context):
        try:
            uri = write_night_report(s3_client(), config, run_id, outcome)
        except PermanentError as error:
            # A missing bucket or refused credentials already failed the night, which says so;
            # a report that cannot be written must not add a second failure (or alert).
            log.warning("night report not written: %s", error)
            return ""
    return str(uri)


@task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, **S3_RETRIES)
def cleanup() -> dict[str, Any]:
    """Removes older runs' intermediates, datasets and packs nothing kept refers to."""
    from tasks.retention import remove_old_runs

    with pipeline_step() as step:
        report = remove_old_runs(
            step.client, step.config.bucket, current_run_id=step.run_id, keep_runs=step.config.keep_runs
        )
    return report.to_json()


def attempt_group(
    attempt: int, dataset: Any, previous: Any, earlier_evaluations: list[Any]
) -> tuple[Any, ...]:
    """One training attempt: plan -> train -> evaluate -> decide, with accept and give-up ends.
    Returns its plan task, training output, evaluation, branch, accept and give-up tasks."""

    @task_group(group_id=f"attempt_{attempt}")
    def group() -> Any:
        planned = plan(dataset, attempt, previous)
        trained = train(planned).output
        evaluation = evaluate(dataset, trained, attempt)
        decision = decide(evaluation)
        accepted = accept(evaluation, dataset)
        decision >> Label("blessed") >> accepted
        gave_up = give_up([*earlier_evaluations, evaluation])
        decision >> Label("attempts used up") >> gave_up
        return planned, trained, evaluation, decision, accepted, gave_up

    # Calling a task group function returns what its body returned (typed as its node).
    wired: tuple[Any, ...] = group()  # type: ignore[assignment]
    return wired


@dag(
    dag_id="image_classifier_retrain",
    schedule=DEPLOYMENT.schedule_or_none,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    params=retrain_params(),
    default_args={
        "owner": "ml-platform",
        "retries": 1,
        "retry_delay": timedelta(minutes=1),
    },
    on_failure_callback=FailureAlert(),
    tags=["ml", "retrain", "image-classifier"],
)
def image_classifier_retrain() -> None:
    planned = plan_partitions()
    gated = validate(planned, collect.expand(partition=planned))
    dataset = assemble_dataset(gated, preprocess.expand(partition=gated))
    change = check_for_change(dataset)
    skipped = nothing_to_train()
    change >> Label("no change since production") >> skipped
    previous = previous_decision = None
    accepted_per_attempt: list[Any] = []
    evaluations: list[Any] = []
    give_ups: list[Any] = []
    for attempt in range(1, ATTEMPT_GROUPS + 1):
        planned, trained, evaluation, decision, accepted, gave_up = attempt_group(
            attempt, dataset, previous, list(evaluations)
        )
        if previous_decision is None:
            change >> planned
            planned.operator.dag.set_edge_info(
                change.operator.task_id, planned.operator.task_id, {"label": "changed: train"}
            )
        else:
            # A Label between task groups would wire the group's leaves instead of this task.
            previous_decision >> planned
            planned.operator.dag.set_edge_info(
                previous_decision.operator.task_id,
                planned.operator.task_id,
                {"label": "not blessed: retrain"},
            )
        evaluations.append(evaluation)
        accepted_per_attempt.append(accepted)
        previous, previous_decision = trained, decision
        give_ups.append(gave_up)
    # A failed give_up fails cleanup too (upstream_failed), so the run still ends failed.
    deployed = deploy()
    accepted_per_attempt >> deployed
    [deployed, skipped, *give_ups] >> cleanup()
    # Not upstream of cleanup: the run's state still comes from cleanup (a leaf that fails
    # with the night), while the report, which always succeeds, is written on every end.
    [deployed, skipped, *give_ups] >> night_report()


image_classifier_retrain()
