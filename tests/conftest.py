"""Shared fixtures: a real S3 endpoint (moto's server mode over HTTP), a SQLite Airflow home
under a temporary folder, and small real data (scikit-learn's digits)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import asdict, replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "plugins"))

# The whole-DAG nights the tests share, each run once per session.
pytest_plugins = ["nights", "week", "api_server"]

from tasks.config import PipelineConfig  # noqa: E402
from tasks.demo.data import DIGIT_CLASS_NAMES, upload_digits  # noqa: E402
from tasks.demo.local_s3 import LocalS3  # noqa: E402
from tasks.demo.run import airflow_environment  # noqa: E402
from tasks.storage import S3Uri, create_bucket, make_client  # noqa: E402

# Settings from the caller's shell that would change what the tests exercise. The trainer
# image's name is kept: `make test` builds the image under that name.
CALLER_SETTINGS = ("RETRAIN_", "AIRFLOW__", "AIRFLOW_CONN_", "AWS_")
KEPT_CALLER_SETTINGS = ("RETRAIN_TRAINER_IMAGE",)
_caller_environment: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Before any test module imports Airflow or makes a boto3 client: dummy credentials, a
    throwaway SQLite Airflow home, trainers on the local backend, and none of the caller's
    RETRAIN_/AIRFLOW__/AWS_ settings. pytest_unconfigure puts the caller's environment back."""
    _caller_environment.update(os.environ)
    for name in list(os.environ):
        if name.startswith(CALLER_SETTINGS) and name not in KEPT_CALLER_SETTINGS:
            del os.environ[name]
    airflow_home = Path(tempfile.mkdtemp(prefix="retrain-test-airflow-"))
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "test-access-key",
            "AWS_SECRET_ACCESS_KEY": "test-secret-key",
            "AWS_DEFAULT_REGION": "us-east-1",
            **airflow_environment(airflow_home, aws_connection="{}"),
            # Trainer containers reach the moto server on the host's loopback.
            "RETRAIN_DOCKER_NETWORK": "host",
            "RETRAIN_TRAINER_BACKEND": "local",
            # Every test makes its own buckets on the session's S3 server; the refusal of a
            # bucket outside the allow-list is tested in tests/security/ with a list set.
            "RETRAIN_ALLOWED_BUCKETS": "*",
        }
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    from timing import record_report

    record_report(report)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    from reliability import write_table
    from timing import write_file_table

    for title, table in (("reliability drills", write_table()), ("time per test file", write_file_table())):
        if table is not None:
            terminalreporter.write_sep("-", f"{title} (also in {table.relative_to(ROOT)})")
            terminalreporter.write(table.read_text())


def pytest_unconfigure(config: pytest.Config) -> None:
    airflow_home = os.environ.get("AIRFLOW_HOME", "")
    if _caller_environment:
        os.environ.clear()
        os.environ.update(_caller_environment)
    if Path(airflow_home).name.startswith("retrain-test-airflow-"):
        shutil.rmtree(airflow_home, ignore_errors=True)


# Small enough to train in seconds on two cores, large enough that every split holds every class.
TEST_IMAGE_SIZE = 32
TEST_IMAGE_COUNT = 600


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated SQLite metadata database for the run (DAG tests, run-level callbacks)."""
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run(
        [str(airflow), "db", "migrate"],
        env=os.environ,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.fixture(scope="session")
def s3_endpoint():
    with LocalS3() as server:
        os.environ["AWS_ENDPOINT_URL"] = server.endpoint_url
        os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = server.airflow_connection()
        yield server.endpoint_url


@pytest.fixture
def s3(s3_endpoint):
    return make_client(s3_endpoint)


@pytest.fixture
def bucket(s3) -> str:
    """A fresh, empty bucket per test, so tests never see each other's objects."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    create_bucket(s3, name)
    return name


@pytest.fixture
def reports(s3) -> S3Uri:
    """The report's folder, in a bucket of its own as S3 Inventory destinations usually are."""
    name = f"inventory-{uuid.uuid4().hex[:12]}"
    create_bucket(s3, name)
    return S3Uri(name, "inventories/source/nightly/")


@pytest.fixture(scope="session")
def digits_bucket(s3_endpoint) -> str:
    """One bucket holding real digit images under raw/<class_name>/, shared by the session.
    Tests that use it write only under their own run id or model name, never to raw/."""
    name = f"digits-{uuid.uuid4().hex[:8]}"
    upload_digits(make_client(s3_endpoint), name, "raw/", image_size=TEST_IMAGE_SIZE, limit=TEST_IMAGE_COUNT)
    return name


TRAINER_IMAGE = os.environ.get("RETRAIN_TRAINER_IMAGE", "nightly-retrain-trainer:latest")


@pytest.fixture(scope="session")
def docker_client():
    """A client of a real Docker engine; `make test` starts one. Without one, the Docker tests
    skip loudly on a developer's machine and fail under CI (CI=true), which must run them."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as error:  # noqa: BLE001 - any failure to reach an engine means the same: no engine
        message = f"NO DOCKER ENGINE REACHABLE ({error}); run `make test` as root to start one"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"{message}; CI must run the Docker tests")
        pytest.skip(message)
    return client


@pytest.fixture(scope="session")
def trainer_image(docker_client) -> str:
    import docker

    try:
        docker_client.images.get(TRAINER_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{TRAINER_IMAGE} is not built; run `make trainer-image`")
    return TRAINER_IMAGE


@pytest.fixture
def dataset(s3, digits_bucket):
    """A preprocessed 32x32 digits dataset under its own run id."""
    from steps import collect_and_build

    config = PipelineConfig(bucket=digits_bucket, image_size=TEST_IMAGE_SIZE)
    run_id = f"fixture-{uuid.uuid4().hex[:8]}"
    return collect_and_build(s3, config, run_id)


@pytest.fixture(scope="session")
def tiny_model_bytes(tmp_path_factory) -> bytes:
    from tasks.model import build_reference_cnn, inference_model
    from tasks.recipe import Recipe

    path = tmp_path_factory.mktemp("model") / "model.keras"
    inference_model(build_reference_cnn(image_size=24, class_count=10), Recipe()).save(path)
    return path.read_bytes()


@pytest.fixture
def candidate(s3, bucket, tiny_model_bytes):
    """An attempt's outputs as train, evaluate and decide leave them (a tiny real model); the
    blessing through the real rule and its document's record."""
    from tasks.blessing import bless
    from tasks.checkpoints import TrainingHistory
    from tasks.records import Candidate, DatasetRecord
    from tasks.run_documents import AttemptTraining, CandidateScores, EvaluationDocument
    from tasks.storage import S3Uri, put_bytes, put_json
    from tasks.train import TrainRequest, TrainResult

    attempt_uri = f"s3://{bucket}/runs/r1/attempt-1"
    attempt = S3Uri.parse(attempt_uri)
    put_bytes(s3, attempt.join("model.keras"), tiny_model_bytes)
    put_bytes(s3, attempt.join("confusion_matrix.png"), b"\x89PNG")
    put_bytes(s3, attempt.join("training_curves.png"), b"\x89PNG")
    history = TrainingHistory([1], {"loss": [1.0], "val_accuracy": [0.9]}, kept_epoch=1, kept_by="last")
    put_json(s3, attempt.join("history.json"), history.to_json())
    per_class = {"zero": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 3}}
    evaluation = EvaluationDocument(
        model_uri=f"{attempt_uri}/model.keras",
        dataset_uri=f"s3://{bucket}/runs/r1/dataset/dataset.json",
        test_images=30,
        accuracy=0.97,
        macro_precision=0.97,
        macro_recall=0.97,
        macro_f1=0.96,
        macro_roc_auc_ovr=0.99,
        per_class=per_class,
        roc_auc_ovr={"zero": 0.99},
        confusion_matrix=[[3]],
        class_names=["zero"],
        champion=None,
    )
    put_json(s3, attempt.join("evaluation.json"), evaluation.to_json())
    blessing = bless(
        CandidateScores(1, f"{attempt_uri}/model.keras", accuracy=0.97, macro_f1=0.96),
        None,
        min_accuracy=0.9,
        min_macro_f1=None,
        max_regression=0.0,
    )
    training = AttemptTraining(attempt="attempt 1: fresh model", epochs_trained=1, kept_epoch=1)
    put_json(s3, attempt.join("blessing.json"), replace(blessing, training=training).to_json())
    request = TrainRequest(f"s3://{bucket}/runs/r1/dataset/dataset.json", attempt_uri, epochs=1)
    trained = TrainResult(
        model_uri=f"{attempt_uri}/model.keras",
        history_uri=f"{attempt_uri}/history.json",
        epochs_trained=1,
        kept_epoch=1,
        final_val_accuracy=0.9,
        train_seconds=2.0,
        images_per_second=100.0,
        resumed_after_epoch=0,
        request=asdict(request),
    )
    put_json(s3, attempt.join("train_result.json"), asdict(trained))
    put_json(
        s3,
        S3Uri(bucket, "runs/r1/dataset/dataset.json"),
        DatasetRecord(
            dataset_id="ds1",
            fingerprint="fp",
            image_size=24,
            class_names=list(DIGIT_CLASS_NAMES),
            split_counts={"train": 1, "validation": 1, "test": 1},
            packs={"train": [], "validation": [], "test": []},
            labels_uri=f"s3://{bucket}/runs/r1/dataset/labels.csv",
            preprocessing_version="p1",
            manifest_uri=f"s3://{bucket}/runs/r1/clean_manifest.csv",
            created_by_run="r1",
        ).to_json(),
    )
    return Candidate(
        attempt=1,
        attempt_uri=attempt_uri,
        model_uri=f"{attempt_uri}/model.keras",
        evaluation_uri=f"{attempt_uri}/evaluation.json",
        accuracy=0.97,
        macro_f1=0.96,
        dataset_uri=f"s3://{bucket}/runs/r1/dataset/dataset.json",
        dataset_fingerprint="fp",
        production_etag=None,  # judged before any production existed
    )


@pytest.fixture
def writer_between_read_and_write(monkeypatch):
    """Makes another writer replace the object right after `module` reads its ETag, so the
    module's conditional write must lose. Returns the document the other writer wrote."""

    def install(module, document: dict) -> dict:
        from tasks.storage import put_json

        real_head_etag = module.head_etag

        def read_then_other_writer(client, uri):
            etag = real_head_etag(client, uri)
            put_json(client, uri, document)
            return etag

        monkeypatch.setattr(module, "head_etag", read_then_other_writer)
        return document

    return install


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that need a Docker engine carry the `docker` marker, so `make check` can leave
    them out."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if {"docker_client", "trainer_image"} & fixtures or "tests/docker/" in item.nodeid:
            item.add_marker(pytest.mark.docker)


@pytest.fixture
def alert_sink(monkeypatch):
    """A local webhook that failure alerts are sent to (RETRAIN_ALERT_WEBHOOK_URL points at
    it for the test); its `messages` are the alerts received."""
    from alert_sink import WebhookSink

    with WebhookSink() as sink:
        monkeypatch.setenv("RETRAIN_ALERT_WEBHOOK_URL", sink.url)
        yield sink


@pytest.fixture
def raw_reads():
    """Counts the raw objects a client downloads: `watch(client)` returns the list of keys
    that client GETs from raw/ from then on."""

    def watch(client) -> list[str]:
        keys: list[str] = []

        def record(params, **_):
            if params["Key"].startswith("raw/"):
                keys.append(params["Key"])

        client.meta.events.register("provide-client-params.s3.GetObject", record)
        return keys

    return watch


@pytest.fixture
def small_digits(s3, bucket) -> str:
    """A fresh bucket with 200 real digits at 32x32 under raw/, free to change."""
    upload_digits(s3, bucket, "raw/", image_size=TEST_IMAGE_SIZE, limit=200)
    return bucket


# DAG runs through dag.test(), shared by the DAG and plugin tests.
@pytest.fixture(scope="session")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


@pytest.fixture(scope="session")
def retrain_dag(dagbag):
    return dagbag.get_dag("image_classifier_retrain")


@pytest.fixture(scope="session")
def pristine_params(retrain_dag) -> dict:
    """The Params' defaults as parsed. dag.test() runs tasks in this process and writes each
    run's conf into the shared DAG object's params, so every run passes a complete conf."""
    import copy

    return copy.deepcopy(retrain_dag.params.dump())
