"""Failure alerts for the retrain DAGs, through Airflow's notifier interface: one message per
failed run, naming the DAG, the run, the failed task, the one-line reason it failed with and a
link to the run in the UI. Posted as JSON to the webhook in RETRAIN_ALERT_WEBHOOK_URL (a
Slack incoming webhook takes it as it is: its `text` field); off while that is unset.

`FailureAlert(level="task")` is every task's `on_failure_callback`: a task's final failure is
where the reason is known (the exception the task failed with). Only the run's first failed
task sends: one that finds another task of the run already failed stays quiet, so mapped
instances failing together do not page once each. `FailureAlert(level="run")` is the DAG's
`on_failure_callback`: it sends only when the run failed without a failed task (a run
timeout), which no task callback has reported.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import quote

from airflow.sdk import BaseNotifier

from tasks.config import DeploymentSettings

# The reason Airflow gives a run's failure callback when a task failed it; the failed task's
# own callback has reported that run already.
TASK_FAILURE = "task_failure"

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

    def payload(self) -> dict[str, Any]:
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


def another_task_failed_first(task_states: dict[str, Any], own_key: str) -> str | None:
    """The key of a task of the run that failed before this one (its callback has alerted)."""
    for key, state in sorted(task_states.items()):
        if key != own_key and state == "failed":
            return key
    return None


def send(webhook_url: str, alert: Alert, timeout_s: float = 10.0) -> None:
    """POSTs the alert as JSON; a webhook that refuses it is logged, not raised (the run's
    outcome must not depend on the alert channel)."""
    request = urllib.request.Request(
        webhook_url,
        data=json.dumps(alert.payload()).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            log.info("failure alert sent for %s (HTTP %s)", alert.run_id, response.status)
    except OSError as error:  # URLError and HTTPError included
        log.error("failure alert for %s NOT delivered to the webhook: %s", alert.run_id, error)


class FailureAlert(BaseNotifier):
    """Posts one message per failed run to RETRAIN_ALERT_WEBHOOK_URL (see the module doc)."""

    def __init__(self, level: Literal["task", "run"]) -> None:
        super().__init__()
        self.level = level

    def notify(self, context: Any) -> None:
        # Read when the alert is due, in whichever process runs the callback (worker, DAG
        # processor), not when the DAG file was parsed.
        webhook_url = DeploymentSettings().alert_webhook_url.strip()
        if not webhook_url:
            return
        alert = self.task_alert(context) if self.level == "task" else self.run_alert(context)
        if alert is not None:
            send(webhook_url, alert)

    @staticmethod
    def task_alert(context: Any) -> Alert | None:
        ti = context["ti"]
        own_key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}_{ti.map_index}"
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
        earlier = another_task_failed_first(states, own_key)
        if earlier:
            log.info("no failure alert from %s: %s failed first and has alerted", own_key, earlier)
            return None
        return Alert(
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            map_index=ti.map_index,
            reason=one_line(context.get("exception")),
            url=run_url(ti.dag_id, ti.run_id),
        )

    @staticmethod
    def run_alert(context: Any) -> Alert | None:
        reason = context.get("reason") or ""
        if reason == TASK_FAILURE:
            return None
        dag_id = context["dag"].dag_id
        run_id = context["run_id"]
        return Alert(
            dag_id=dag_id,
            run_id=run_id,
            task_id=None,
            map_index=None,
            reason=f"the run failed ({reason or 'no reason given'}) with no task failed",
            url=run_url(dag_id, run_id),
        )
