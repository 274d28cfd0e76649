"""How a night ends, read from what Airflow knows of the run: the one accepted attempt deploy
publishes, and the night report written from the run's task states on every end. The DAG file
only wires these; the report and the publication themselves live in `tasks/`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from tasks.records import Candidate

log = logging.getLogger(__name__)


def accepted_candidate(context: Any, accept_task_ids: list[str]) -> Candidate:
    """The candidate of the accept task that ran, found by the run's task states: pulling the
    skipped ones' results too would log Airflow's `XCom not found` error for each."""
    from tasks.records import Candidate

    ti, run_id = context["ti"], context["run_id"]
    states = ti.get_task_states(dag_id=ti.dag_id, task_ids=accept_task_ids, run_ids=[run_id])
    ran = [task_id for task_id, state in states[run_id].items() if state == "success"]
    if len(ran) != 1:
        raise AirflowFailException(f"expected one accepted attempt, found {len(ran)}")
    return Candidate.from_json(ti.xcom_pull(task_ids=ran[0]))


def announce_publication(production_event: Any, publication: Any, bucket: str) -> None:
    """What the production model Asset's event tells its consumers about the new version."""
    production_event.extra = {
        "version": publication.version,
        "version_uri": publication.version_uri,
        "accuracy": publication.accuracy,
        "bucket": bucket,
    }


def report_the_night(context: Any, s3_client: Any) -> str:
    """Writes the night report from the run's task states (deployed, nothing to train, gave up
    or failed, and why), also for a run whose Params failed the checks. Returns its URI, or ""
    when the bucket cannot be written: that already failed the night, which says so, and a
    second failure (and alert) would add nothing."""
    from retrain_alerts import RunRecords, failed_tasks, recording_failure
    from tasks.config import report_settings
    from tasks.errors import PermanentError
    from tasks.night_report import outcome_of, write_night_report
    from tasks.records import Publication

    ti, run_id = context["ti"], context["run_id"]
    run = RunRecords.through_task_sdk(ti, context["dag"], run_id)
    failed = failed_tasks(run.task_states, list(context["dag"].task_ids))
    published = ti.xcom_pull(task_ids="deploy") if run.task_states.get("deploy") == "success" else None
    version = Publication.from_json(published).version if published else None
    outcome = outcome_of(run.task_states, failed, run.failure_reasons, version)
    config = report_settings(dict(context["params"]))
    with recording_failure(context):
        try:
            return str(write_night_report(s3_client, config, run_id, outcome))
        except PermanentError as error:
            log.warning("night report not written: %s", error)
            return ""
