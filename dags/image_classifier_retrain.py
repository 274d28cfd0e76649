"""
### Nightly retrain of the image classifier

Collects the labelled images under `raw/<class_name>/` in S3 (mapped over partitions, the
`partitions` Param), gates them with Great Expectations, preprocesses them into TFRecord
packs, trains the reference CNN, evaluates it on a test split that is stable across nights,
and publishes it as a new model version when it is blessed (`min_test_accuracy`, and no worse
than production). Otherwise it trains again up to `max_attempts` times, then gives up and
leaves production as it was. A night whose data, settings and trainer code are production's
trains nothing (unless `force_retrain`). A failed run sends one alert; every run writes a night
report; retention then removes what only runs older than the newest `keep_runs` use.

Outputs (tasks/layout.py): `runs/<run>/`, `reports/<run>/`, `models/<model_name>/<version>/`,
`models/<model_name>/production.json`. This file only wires tasks (logic: `tasks/`; glue: `plugins/`).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Label, TriggerRule, dag, get_current_context, task, task_group

from retrain_airflow import (
    DEPLOYMENT,
    PARTITION_LABEL,
    S3_RETRIES,
    label_edge,
    mapped_partition,
    mapped_results,
    pipeline_step,
    production_asset,
    retrain_params,
    s3_client,
)
from retrain_alerts import FailureAlert
from tasks.config import ATTEMPT_GROUPS
from tasks.records import RecordJson
from trainer_operator import trainer_task

log = logging.getLogger("retrain.dag")

PRODUCTION_MODEL = production_asset()
ACCEPT_TASKS = [f"attempt_{attempt}.accept" for attempt in range(1, ATTEMPT_GROUPS + 1)]


@task(**S3_RETRIES)
def plan_partitions() -> list[RecordJson]:
    """Lists raw/ once, resolves the classes and splits the keys into partitions: one mapped
    collect (and preprocess) instance each. Each partition carries the run's classes."""
    from tasks.collect import plan_collection

    with pipeline_step() as step:
        return plan_collection(step.client, step.config, step.run_id).mapped()


@task(map_index_template=PARTITION_LABEL, **S3_RETRIES)
def collect(partition: RecordJson) -> RecordJson:
    """One partition: hashes and inspects its new or changed objects (the rest come from the
    catalog) and writes its part of the manifest."""
    from tasks.collect import PlannedClasses, collect_partition

    with pipeline_step(PlannedClasses.from_json(partition, "plan_partitions").class_names) as step:
        part = mapped_partition(step.context, partition)
        return collect_partition(step.client, step.config, part, step.run_id).to_json()


@task(**S3_RETRIES)
def validate(planned: list[RecordJson], parts: list[RecordJson]) -> list[RecordJson]:
    """Merges the manifest parts and runs the data-quality gate once over the whole (quarantines
    bad objects, fails the run on unfit data), then splits the clean rows by content into
    partitions for preprocess. A manifest the gate has passed already takes that night's results."""
    from tasks.collect import PartCollected, PlannedClasses
    from tasks.gated_nights import validate_night

    classes = PlannedClasses.from_json(planned[0], "plan_partitions")
    collected = [PartCollected.from_json(part) for part in mapped_results(parts)]
    with pipeline_step(classes.class_names) as step:
        return validate_night(
            step.client, step.config, step.run_id, collected, classes.class_names_from, classes.skipped
        ).mapped()


@task(map_index_template=PARTITION_LABEL, **S3_RETRIES)
def preprocess(partition: RecordJson) -> RecordJson:
    """One partition of the content: decodes, resizes and packs the images the example store
    lacks, and checks every image of the partition."""
    from tasks.gated_nights import GatedData
    from tasks.preprocess import preprocess_partition

    with pipeline_step(GatedData.from_json(partition, "validate").class_names) as step:
        part = mapped_partition(step.context, partition)
        return preprocess_partition(step.client, step.config, part, step.run_id).to_json()


@task(**S3_RETRIES)
def assemble_dataset(gated: list[RecordJson], parts: list[RecordJson]) -> RecordJson:
    """Checks the dataset as a whole (split fractions, labels per split) from the partitions'
    statistics and writes it, unless one with the same content exists."""
    from tasks.gated_nights import GatedData
    from tasks.preprocess import PartProcessed, finish_dataset

    data = GatedData.from_json(gated[0], "validate")
    processed = [PartProcessed.from_json(part) for part in mapped_results(parts)]
    with pipeline_step(data.class_names) as step:
        dataset = finish_dataset(
            step.client, step.config, data.clean_manifest_uri, processed, step.run_id, data.fingerprint
        )
    return dataset.to_json()


@task.branch(**S3_RETRIES)
def check_for_change(dataset: RecordJson) -> str:
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
def plan(dataset: RecordJson, attempt: int, previous: RecordJson | None = None) -> RecordJson:
    """Decides what this attempt trains (and what it changes from the last one); the first
    attempt may continue from the production model (the warm_start Param)."""
    from tasks.preprocess import PreprocessResult
    from tasks.train import TrainResult, plan_night_attempt

    dataset_uri = PreprocessResult.from_json(dataset).dataset_uri
    before = TrainResult.from_json(previous, "train") if previous else None
    with pipeline_step() as step:
        request = plan_night_attempt(step.client, step.config, step.run_id, dataset_uri, attempt, before)
    return request.to_json()


@task(**S3_RETRIES)
def evaluate(dataset: RecordJson, trained: RecordJson, attempt: int) -> RecordJson:
    """Scores the attempt's model, and the production model if comparable, on the same test
    split; writes evaluation.json and confusion_matrix.png beside the model."""
    from tasks.evaluate import evaluate_attempt
    from tasks.preprocess import PreprocessResult
    from tasks.train import TrainRequest, TrainResult

    dataset_uri = PreprocessResult.from_json(dataset).dataset_uri
    attempt_uri = TrainRequest.from_json(TrainResult.from_json(trained, "train").request).output_uri
    with pipeline_step() as step:
        evaluated = evaluate_attempt(
            step.client, step.config, dataset_uri=dataset_uri, attempt=attempt, attempt_uri=attempt_uri
        )
    return evaluated.to_json()


@task.branch(**S3_RETRIES)
def decide(evaluation: RecordJson) -> str:
    """Blesses or not (blessing.json), then deploys, retrains or gives up."""
    from tasks.blessing import Verdict, bless_attempt
    from tasks.records import Evaluation

    evaluated = Evaluation.from_json(evaluation)
    with pipeline_step() as step:
        decision = bless_attempt(step.client, step.config, evaluated)
    number = evaluated.attempt
    branches = {Verdict.DEPLOY: f"attempt_{number}.accept", Verdict.RETRAIN: f"attempt_{number + 1}.plan"}
    return branches.get(decision.verdict, f"attempt_{number}.give_up")


@task
def accept(evaluation: RecordJson, dataset: RecordJson) -> RecordJson:
    """Hands this attempt's evaluation, and the data it was trained on, to deploy."""
    from tasks.preprocess import PreprocessResult
    from tasks.records import Candidate, Evaluation

    data = PreprocessResult.from_json(dataset)
    return Candidate.accepted(Evaluation.from_json(evaluation), data.dataset_uri, data.fingerprint).to_json()


@task
def give_up(evaluations: list[RecordJson]) -> None:
    """No attempt was blessed: production stays; the run fails unless configured not to."""
    from tasks.blessing import give_up as give_up_night
    from tasks.records import Evaluation

    with pipeline_step() as step:
        log.warning(give_up_night([Evaluation.from_json(each) for each in evaluations], step.config))


@task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, outlets=[PRODUCTION_MODEL], **S3_RETRIES)
def deploy() -> RecordJson:
    """Publishes the accepted attempt as a new version, then moves production.json. Its only
    upstreams are the accept tasks, so it runs exactly when one attempt passed."""
    from retrain_night import accepted_candidate, announce_publication
    from tasks.deploy import publish_version

    with pipeline_step() as step:
        candidate = accepted_candidate(step.context, ACCEPT_TASKS)
        publication = publish_version(step.client, step.config, candidate, run_id=step.run_id)
    announce_publication(step.context["outlet_events"][PRODUCTION_MODEL], publication, step.config.bucket)
    return publication.to_json()


@task(trigger_rule=TriggerRule.ALL_DONE, **S3_RETRIES)
def night_report() -> str:
    """Writes the night report (reports/<run>/night_report.html), whatever the night's end:
    deployed, nothing to train, gave up or failed. The UI shows it on each run."""
    from retrain_night import report_the_night

    return report_the_night(get_current_context(), s3_client())


@task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, **S3_RETRIES)
def cleanup() -> RecordJson:
    """Removes older runs' intermediates, datasets and packs nothing kept refers to."""
    from tasks.retention import remove_old_runs

    with pipeline_step() as step:
        config = step.config
        kept = remove_old_runs(
            step.client, config.bucket, current_run_id=step.run_id, keep_runs=config.keep_runs
        )
    return kept.to_json()


def attempt_group(
    attempt: int, dataset: Any, previous: Any, earlier_evaluations: list[Any]
) -> tuple[Any, ...]:
    """One training attempt: plan -> train -> evaluate -> decide, with accept and give-up ends.
    Returns its plan task, training output, evaluation, branch, accept and give-up tasks."""

    @task_group(group_id=f"attempt_{attempt}")
    def group() -> Any:
        planned = plan(dataset, attempt, previous)
        trained = trainer_task(planned).output
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
    dagrun_timeout=DEPLOYMENT.run_timeout,
    doc_md=__doc__,
    params=retrain_params(),
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(minutes=1)},
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
    previous, upstream, label = None, change, "changed: train"
    evaluations: list[Any] = []
    accepted_per_attempt: list[Any] = []
    give_ups: list[Any] = []
    for attempt in range(1, ATTEMPT_GROUPS + 1):
        planned, trained, evaluation, decision, accepted, gave_up = attempt_group(
            attempt, dataset, previous, list(evaluations)
        )
        label_edge(upstream, planned, label)
        previous, upstream, label = trained, decision, "not blessed: retrain"
        evaluations.append(evaluation)
        accepted_per_attempt.append(accepted)
        give_ups.append(gave_up)
    # A failed give_up fails cleanup too (upstream_failed), so the run still ends failed.
    deployed = deploy()
    accepted_per_attempt >> deployed
    [deployed, skipped, *give_ups] >> cleanup()
    # Not upstream of cleanup: the run's state still comes from cleanup (a leaf that fails
    # with the night), while the report, which always succeeds, is written on every end.
    [deployed, skipped, *give_ups] >> night_report()


image_classifier_retrain()
