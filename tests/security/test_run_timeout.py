"""A stuck night cannot block the next: with the real scheduler (`airflow standalone`), a night
whose S3 calls hang is ended by the DAG's `dagrun_timeout`, and the night queued behind it
(`max_active_runs=1`) starts."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from urllib.parse import urlsplit

import pytest
from fault_proxy import FaultProxy, Faults

from tasks.demo.local_s3 import free_port
from tasks.demo.run import airflow_command
from tasks.demo.ui import stop_group, wait_for_health

pytestmark = pytest.mark.slow

DAG = "image_classifier_retrain"


def runs(airflow: str, env: dict[str, str]) -> dict[str, str]:
    """run id -> state of the DAG's runs, as the scheduler recorded them."""
    listed = subprocess.run(
        [airflow, "dags", "list-runs", DAG, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    table = next((line for line in listed.stdout.splitlines() if line.startswith("[")), "[]")
    return {run["run_id"]: run["state"] for run in json.loads(table)}


def test_a_night_past_its_timeout_ends_and_the_next_starts(tmp_path, s3_endpoint, digits_bucket):
    port = free_port()
    with FaultProxy(urlsplit(s3_endpoint).port, seed=7) as hanging:
        # Every S3 call of these nights hangs, as on an endpoint that stopped answering.
        hanging.set_faults(Faults(delay_fraction=1.0, delay_seconds=3600))
        airflow, env = airflow_command(
            tmp_path / "airflow",
            hanging,  # type: ignore[arg-type]
            RETRAIN_SCHEDULE="none",
            RETRAIN_RUN_TIMEOUT_HOURS=str(45 / 3600),  # 45 s
            RETRAIN_TRAINER_BACKEND="local",
            AIRFLOW__API__PORT=str(port),
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
            AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL="5",
        )
        log = tmp_path / "standalone.log"
        with log.open("w") as output:
            standalone = subprocess.Popen(
                [airflow, "standalone"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            assert wait_for_health(f"http://127.0.0.1:{port}", standalone, 240), log.read_text()[-3000:]
            deadline = time.monotonic() + 120
            while subprocess.run([airflow, "dags", "unpause", DAG], env=env, capture_output=True).returncode:
                assert time.monotonic() < deadline, "the DAG was never parsed"
                time.sleep(3)
            conf = json.dumps({"bucket": digits_bucket})
            for night in ("stuck-night", "next-night"):
                subprocess.run(
                    [airflow, "dags", "trigger", DAG, "--run-id", night, "--conf", conf],
                    env=env,
                    check=True,
                    capture_output=True,
                )
            deadline = time.monotonic() + 300
            states = runs(airflow, env)
            while not (
                states.get("stuck-night") == "failed" and states.get("next-night") in ("running", "failed")
            ):
                assert time.monotonic() < deadline, (states, log.read_text()[-3000:])
                time.sleep(5)
                states = runs(airflow, env)
        finally:
            stop_group(standalone)
