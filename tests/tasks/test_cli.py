"""The `retrain` command as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys

from tasks.storage import S3Uri, iter_objects


def retrain(*args: str, endpoint: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tasks.cli", *args],
        env={**os.environ, "AWS_ENDPOINT_URL": endpoint},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_demo_data_uploads_to_the_named_bucket(s3, s3_endpoint):
    completed = retrain(
        "demo-data", "--bucket", "cli-demo-data", "--limit", "12", "--image-size", "32", endpoint=s3_endpoint
    )
    assert completed.returncode == 0, completed.stderr
    assert len(list(iter_objects(s3, S3Uri("cli-demo-data", "raw/")))) == 12


def test_train_requires_its_uris():
    completed = retrain("train", "--epochs", "1", endpoint="http://127.0.0.1:9")
    assert completed.returncode == 2
    assert "--dataset-uri" in completed.stderr


def test_unknown_arguments_are_refused():
    completed = retrain("demo-data", "--no-such-flag", endpoint="http://127.0.0.1:9")
    assert completed.returncode == 2
    assert "unrecognized arguments: --no-such-flag" in completed.stderr
