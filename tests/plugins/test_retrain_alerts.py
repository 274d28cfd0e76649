"""Failure alerts: what a message holds, when one is sent, and a webhook that refuses it.
Runs with failed tasks (the gate failing a real run; four mapped instances failing together)
are tested through the DAG in tests/dags/."""

from __future__ import annotations

import logging

import pytest
from alert_sink import WebhookSink

from retrain_alerts import (
    FailureAlert,
    failed_tasks,
    one_line,
    records_from_the_metadata_database,
    under_a_supervisor,
)

# The run-level callback reads the run's task states from the metadata database here.
pytestmark = pytest.mark.usefixtures("airflow_db")

ALERT_WEBHOOK_ENV = "RETRAIN_ALERT_WEBHOOK_URL"
RUN_ID = "scheduled__2026-11-29T02:00:00+00:00"


def run_context(reason: str) -> dict:
    """What Airflow hands a DAG's on_failure_callback when the run has no failed task."""
    from airflow.sdk import DAG

    return {"dag": DAG("image_classifier_retrain", schedule=None), "run_id": RUN_ID, "reason": reason}


def test_a_run_that_failed_without_a_failed_task_sends_one_alert(alert_sink):
    FailureAlert()(run_context("timed_out"))
    (alert,) = alert_sink.messages
    assert alert["task_id"] is None and alert["run_id"] == RUN_ID
    assert "timed_out" in alert["reason"]
    assert alert["url"] == "http://localhost:8080/dags/image_classifier_retrain/runs/" + (
        "scheduled__2026-11-29T02%3A00%3A00%2B00%3A00"
    )


def test_alerts_are_off_while_no_webhook_is_set(monkeypatch):
    monkeypatch.delenv(ALERT_WEBHOOK_ENV, raising=False)
    with WebhookSink() as sink:
        FailureAlert()(run_context("timed_out"))
    assert sink.messages == []


def test_a_webhook_that_refuses_the_alert_is_logged_not_raised(monkeypatch, caplog):
    with WebhookSink(status=500) as sink:
        monkeypatch.setenv(ALERT_WEBHOOK_ENV, sink.url)
        with caplog.at_level(logging.ERROR, logger="retrain.alerts"):
            FailureAlert()(run_context("timed_out"))
    assert len(sink.messages) == 1
    assert "NOT delivered to the webhook: HTTP Error 500" in caplog.text


def test_an_unreachable_webhook_is_logged_not_raised(monkeypatch, caplog):
    with WebhookSink() as sink:
        url = sink.url
    monkeypatch.setenv(ALERT_WEBHOOK_ENV, url)  # the sink has stopped: nothing listens there
    with caplog.at_level(logging.ERROR, logger="retrain.alerts"):
        FailureAlert()(run_context("timed_out"))
    assert "NOT delivered to the webhook" in caplog.text


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (ValueError("quarantined 5 of 41 objects\ndetails: ..."), "quarantined 5 of 41 objects"),
        (RuntimeError(), "RuntimeError; see the task log"),
        (None, "see the task log"),
    ],
)
def test_the_reason_is_one_line(error, line):
    assert one_line(error) == line


def test_the_failed_tasks_come_in_the_dag_s_order_then_map_index():
    # Keys as Airflow's task-state API gives them: mapped instances as task_id_mapindex.
    order = ["plan_partitions", "collect", "validate", "attempt_1.train", "deploy"]
    states = {
        "plan_partitions": "success",
        "deploy": "failed",
        "collect_10": "failed",
        "collect_2": "failed",
        "collect_3": "running",
        "validate": "upstream_failed",
        "attempt_1.train": "failed",
    }
    assert failed_tasks(states, order) == [
        ("collect", 2),
        ("collect", 10),
        ("attempt_1.train", -1),
        ("deploy", -1),
    ]
    assert failed_tasks({"validate": "upstream_failed"}, order) == []


@pytest.mark.slow
def test_under_airflow_dags_test_a_failed_night_alerts_once_without_a_traceback(
    airflow_db, s3_endpoint, alert_sink
):
    """`airflow dags test` runs the run-level callback in its own process, on the serialized
    DAG: the alert must arrive, and the callback must not fail there."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    airflow = Path(sys.executable).parent / "airflow"
    conf = {"bucket": "no-such-bucket-dags-test", "image_size": 32, "epochs": 1}
    completed = subprocess.run(
        [str(airflow), "dags", "test", "image_classifier_retrain", "--conf", json.dumps(conf)],
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = completed.stdout + completed.stderr
    assert [message["task_id"] for message in alert_sink.messages] == ["plan_partitions"], output[-3000:]
    assert "the bucket does not exist" in alert_sink.messages[0]["reason"]
    assert "get_template_env" not in output and "Error in the on_failure_callback" not in output


def test_the_airflow_internals_the_alert_reads_work_on_the_pinned_airflow(dagbag, s3_endpoint):
    """The two functions that reach into Airflow (no public interface serves outside a
    supervisor) read a real failed run: its task states and the reason its failed task
    recorded; and a test process is not supervised. Mapped instances: tests/dags/."""
    run = dagbag.get_dag("rollback_production").test(
        run_conf={"bucket": "no-such-bucket-alerts", "model_name": "digits-cnn", "version": 3}
    )
    records = records_from_the_metadata_database("rollback_production", run.run_id)
    assert records.task_states == {"rollback": "failed"}
    ((task, reason),) = records.failure_reasons.items()
    assert task == ("rollback", -1) and "no-such-bucket-alerts" in reason and "\n" not in reason
    assert not under_a_supervisor()
