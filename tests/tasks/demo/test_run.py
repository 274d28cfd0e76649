"""`retrain demo` (what `make demo` runs), end to end in a subprocess, with a tiny budget."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tasks.config import PipelineConfig
from tasks.demo.run import DEMO_EPOCHS, demo_params

pytestmark = pytest.mark.slow


def test_demo_trains_fewer_epochs_than_the_default_unless_told_otherwise():
    assert demo_params({})["epochs"] == DEMO_EPOCHS < PipelineConfig().epochs
    assert demo_params({})["augment_flip"] is False
    assert demo_params({"epochs": 2})["epochs"] == 2


def test_demo_runs_the_dag_mirrors_outputs_and_reports_the_deployment(tmp_path):
    output = tmp_path / "demo-output"
    conf = {"image_size": 32, "epochs": 2, "min_test_accuracy": 0.3}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tasks.cli",
            "demo",
            "--output",
            str(output),
            "--airflow-home",
            str(tmp_path / "airflow"),
            "--conf",
            json.dumps(conf),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "deployed: digits-cnn version 1" in completed.stdout
    assert "test accuracy: " in completed.stdout
    pointer = json.loads((output / "models" / "digits-cnn" / "production.json").read_text())
    version = output / "models" / "digits-cnn" / str(pointer["version"])
    assert (version / "model.keras").stat().st_size > 0
    assert (version / "_COMPLETE").exists()
    (run_folder,) = (output / "runs").iterdir()
    assert (run_folder / "manifest.csv").exists()
    assert (run_folder / "attempt-1" / "evaluation.json").exists()
    assert not list(run_folder.rglob("*.tfrecord"))
    # The night report opens from the mirror as a file: every relative link it holds is there.
    report = output / "reports" / run_folder.name / "night_report.html"
    assert f"night report: {report}" in completed.stdout
    page = report.read_text()
    assert "Deployed version 1" in page
    links = re.findall(r"(?:src|href)='([^']+)'", page)
    assert len(links) >= 5
    assert [link for link in links if not (report.parent / link).resolve().exists()] == []
