"""Failure alerts for the retrain DAGs, through Airflow's notifier interface: one message per
failed run, naming the DAG, the run, the failed task, the one-line reason it failed with and a
link to the run in the UI. Posted as JSON to the webhook in RETRAIN_ALERT_WEBHOOK_URL (a
Slack incoming webhook takes it as it is: its `text` field); off while that is unset.

The decision is made once per run, by the DAG's `on_failure_callback` (`FailureAlert`), which
Airflow calls once when a run fails: it reads the run's task states, names the first failed
task in the DAG's order (the root cause: tasks downstream of it end `upstream_failed`, not
`failed`) and counts the others, so tasks failing together, such as mapped instances, send
one message, never two and never none. The reason is the line each failing task records as
it fails (`recording_failure`, an XCom named FAILURE_REASON_KEY); a run that failed with no
failed task (a run timeout) says so.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

from airflow.sdk import BaseNotifier

from tasks.config import DeploymentSettings

log = logging.getLogger("retrain.alerts")


@dataclass(frozen=True)
class Alert:
    """One failed run, as the webhook receives it."""

    dag_id: str
    run_id: str
    task_id: str | None
    map_index: int | None
    reason: str
    url: str

    @property
    def text(self) -> str:
        where = f"task {self.task_id}" + (f" [{self.map_index}]" if self.map_index not in (None, -1) else "")
        failed = where if self.task_id else "the run"
        return f"{self.dag_id} failed ({self.run_id}) at {failed}: {self.reason} {self.url}"

    def payload(self) -> dict[str, str | int | None]:
        return {"text": self.text, **asdict(self)}


def one_line(error: BaseException | str | None) -> str:
    """The first line of what a task failed with, or a pointer to its log."""
    text = str(error).strip() if error is not None else ""
    if not text:
        return f"{type(error).__name__}; see the task log" if error is not None else "see the task log"
    return text.splitlines()[0]


def run_url(dag_id: str, run_id: str) -> str:
    """The run's page in the Airflow UI, from Airflow's [api] base_url."""
    from airflow.sdk.configuration import conf

    base_url = conf.get("api", "base_url", fallback="http://localhost:8080/")
    return f"{base_url.rstrip('/')}/dags/{dag_id}/runs/{quote(run_id, safe='')}"


FAILURE_REASON_KEY = "failure_reason"


@contextmanager
def recording_failure(context: Any) -> Iterator[None]:
    """Records the one-line reason of an exception leaving a task body (as XCom
    FAILURE_REASON_KEY, while the task still runs), for the run's alert; then re-raises it."""
    try:
        yield
    except Exception as error:
        try:
            context["ti"].xcom_push(key=FAILURE_REASON_KEY, value=one_line(error))
        except Exception:
            log.warning("could not record the failure reason for the run's alert", exc_info=True)
        raise


def failed_tasks(task_states: Mapping[str, str | None], task_order: list[str]) -> list[tuple[str, int]]:
    """The run's failed task instances as (task_id, map_index), in the DAG's task order then
    map index. Keys as Airflow's task-state API gives them: mapped instances as task_id_N."""
    position = {task_id: number for number, task_id in enumerate(task_order)}
    failed = []
    for key, state in task_states.items():
        if state != "failed":
            continue
        task_id, map_index = key, -1
        if key not in position:
            base, _, index = key.rpartition("_")
            if base in position and index.isdigit():
                task_id, map_index = base, int(index)
        failed.append((task_id, map_index))
    return sorted(failed, key=lambda item: (position.get(item[0], len(position)), item[0], item[1]))


def send(webhook_url: str, alert: Alert, timeout_s: float = 10.0) -> None:
    """POSTs the alert as JSON; a webhook that refuses it is logged, not raised (the run's
    outcome must not depend on the alert channel)."""
    if not webhook_url.startswith(("https://", "http://")):
        log.error(
            "failure alert for %s NOT sent: RETRAIN_ALERT_WEBHOOK_URL must be an http(s) URL", alert.run_id
        )
        return
    request = urllib.request.Request(  # noqa: S310 - an http(s) URL, checked above
        webhook_url,
        data=json.dumps(alert.payload()).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - as above
            log.info("failure alert sent for %s (HTTP %s)", alert.run_id, response.status)
    except OSError as error:  # URLError and HTTPError included
        log.error("failure alert for %s NOT delivered to the webhook: %s", alert.run_id, error)


class FailureAlert(BaseNotifier):
    """Posts one message per failed run to RETRAIN_ALERT_WEBHOOK_URL (see the module doc). It is
    the DAG's `on_failure_callback`; it has no template fields."""

    template_fields = ()

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        # Nothing to render; Airflow's default needs the DAG's Jinja environment, which the
        # serialized DAG that `airflow dags test` hands run callbacks does not have.
        return None

    def notify(self, context: Any) -> None:
        # Read when the alert is due, in whichever process runs the callback (DAG processor,
        # or the `dags test` process), not when the DAG file was parsed.
        webhook_url = DeploymentSettings().alert_webhook_url.strip()
        if webhook_url:
            send(webhook_url, self.run_alert(context))

    @staticmethod
    def run_alert(context: Any) -> Alert:
        dag = context["dag"]
        run_id = context["run_id"]
        run = RunRecords.of(context)
        failed = failed_tasks(run.task_states, list(dag.task_ids)) if run else []
        if run is None or not failed:
            reason = context.get("reason") or "no reason given"
            return Alert(
                dag_id=dag.dag_id,
                run_id=run_id,
                task_id=None,
                map_index=None,
                reason=f"the run failed ({reason}) with no task failed",
                url=run_url(dag.dag_id, run_id),
            )
        task_id, map_index = failed[0]
        recorded = run.failure_reasons.get((task_id, map_index))
        others = len(failed) - 1
        return Alert(
            dag_id=dag.dag_id,
            run_id=run_id,
            task_id=task_id,
            map_index=map_index,
            reason=(one_line(recorded) if recorded else "see the task log")
            + (f" (and {others} more failed task(s))" if others else ""),
            url=run_url(dag.dag_id, run_id),
        )


@dataclass(frozen=True)
class RunRecords:
    """What the alert needs of a failed run: each task instance's state (keys as the task SDK's
    `get_task_states` gives them: mapped instances as task_id_N) and the one-line reasons the
    failed ones recorded, by (task_id, map_index)."""

    task_states: dict[str, str | None]
    failure_reasons: dict[tuple[str, int], str]

    @classmethod
    def of(cls, context: Any) -> RunRecords | None:
        """Read through the task SDK (a public interface) where the callback runs under a
        supervisor, as in the DAG processor; `airflow dags test` and `dag.test()` run it in
        their own process with no supervisor, and the metadata database is read there."""
        run_id, ti = context["run_id"], context.get("ti")
        if not under_a_supervisor():
            return records_from_the_metadata_database(context["dag"].dag_id, run_id)
        if ti is None:
            return None  # a supervised callback without a task instance has nothing to read with
        return cls.through_task_sdk(ti, context["dag"], run_id)

    @classmethod
    def through_task_sdk(cls, ti: Any, dag: Any, run_id: str) -> RunRecords:
        """Read with the task SDK's task instance (in a task, or a supervised callback): every
        state, and the reason the first failed task (in the DAG's order) recorded."""
        states = ti.get_task_states(dag_id=dag.dag_id, run_ids=[run_id]).get(run_id, {})
        reasons = {}
        for task_id, map_index in failed_tasks(states, list(dag.task_ids))[:1]:
            reason = ti.xcom_pull(task_ids=task_id, key=FAILURE_REASON_KEY, map_indexes=map_index)
            if reason is not None:
                reasons[task_id, map_index] = str(reason)
        return cls(states, reasons)


# Airflow internals, kept to the two functions below: Airflow 3 offers no public interface for
# them outside a supervised process (its REST API needs a running API server and credentials,
# which `dags test` does not have). tests/plugins/test_retrain_alerts.py runs both against the
# pinned Airflow, so an upgrade that changes them fails there, not on the night of a failure.


def under_a_supervisor() -> bool:
    """Whether this process talks to Airflow through a supervisor (task SDK calls work)."""
    from airflow.sdk.execution_time import task_runner

    return hasattr(task_runner, "SUPERVISOR_COMMS")


def records_from_the_metadata_database(dag_id: str, run_id: str) -> RunRecords:
    """The run's task states and recorded failure reasons, read from Airflow's metadata database."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        instances = session.query(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state).filter(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
        )
        states = {
            (task_id if map_index < 0 else f"{task_id}_{map_index}"): str(state) if state else None
            for task_id, map_index, state in instances
        }
        recorded = session.query(XComModel.task_id, XComModel.map_index, XComModel.value).filter(
            XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == FAILURE_REASON_KEY
        )
        reasons = {
            (task_id, map_index): str(XComModel.deserialize_value(SimpleNamespace(value=value)))
            for task_id, map_index, value in recorded
            if value is not None
        }
    return RunRecords(states, reasons)
