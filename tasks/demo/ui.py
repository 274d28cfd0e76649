"""`make ui`: the Airflow UI on this machine, ready to trigger the retrain DAG by hand.

Starts a local S3 endpoint holding the digits demo data and `airflow standalone` with its own
home (`.airflow-ui/`, apart from `make demo`'s), the DAG unscheduled so that unpausing it
starts nothing by itself, the in-process trainer backend (a trainer container could not
reach an endpoint on this machine's loopback), and the demo's digits settings as the Params'
defaults (classes in label order, no left-right flips), so the form's defaults train what
`make demo` trains; RETRAIN_PARAM_DEFAULTS in the environment changes them further.

Airflow's own output goes to a log file; the banner (URL, login, the S3 endpoint) comes
last, and again whenever Enter is pressed. Ctrl-C stops everything within seconds. The
endpoint keeps objects in memory, so the UI's metadata starts afresh too: no run is listed
whose reports are gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from tasks.config import PARAM_DEFAULTS_ENV, PipelineConfig, deployment_param_defaults
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


STOP_GRACE_SECONDS = 6


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """standalone runs the scheduler, API server and others as its children, in its own process
    group: each gets SIGTERM and a few seconds to stop, then the group is killed. The metadata
    they would have saved is forgotten at the next start anyway (see forget_earlier_runs)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_GRACE_SECONDS)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # children that outlived the grace period or their parent
    process.wait()


# The quick run the banner suggests; tests/tasks/demo/test_ui.py triggers it from the form.
QUICK_RUN = {"image_size": 32, "epochs": 2}


def forget_earlier_runs(airflow_home: Path) -> None:
    """The metadata database and task logs of an earlier `make ui`, whose S3 data is gone."""
    (airflow_home / "airflow.db").unlink(missing_ok=True)
    shutil.rmtree(airflow_home / "logs", ignore_errors=True)


def banner(url: str, password: str, config: PipelineConfig, endpoint_url: str, airflow_log: Path) -> str:
    """What a person needs from `make ui`, printed after Airflow is up and again on Enter."""
    defaults = f"The default Params train the digits {config.epochs} epochs at {config.image_size} px"
    if (config.image_size, config.epochs) == (QUICK_RUN["image_size"], QUICK_RUN["epochs"]):
        training = f"  {defaults}, about a minute.\n"
    else:
        quick = ", ".join(f"{name} {value}" for name, value in QUICK_RUN.items())
        training = f"  {defaults}, minutes on a CPU; a quick run:\n  {quick} in the Training section.\n"
    credentials = " ".join(f"{name}={value}" for name, value in DUMMY_CREDENTIALS.items())
    return (
        f"\nAirflow UI: {url}  (login admin / {password})\n"
        "  DAG image_classifier_retrain: Trigger (the form unpauses it); it runs only when triggered.\n"
        f"{training}"
        f"  Airflow's log: {airflow_log}\n"
        f"  S3 endpoint: {endpoint_url} (in memory: its data, and the UI's runs, are gone after Ctrl-C)\n"
        "  From another shell (retrain models list, retrain predict IMAGE):\n"
        f"    export AWS_ENDPOINT_URL={endpoint_url} {credentials}\n"
        "Enter shows this again; Ctrl-C stops Airflow and the S3 endpoint."
    )


def reprint_on_enter(text: str) -> None:
    """Airflow's output goes to its log, but a person's own scrolling can still bury the banner."""

    def reprint() -> None:
        for _ in sys.stdin:
            print(text, flush=True)

    threading.Thread(target=reprint, daemon=True, name="banner").start()


def run_ui(airflow_home: Path, port: int) -> int:
    exit_on_sigterm()
    # The demo's digits settings, under whatever defaults this shell's deployment sets.
    param_defaults = demo_params(deployment_param_defaults())
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
                stdin=subprocess.DEVNULL,  # Enter is the banner's (reprint_on_enter)
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
            text = banner(url, admin_password(airflow_home), config, s3.endpoint_url, airflow_log)
            print(text, flush=True)
            reprint_on_enter(text)
            standalone.wait()
            return standalone.returncode or 0
        except KeyboardInterrupt:
            return 0
        finally:
            stop_group(standalone)
