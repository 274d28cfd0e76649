"""The night report as a plain function against the moto S3 server, without Airflow: a deploy
night, a night with nothing to train and a night the gate refused. The documents it reads are
built through their records, as their writers build them (a real night's are read in tests/dags/)."""

from __future__ import annotations

import html

from steps import judge_and_publish

from tasks.config import PipelineConfig
from tasks.layout import run_layout
from tasks.night_report import NightOutcome, outcome_of, write_night_report
from tasks.records import GateResults
from tasks.run_documents import DatasetRef, ManifestSummary, QuarantinedObject, QuarantineList
from tasks.storage import S3Uri, exists, get_bytes, put_json

COLLECTED = ManifestSummary(
    manifest_uri="s3://b/runs/r1/manifest.csv",
    objects=120,
    objects_read=7,
    objects_new=5,
    objects_changed=2,
    objects_removed=3,
    partitions=1,
    class_names=["zero", "one"],
    class_names_from="raw folders",
    objects_per_folder={"zero": 60, "one": 60},
    skipped_as_noise={".DS_Store": 2},
)
QUARANTINED = [QuarantinedObject("raw/one/bad.png", ["not decodable: truncated"])]


def night_outputs(
    s3, bucket: str, run_id: str, *, gate_passed: bool, dataset_uri: str | None, gated_by: str = ""
) -> None:
    """What collect, validate and assemble_dataset leave under a run, through their records
    where they have one (a whole night's documents are read in tests/dags/)."""
    layout = run_layout(PipelineConfig(bucket=bucket), run_id)
    put_json(s3, layout.manifest_summary, COLLECTED.to_json())
    quarantine = QuarantineList(
        manifest_uri=COLLECTED.manifest_uri,
        quarantined=QUARANTINED,
        duplicates_dropped=[],
        rows_checked=COLLECTED.objects,
        rows_carried=0,
        gated_by_run=gated_by or run_id,
    )
    put_json(s3, layout.quarantine, quarantine.to_json())
    failures = [] if gate_passed else ["class two: 0 images < min_images_per_class 5"]
    raw_gate = GateResults(success=gate_passed, failures=failures, suites={})
    put_json(s3, layout.validation_results("raw"), raw_gate.to_json())
    if dataset_uri:
        processed_gate = GateResults(success=True, failures=[], suites={})
        put_json(s3, layout.validation_results("processed"), processed_gate.to_json())
        put_json(s3, layout.dataset_ref, DatasetRef(dataset_uri=dataset_uri, dataset_id="ds1").to_json())


def report_text(s3, uri: S3Uri) -> str:
    return get_bytes(s3, uri).decode()


def test_a_deploy_night_shows_the_changes_the_attempt_and_the_new_version(s3, bucket, candidate):
    config = PipelineConfig(bucket=bucket)
    night_outputs(s3, bucket, "r1", gate_passed=True, dataset_uri=candidate.dataset_uri)
    judge_and_publish(s3, config, candidate, "r1")
    outcome = NightOutcome("deployed", "version 1 is production now", version=1)
    uri = write_night_report(s3, config, "r1", outcome)
    assert uri.key == "reports/r1/night_report.html"
    page = report_text(s3, uri)
    assert "Deployed version 1" in page
    assert "<td>new</td><td>5</td>" in page and "<td>removed since the last night</td><td>3</td>" in page
    assert "raw/one/bad.png" in page and "not decodable: truncated" in page
    assert "gated by run" not in page  # gated tonight
    assert "href='data_docs/raw/index.html'" in page and "href='data_docs/processed/index.html'" in page
    assert "<span class='accuracy'>0.9700</span>" in page and "blessed: accuracy 0.9700" in page
    # The pictures are copied next to the report, and the model card link resolves from there.
    assert exists(s3, S3Uri(bucket, "reports/r1/attempt-1/confusion_matrix.png"))
    assert "src='attempt-1/confusion_matrix.png'" in page
    # The model card page is the first link on the page, under the decision.
    assert (
        "<p class='links'><a href='../../models/digits-cnn/1/model_card.html'>Model card, version 1</a>"
        in page
    )
    assert exists(s3, S3Uri(bucket, "models/digits-cnn/1/model_card.html"))


def test_a_night_with_nothing_to_train_says_so(s3, bucket, candidate):
    config = PipelineConfig(bucket=bucket)
    night_outputs(s3, bucket, "r2", gate_passed=True, dataset_uri=candidate.dataset_uri, gated_by="r1")
    outcome = outcome_of({"nothing_to_train": "success", "deploy": "skipped"}, [], {}, None)
    page = report_text(s3, write_night_report(s3, config, "r2", outcome))
    assert "Nothing to train: production kept" in page
    assert "<td>manifest the same as the one gated by run</td><td>r1</td>" in page
    assert "No attempt was trained this night." in page
    assert "ds1: 3 images" in page


def test_a_night_the_gate_refused_says_where_it_stopped_and_why(s3, bucket):
    config = PipelineConfig(bucket=bucket)
    night_outputs(s3, bucket, "r3", gate_passed=False, dataset_uri=None)
    reason = "class two: 0 images < min_images_per_class 5"
    outcome = outcome_of(
        {"validate": "failed", "deploy": "upstream_failed"},
        [("validate", -1)],
        {("validate", -1): reason},
        None,
    )
    page = report_text(s3, write_night_report(s3, config, "r3", outcome))
    assert "Failed at validate: production kept" in page and html.escape(reason) in page
    assert "<span class='failed'>FAILED</span>" in page and "<span class='not'>not run</span>" in page
    assert "No dataset was assembled this night." in page


def test_a_night_that_stopped_before_collecting_still_gets_a_report(s3, bucket):
    outcome = outcome_of({"plan_partitions": "failed"}, [("plan_partitions", -1)], {}, None)
    page = report_text(s3, write_night_report(s3, PipelineConfig(bucket=bucket), "r4", outcome))
    assert "Failed at plan_partitions" in page and "see the task log" in page
    assert "The night stopped before collecting." in page


def test_the_outcome_names_a_give_up_and_a_mapped_instance():
    gave_up = outcome_of(
        {"attempt_2.give_up": "failed"},
        [("attempt_2.give_up", -1)],
        {("attempt_2.give_up", -1): "best 0.8"},
        None,
    )
    assert (gave_up.ended, gave_up.reason) == ("gave up", "best 0.8")
    mapped = outcome_of({"collect_1": "failed"}, [("collect", 1)], {("collect", 1): "timeout"}, None)
    assert mapped.failed_task == "collect [1]"
