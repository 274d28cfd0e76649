"""The whole DAG through `dag.test()` against the moto server, on real digits."""

from __future__ import annotations

import os
import uuid
from dataclasses import asdict
from urllib.parse import quote

import pytest
from pointers import production_pointer

from tasks.config import PipelineConfig
from tasks.demo.data import DIGIT_PARAMS
from tasks.layout import MARKER_FILE as MARKER
from tasks.layout import model_layout, run_segment
from tasks.recipe import REFERENCE_RECIPE
from tasks.storage import S3Uri, exists, get_bytes, get_json, iter_objects, put_bytes, put_json

pytestmark = pytest.mark.slow

# The digits in label order, as the demo passes them (without, the folders sorted by name).
FAST = {
    "image_size": 32,
    "epochs": 3,
    "batch_size": 32,
    "min_images": 100,
    **DIGIT_PARAMS,
}
BARE_RECIPE = asdict(REFERENCE_RECIPE)


def test_nightly_run_deploys_a_complete_version(run_retrain, s3, digits_bucket, capfd):
    model_name = f"e2e-{uuid.uuid4().hex[:6]}"
    dag_run, states = run_retrain(
        bucket=digits_bucket, model_name=model_name, min_test_accuracy=0.5, max_attempts=2, **FAST
    )
    assert dag_run.state == "success", states
    # deploy reads only the accept task that ran: no error lines for the skipped attempts'.
    assert "XCom not found" not in "".join(capfd.readouterr())
    assert states["night_report"] == "success"
    report = get_bytes(s3, S3Uri(digits_bucket, f"reports/{run_segment(dag_run.run_id)}/night_report.html"))
    assert b"Deployed version 1" in report and b"attempt-1/confusion_matrix.png" in report
    assert states["deploy"] == "success"
    assert states["attempt_1.accept"] == "success"
    assert states["attempt_2.plan"] == states["attempt_2.train"] == "skipped"
    config = PipelineConfig(bucket=digits_bucket, model_name=model_name)
    pointer = get_json(s3, model_layout(config).pointer)
    assert pointer["version"] == 1
    assert pointer["metrics"]["accuracy"] >= 0.5
    for name in ("model.keras", "evaluation.json", "history.json", MARKER):
        assert exists(s3, S3Uri.parse(pointer["version_uri"]).join(name)), name

    # A consumer loads the production model and classifies demo images with it.
    from tasks.registry import Registry, predict

    model, card = Registry(s3, digits_bucket, model_name).load()
    keys = [item["Key"] for item in iter_objects(s3, S3Uri(digits_bucket, "raw/"))][:60]
    bodies = [get_bytes(s3, S3Uri(digits_bucket, key)) for key in keys]
    predicted = [name for name, _ in predict(model, card, bodies, keys)]
    correct = sum(name == key.split("/")[1] for name, key in zip(predicted, keys, strict=True))
    assert correct / len(keys) >= 0.5


def test_unreachable_threshold_retrains_gives_up_and_keeps_production(run_retrain, s3, digits_bucket):
    model_name = f"e2e-{uuid.uuid4().hex[:6]}"
    config = PipelineConfig(bucket=digits_bucket, model_name=model_name)
    put_json(s3, model_layout(config).pointer, production_pointer(digits_bucket, model_name, 7).to_json())
    before = get_bytes(s3, model_layout(config).pointer)
    dag_run, states = run_retrain(
        bucket=digits_bucket,
        model_name=model_name,
        min_test_accuracy=1.0,
        max_attempts=2,
        **{**FAST, "epochs": 1},
    )
    assert dag_run.state == "failed"
    assert states["attempt_1.train"] == states["attempt_2.train"] == "success"
    assert states["attempt_2.give_up"] == "failed"
    assert states["deploy"] == "skipped"
    assert states["attempt_3.train"] == "skipped"
    assert get_bytes(s3, model_layout(config).pointer) == before


def test_empty_raw_prefix_fails_at_collection_and_nothing_runs_after(run_retrain, bucket, capfd):
    dag_run, states = run_retrain(bucket=bucket, **FAST)
    assert dag_run.state == "failed"
    assert states["plan_partitions"] == "failed"
    assert states["collect"] == states["validate"] == "upstream_failed"
    logged = "".join(capfd.readouterr())
    assert f"AirflowFailException: s3://{bucket}/raw/: no objects to train on" in logged


def test_docker_backend_deploys_and_no_secret_leaks(run_retrain, s3, digits_bucket, trainer_image, capfd):
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    model_name = f"e2e-docker-{uuid.uuid4().hex[:6]}"
    dag_run, states = run_retrain(
        **{
            "bucket": digits_bucket,
            "model_name": model_name,
            "min_test_accuracy": 0.5,
            "max_attempts": 1,
            "trainer_backend": "docker",
            "trainer_image": trainer_image,
            "gpus": "0",
            **FAST,
        }
    )
    logged = "".join(capfd.readouterr())
    assert dag_run.state == "success", states
    assert "trainer container retrain-" in logged
    config = PipelineConfig(bucket=digits_bucket, model_name=model_name)
    assert get_json(s3, model_layout(config).pointer)["version"] == 1

    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    with create_session() as session:
        rendered = session.query(RenderedTaskInstanceFields).filter_by(run_id=dag_run.run_id).all()
        xcoms = session.query(XComModel).filter_by(run_id=dag_run.run_id).all()
        stored = repr([r.rendered_fields for r in rendered]) + repr([x.value for x in xcoms])
    assert any(r.task_id == "attempt_1.train" for r in rendered)
    assert secret not in logged
    assert secret not in stored


@pytest.fixture
def production_before(s3, bucket):
    """An existing production pointer that a failing run must leave byte for byte."""
    config = PipelineConfig(bucket=bucket, model_name="guarded")
    put_json(s3, model_layout(config).pointer, production_pointer(bucket, "guarded", 3).to_json())
    return get_bytes(s3, model_layout(config).pointer)


GATE_CONF = {
    **FAST,
    "model_name": "guarded",
    "class_names": ["zero", "one", "two"],
    "min_images": 20,
    "min_images_per_class": 5,
    "max_quarantine_fraction": 0.1,
}


def guarded_pointer(s3, bucket: str) -> bytes:
    return get_bytes(s3, model_layout(PipelineConfig(bucket=bucket, model_name="guarded")).pointer)


def failed_task(states: dict[str, str]) -> str:
    (failed,) = [task for task, state in states.items() if state == "failed"]
    return failed


def test_a_class_without_images_fails_the_gate_and_keeps_production(
    run_retrain, s3, bucket, production_before, capfd, alert_sink
):
    from images_factory import seed_images

    seed_images(s3, bucket, classes=("zero", "one"))
    dag_run, states = run_retrain(bucket=bucket, **GATE_CONF)
    assert (dag_run.state, failed_task(states)) == ("failed", "validate")
    assert states["preprocess"] == "upstream_failed"
    reason = "class two: 0 images < min_images_per_class 5"
    assert states["night_report"] == "success"  # the report is written, the run still fails
    report = get_bytes(s3, S3Uri(bucket, f"reports/{run_segment(dag_run.run_id)}/night_report.html"))
    assert b"Failed at validate" in report
    assert reason in "".join(capfd.readouterr())
    assert guarded_pointer(s3, bucket) == production_before

    # The failed run sends exactly one alert: the gate's reason, the task and a link to the run.
    (alert,) = alert_sink.messages
    assert (alert["dag_id"], alert["run_id"], alert["task_id"]) == (
        "image_classifier_retrain",
        dag_run.run_id,
        "validate",
    )
    assert reason in alert["reason"] and "\n" not in alert["reason"]
    assert alert["url"].endswith(f"/dags/image_classifier_retrain/runs/{quote(dag_run.run_id, safe='')}")
    assert reason in alert["text"] and alert["url"] in alert["text"]


def test_too_many_bad_objects_fail_the_gate_and_keep_production(
    run_retrain, s3, bucket, production_before, capfd
):
    from images_factory import seed_images

    seed_images(s3, bucket)
    for index in range(5):
        put_bytes(s3, S3Uri(bucket, f"raw/one/corrupt-{index}.png"), b"\x89PNG broken")
    dag_run, states = run_retrain(bucket=bucket, **GATE_CONF)
    assert (dag_run.state, failed_task(states)) == ("failed", "validate")
    assert "quarantined 5 of 41 objects (12.2%) > 10.0% allowed" in "".join(capfd.readouterr())
    assert guarded_pointer(s3, bucket) == production_before


def test_a_misspelt_param_is_refused_before_any_work(run_retrain, s3, digits_bucket, capfd):
    dag_run, states = run_retrain(bucket=digits_bucket, imagesize=32, **FAST)
    assert (dag_run.state, failed_task(states)) == ("failed", "plan_partitions")
    log = "".join(capfd.readouterr())
    assert "unknown Param imagesize; did you mean image_size?" in log
    # Airflow's own traceback of the failure, once, without the frames of the check that refused.
    assert (log.count("Traceback"), log.count("InvalidSettingsError")) == (1, 0)


def test_a_missing_bucket_fails_at_collection(run_retrain, s3, capfd):
    dag_run, states = run_retrain(bucket="no-such-bucket-nightly", **GATE_CONF)
    assert (dag_run.state, failed_task(states)) == ("failed", "plan_partitions")
    assert "s3://no-such-bucket-nightly: the bucket does not exist" in "".join(capfd.readouterr())
    assert "no-such-bucket-nightly" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_wrong_credentials_fail_at_collection(run_retrain, monkeypatch, capfd):
    from tasks.demo.local_s3 import LocalS3

    with LocalS3(require_auth=True) as guarded_s3:
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", guarded_s3.airflow_connection())
        dag_run, states = run_retrain(bucket="any-bucket", **GATE_CONF)
    assert (dag_run.state, failed_task(states)) == ("failed", "plan_partitions")
    assert "s3://any-bucket: access denied; check the credentials" in "".join(capfd.readouterr())


def test_a_run_with_quarantined_objects_deploys_and_publishes_its_reports(run_retrain, s3, bucket):
    from images_factory import png_declaring

    from tasks.demo.data import upload_digits

    upload_digits(s3, bucket, image_size=32, limit=400)
    put_bytes(s3, S3Uri(bucket, "raw/seven/bomb.png"), png_declaring(90_000, 90_000))
    put_bytes(s3, S3Uri(bucket, "raw/parrot/hello.png"), b"not even an image")
    dag_run, states = run_retrain(
        bucket=bucket, model_name="with-quarantine", min_test_accuracy=0.0, max_attempts=1, **FAST
    )
    assert dag_run.state == "success", states
    (run_folder,) = {item["Key"].split("/")[1] for item in iter_objects(s3, S3Uri(bucket, "runs/"))}
    quarantine = get_json(s3, S3Uri(bucket, f"runs/{run_folder}/quarantine.json"))
    quarantined = {entry["key"] for entry in quarantine["quarantined"]}
    assert quarantined == {"raw/seven/bomb.png", "raw/parrot/hello.png"}
    for part in ("raw", "processed"):
        assert exists(s3, S3Uri(bucket, f"reports/{run_folder}/data_docs/{part}/index.html"))
        assert exists(s3, S3Uri(bucket, f"reports/{run_folder}/data_docs/{part}/validation_results.json"))


def test_retrain_path_deploys_a_later_attempt(run_retrain, s3, digits_bucket):
    """With the reference recipe (no augmentation or regularization, constant learning rate),
    one epoch from scratch reaches about 0.64 here, far below 0.85; each warm-started
    retry adds an epoch (about 0.92 after two, 0.95 after three). With three attempts the test
    does not depend on which retry first crosses 0.85, only on the first attempt missing it."""
    model_name = f"e2e-retrain-{uuid.uuid4().hex[:6]}"
    dag_run, states = run_retrain(
        bucket=digits_bucket,
        model_name=model_name,
        min_test_accuracy=0.85,
        max_attempts=3,
        **{**FAST, **BARE_RECIPE, "epochs": 1},
    )
    assert dag_run.state == "success", states
    assert states["attempt_1.accept"] == "skipped" and states["deploy"] == "success"
    pointer = get_json(s3, model_layout(PipelineConfig(bucket=digits_bucket, model_name=model_name)).pointer)
    deployed = pointer["attempt"]
    assert pointer["version"] == 1 and deployed in (2, 3)
    assert states[f"attempt_{deployed}.accept"] == "success"
    from tasks.layout import run_segment

    run_folder = run_segment(pointer["run_id"])
    blessings = [
        get_json(s3, S3Uri(digits_bucket, f"runs/{run_folder}/attempt-{attempt}/blessing.json"))
        for attempt in range(1, deployed + 1)
    ]
    assert [blessing["blessed"] for blessing in blessings] == [False] * (deployed - 1) + [True]
    # Each blessing records what its attempt trained; a retry, that it started from the kept epoch.
    assert blessings[0]["training"]["attempt"].startswith("attempt 1: fresh model")
    assert "warm start from the kept epoch of" in blessings[1]["training"]["attempt"]
    assert "lr 0.0005" in blessings[1]["training"]["attempt"]
    assert get_json(s3, S3Uri.parse(pointer["version_uri"]).join("model_card.json"))["attempt"] == deployed


def test_an_unchanged_night_trains_nothing_and_force_retrain_trains(
    run_retrain, s3, digits_bucket, alert_sink
):
    model_name = f"e2e-skip-{uuid.uuid4().hex[:6]}"
    conf = {
        "bucket": digits_bucket,
        "model_name": model_name,
        "min_test_accuracy": 0.5,
        "max_attempts": 1,
        **FAST,
    }
    first, states = run_retrain(**conf)
    assert first.state == "success" and states["deploy"] == "success", states
    pointer_uri = model_layout(PipelineConfig(bucket=digits_bucket, model_name=model_name)).pointer
    before = get_bytes(s3, pointer_uri)

    unchanged, states = run_retrain(**conf)
    assert unchanged.state == "success", states
    assert states["nothing_to_train"] == "success" and states["cleanup"] == "success"
    assert states["attempt_1.plan"] == states["attempt_1.train"] == states["deploy"] == "skipped"
    assert get_bytes(s3, pointer_uri) == before

    forced, states = run_retrain(**conf, force_retrain=True)
    assert forced.state == "success" and states["deploy"] == "success", states
    assert states["nothing_to_train"] == "skipped"
    assert get_json(s3, pointer_uri)["version"] == 2
    # Green nights and the skipped night alert no one.
    assert alert_sink.messages == []
