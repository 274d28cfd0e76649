"""`make ui` (`retrain ui`): Airflow's UI and API come up with the demo data and a login, the
banner comes last with Airflow's own output in a log file, Ctrl-C stops every process it
started, and the quick run the banner suggests deploys."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tasks.demo.data import upload_digits
from tasks.demo.local_s3 import free_port

pytestmark = pytest.mark.slow


def processes_using(airflow_home: Path) -> list[int]:
    """PIDs whose environment names this Airflow home (standalone's children included)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"AIRFLOW_HOME={airflow_home}".encode() in environ:
            found.append(int(proc.name))
    return found


def test_ui_starts_with_a_login_and_stops_cleanly_on_ctrl_c(tmp_path):
    home, port = tmp_path / "airflow-ui", free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "tasks.cli", "ui", "--airflow-home", str(home), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = ui.stdout.readline()
            assert line, f"retrain ui exited early: {lines}"
            lines.append(line)
            if line.startswith("Airflow UI:"):
                break
        banner = "".join(lines)
        # Read the rest of what it prints, so a full pipe never blocks it.
        threading.Thread(target=lines.extend, args=(ui.stdout,), daemon=True).start()
        assert f"Airflow UI: http://127.0.0.1:{port}" in banner, banner
        assert "demo images in s3://" in banner
        # Airflow's own output goes to its log, not between the user and the banner.
        assert f"its output goes to {home / 'standalone.log'}" in banner
        assert banner.count("\n") < 10, banner
        password = banner.split("login admin / ", 1)[1].split(")", 1)[0]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/auth/token",
            data=json.dumps({"username": "admin", "password": password}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response)["access_token"]
        assert processes_using(home)
    finally:
        ui.send_signal(signal.SIGINT)
        try:
            exit_code = ui.wait(timeout=90)
        except subprocess.TimeoutExpired:
            ui.kill()
            printed = "".join(lines[-40:])
            pytest.fail(f"retrain ui did not stop within 90 s of Ctrl-C; it printed last:\n{printed}")
        assert exit_code == 0
    time.sleep(1)
    assert processes_using(home) == []
    with pytest.raises(OSError, match="Connection refused"):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2)


def test_the_banners_quick_run_deploys_with_the_forms_defaults(run_night, s3_endpoint):
    """What a UI user triggers first: the form's defaults as `make ui` sets them (the demo's
    digits settings), with the banner's quick-run changes, on the demo data."""
    from tasks.config import PipelineConfig
    from tasks.demo.run import demo_params
    from tasks.demo.ui import QUICK_RUN
    from tasks.storage import make_client

    form_defaults = demo_params({})
    bucket = f"ui-{uuid.uuid4().hex[:8]}"
    upload_digits(make_client(s3_endpoint), bucket, "raw/")
    night = run_night(bucket=bucket, **{**form_defaults, **QUICK_RUN})
    assert night.state == "success" and night.states["deploy"] == "success", night.states
    accuracy = json.loads(night.pointer or b"null")["metrics"]["accuracy"]
    assert accuracy >= PipelineConfig().min_test_accuracy
