"""`make ui`: the Airflow UI on this machine, ready to trigger the retrain DAG by hand.

Starts a local S3 endpoint holding the digits demo data and `airflow standalone` with its own
home (`.airflow-ui/`, apart from `make demo`'s), the DAG unscheduled so that unpausing it
starts nothing by itself, and the in-process trainer backend (a trainer container could not
reach an endpoint on this machine's loopback). Prints the URL and the login, and stops
everything on Ctrl-C. The endpoint keeps objects in memory: its data is gone once it stops.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from tasks.config import PipelineConfig
from tasks.demo.local_s3 import DUMMY_CREDENTIALS, LocalS3
from tasks.demo.run import airflow_command, exit_on_sigterm, upload_demo_data

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


def run_ui(airflow_home: Path, port: int) -> int:
    exit_on_sigterm()
    config = PipelineConfig()
    url = f"http://127.0.0.1:{port}"
    with LocalS3() as s3:
        upload_demo_data(s3, config)
        airflow, env = airflow_command(
            airflow_home,
            s3,
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
        standalone = subprocess.Popen([airflow, "standalone"], env=env, start_new_session=True)
        try:
            if not wait_for_health(url, standalone, STARTUP_TIMEOUT_SECONDS):
                print(f"Airflow did not answer on {url} within {STARTUP_TIMEOUT_SECONDS} s; stopping")
                return 1
            print(
                f"\nAirflow UI: {url}  (login admin / {admin_password(airflow_home)})\n"
                "  DAG image_classifier_retrain: unpause it, then Trigger; it runs only when triggered.\n"
                f"  The default Params train {config.epochs} epochs at {config.image_size} px, long on a "
                "CPU; a quick run:\n"
                "  image_size 32, epochs 2 in the Training section.\n"
                f"  S3 endpoint: {s3.endpoint_url} (in memory: its data is gone after Ctrl-C)\n"
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
