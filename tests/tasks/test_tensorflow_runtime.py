"""TensorFlow's start-up notices go to the log at DEBUG, not to stderr (which Airflow's task
logs show as errors)."""

from __future__ import annotations

import subprocess
import sys

LOADS_TENSORFLOW = """
import logging, sys
logging.basicConfig(stream=sys.stdout, level=logging.DEBUG, format="%(levelname)s %(name)s %(message)s")
from tasks.tensorflow_runtime import load_tensorflow
tf = load_tensorflow()
assert load_tensorflow() is tf
print("sum", int(tf.constant(2) + 1))
"""


def test_tensorflow_loads_without_writing_to_stderr():
    loaded = subprocess.run(
        [sys.executable, "-c", LOADS_TENSORFLOW], capture_output=True, text=True, timeout=120
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stderr == ""
    assert "sum 3" in loaded.stdout
    notices = [
        line for line in loaded.stdout.splitlines() if line.startswith("DEBUG tasks.tensorflow_runtime")
    ]
    assert any("oneDNN" in line or "cpu_feature_guard" in line for line in notices), loaded.stdout
