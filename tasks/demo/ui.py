"""`make ui`: the Airflow UI on this machine, ready to trigger the retrain DAG by hand.

Starts a local S3 endpoint holding the digits demo data and `airflow standalone` with its own
home (`.airflow-ui/`, apart from `make demo`'s), the DAG unscheduled so that unpausing it
starts nothing by itself, the in-process trainer backend (a trainer container could not
reach an endpoint on this machine's loopback), and the demo's digits settings as the Params'
defaults (classes in label order, no left-right flips), so the form's defaults train what
`make demo` trains. Airflow's own output goes to a log file; the banner (URL, login, the S3
endpoint) comes last. Ctrl-C stops everything. The endpoint keeps objects in memory, so the
UI's metadata starts afresh too: no run is listed whose reports are gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from tasks.config import PARAM_DEFAULTS_ENV, PipelineConfig
from tasks.demo.local_s3 import DUMMY_CREDENTIALS, LocalS3
from tasks.demo.run import airflow_command, demo_params, exit_on_sigterm, upload_demo_data

STARTUP_TIMEOUT_SECONDS = 180


def wait_for_health(url: str, process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(1)
    return False


def admin_password(airflow_home: Path) -> str:
    generated = airflow_home / "simple_auth_manager_passwords.json.generated"
    return json.loads(generated.read_text()).get("admin", "?") if generated.exists() else "?"


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """standalone starts the scheduler, API server and others as its children: SIGINT lets it
    stop them; whatever is left of its process group is killed after a grace period."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # children that outlived their parent


# The quick run the banner suggests; tests/tasks/demo/test_ui.py runs it on the demo data.
QUICK_RUN = {"image_size": 32, "epochs": 2}


def forget_earlier_runs(airflow_home: Path) -> None:
    """The metadata database and task logs of an earlier `make ui`, whose S3 data is gone."""
    (airflow_home / "airflow.db").unlink(missing_ok=True)
    shutil.rmtree(airflow_home / "logs", ignore_errors=True)


def run_ui(airflow_home: Path, port: int) -> int:
    exit_on_sigterm()
    param_defaults = demo_params({})
    config = PipelineConfig.from_params(param_defaults)
    url = f"http://127.0.0.1:{port}"
    airflow_home.mkdir(parents=True, exist_ok=True)
    forget_earlier_runs(airflow_home)
    airflow_log = airflow_home / "standalone.log"
    with LocalS3() as s3:
        upload_demo_data(s3, config)
        airflow, env = airflow_command(
            airflow_home,
            s3,
            **{PARAM_DEFAULTS_ENV: json.dumps(param_defaults)},
            RETRAIN_SCHEDULE="none",
            RETRAIN_TRAINER_BACKEND="local",
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(port),
            AIRFLOW__API__BASE_URL=url,
            AIRFLOW__CORE__PARALLELISM="2",
            AIRFLOW__API_AUTH__JWT_SECRET=os.environ.get(
                "AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_hex(64)
            ),
        )
        print(f"starting Airflow; its output goes to {airflow_log}", flush=True)
        with airflow_log.open("w") as output:
            standalone = subprocess.Popen(
                [airflow, "standalone"],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            if not wait_for_health(url, standalone, STARTUP_TIMEOUT_SECONDS):
                print(
                    f"Airflow did not answer on {url} within {STARTUP_TIMEOUT_SECONDS} s; stopping "
                    f"(see {airflow_log})"
                )
                return 1
            quick = ", ".join(f"{name} {value}" for name, value in QUICK_RUN.items())
            print(
                f"\nAirflow UI: {url}  (login admin / {admin_password(airflow_home)})\n"
                "  DAG image_classifier_retrain: unpause it, then Trigger; it runs only when triggered.\n"
                f"  The default Params train the digits {config.epochs} epochs at {config.image_size} px, "
                "minutes on a CPU; a quick run:\n"
                f"  {quick} in the Training section.\n"
                f"  Airflow's log: {airflow_log}\n"
                f"  S3 endpoint: {s3.endpoint_url} (in memory: its data, and the UI's runs, are gone "
                "after Ctrl-C)\n"
                "  From another shell (retrain models list, retrain predict IMAGE):\n"
                f"    export AWS_ENDPOINT_URL={s3.endpoint_url} "
                + " ".join(f"{name}={value}" for name, value in DUMMY_CREDENTIALS.items())
                + "\n"
                "Ctrl-C stops Airflow and the S3 endpoint.",
                flush=True,
            )
            standalone.wait()
            return standalone.returncode or 0
        except KeyboardInterrupt:
            return 0
        finally:
            stop_group(standalone)
