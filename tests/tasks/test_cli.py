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


def test_models_and_predict_commands(s3, s3_endpoint, bucket, candidate, tmp_path):
    from images_factory import digit_like, encode
    from steps import judge_and_publish

    from tasks.config import PipelineConfig
    from tasks.demo.data import DIGIT_CLASS_NAMES

    for run_id in ("run-1", "run-2"):
        judge_and_publish(s3, PipelineConfig(bucket=bucket), candidate, run_id)
    where = ("--bucket", bucket)
    listed = retrain("models", "list", *where, endpoint=s3_endpoint)
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[:2] for line in listed.stdout.splitlines()] == [["1", "complete"], ["*", "2"]]
    shown = retrain("models", "show", "1", *where, endpoint=s3_endpoint)
    assert '"run_id": "run-1"' in shown.stdout
    rolled = retrain("models", "rollback", "1", *where, endpoint=s3_endpoint)
    assert rolled.stdout.startswith("production is now version 1")
    assert "trigger the rollback_production DAG" in rolled.stdout
    image = tmp_path / "digit.png"
    image.write_bytes(encode(digit_like(4)))
    predicted = retrain("predict", str(image), *where, endpoint=s3_endpoint)
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stderr == ""  # TensorFlow's start-up notices and Keras' warnings stay out
    path, class_name, probability = predicted.stdout.strip().split("\t")
    assert path == str(image) and class_name in DIGIT_CLASS_NAMES and 0 <= float(probability) <= 1


def test_registry_problems_are_one_line_with_the_fix(s3, s3_endpoint, bucket):
    unknown_model = retrain(
        "models", "list", "--bucket", bucket, "--model-name", "nope", endpoint=s3_endpoint
    )
    assert unknown_model.returncode == 1
    assert unknown_model.stderr.strip() == (
        f"retrain: error: s3://{bucket}/models/nope/: no versions of model 'nope'; "
        "check --model-name and --bucket"
    )
    no_bucket = retrain("models", "list", "--bucket", "no-such-bucket-x", endpoint=s3_endpoint)
    assert no_bucket.returncode == 1
    assert "Traceback" not in no_bucket.stderr and len(no_bucket.stderr.strip().splitlines()) == 1
    assert "the bucket does not exist" in no_bucket.stderr and "--bucket" in no_bucket.stderr
    missing_version = retrain("models", "rollback", "9", "--bucket", bucket, endpoint=s3_endpoint)
    assert missing_version.returncode == 1
    assert missing_version.stderr.strip().startswith("retrain: error: ")
    assert "Traceback" not in missing_version.stderr


def error_line(completed: subprocess.CompletedProcess) -> str:
    """The command's one error line, after checking it failed without a traceback."""
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stderr, completed.stderr
    (line,) = [line for line in completed.stderr.splitlines() if line.startswith("retrain: error: ")]
    return line


def test_missing_wrong_or_unreachable_credentials_and_endpoints_are_one_line(s3_endpoint, monkeypatch):
    from tasks.demo.local_s3 import LocalS3

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    no_credentials = retrain("models", "list", "--bucket", "any-bucket", endpoint=s3_endpoint)
    assert "s3://any-bucket: no AWS credentials found" in error_line(no_credentials)

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "no-such-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "no-such-secret")
    with LocalS3(require_auth=True) as guarded:
        refused = retrain("models", "list", "--bucket", "any-bucket", endpoint=guarded.endpoint_url)
    assert "access denied; check the credentials" in error_line(refused)

    unreachable = retrain("demo-data", "--bucket", "any-bucket", endpoint="http://127.0.0.1:9")
    assert "S3 endpoint unreachable" in error_line(unreachable) and "check endpoint_url" in unreachable.stderr


def test_an_unreadable_image_is_one_line(s3, s3_endpoint, bucket, candidate, tmp_path):
    from steps import judge_and_publish

    from tasks.config import PipelineConfig

    judge_and_publish(s3, PipelineConfig(bucket=bucket), candidate, "run-1")
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not an image")
    unreadable = retrain("predict", str(not_an_image), "--bucket", bucket, endpoint=s3_endpoint)
    assert str(not_an_image) in error_line(unreadable)
    missing = retrain("predict", str(tmp_path / "gone.png"), "--bucket", bucket, endpoint=s3_endpoint)
    assert error_line(missing) == f"retrain: error: {tmp_path / 'gone.png'}: No such file or directory"
