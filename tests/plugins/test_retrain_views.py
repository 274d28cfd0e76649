"""The artifact server in a real Airflow API server, against the moto S3 server: a finished
run's night report and pictures for a user who may read the DAG, and a refusal for everyone
and everything else."""

from __future__ import annotations

import urllib.parse

import pytest
from api_server import extra_links, get, login

from tasks.config import PipelineConfig
from tasks.layout import run_layout
from tasks.storage import put_bytes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished_run(gate_failure_night, s3_endpoint):
    """The shared gate-failure night (tests/nights.py) with its night report, plus a PNG next
    to it."""
    from images_factory import digit_like, encode

    from tasks.storage import make_client

    night, _ = gate_failure_night
    reports = run_layout(PipelineConfig(bucket=night.bucket), night.run_id).reports
    put_bytes(
        make_client(s3_endpoint),
        reports.join("attempt-1", "confusion_matrix.png"),
        encode(digit_like(3)),
        "image/png",
    )
    return night.run_id, night.bucket


def run_url(api_server: str, run_id: str, tail: str) -> str:
    return f"{api_server}/retrain/runs/image_classifier_retrain/{urllib.parse.quote(run_id, safe='')}/{tail}"


def test_a_reader_gets_the_night_report_and_its_pictures(api_server, finished_run):
    run_id, _ = finished_run
    token = login(api_server, "admin")
    status, kind, body = get(run_url(api_server, run_id, "report"), token)
    assert (status, kind) == (200, "text/html; charset=utf-8"), body[:300]
    assert b"Failed at validate" in body and b"class two: 0 images" in body
    segment = run_layout(PipelineConfig(), run_id).reports.key
    status, kind, body = get(
        run_url(api_server, run_id, f"files/{segment}/attempt-1/confusion_matrix.png"), token
    )
    assert (status, kind) == (200, "image/png") and body.startswith(b"\x89PNG")
    status, kind, _ = get(run_url(api_server, run_id, f"files/{segment}/data_docs/raw/index.html"), token)
    assert (status, kind) == (200, "text/html; charset=utf-8")


def test_no_token_is_401_and_a_user_without_access_to_the_dag_is_403(api_server, finished_run):
    run_id, _ = finished_run
    assert get(run_url(api_server, run_id, "report"))[0] == 401
    assert get(f"{api_server}/retrain/models")[0] == 401
    outsider = login(api_server, "outsider")
    assert get(run_url(api_server, run_id, "report"), outsider)[0] == 403
    assert get(f"{api_server}/retrain/models", outsider)[0] == 403


@pytest.mark.parametrize(
    ("tail", "status"),
    [
        ("files/reports/{segment}/../../models/x/production.json", 400),  # sent as is, not normalized
        ("files/reports/{segment}/%2e%2e/%2e%2e/raw/zero/0.png", 400),
        ("files/reports/{segment}/%2E%2E%2Fother", 400),
        ("files//etc/passwd", 400),
        ("files/reports/another-run/night_report.html", 403),
        ("files/raw/zero/0.png", 403),
        ("files/s3:/another-bucket/reports/{segment}/night_report.html", 403),
        ("files/models/another-model/production.json", 403),
        ("files/reports/{segment}/no-such-file.html", 404),
    ],
)
def test_paths_outside_the_runs_reports_and_model_are_refused(api_server, finished_run, tail, status):
    run_id, _ = finished_run
    segment = run_layout(PipelineConfig(), run_id).reports.key.removeprefix("reports/")
    url = run_url(api_server, run_id, tail.format(segment=segment))
    answered, kind, body = get(url, login(api_server, "admin"))
    assert answered == status, body[:300]
    assert kind.startswith("application/json") and b"\n" not in body.strip()  # one-line detail


def test_another_dags_runs_and_unknown_runs_are_404(api_server, finished_run):
    token = login(api_server, "admin")
    assert get(f"{api_server}/retrain/runs/score_incoming/any/report", token)[0] == 404
    assert get(run_url(api_server, "no-such-run", "report"), token)[0] == 404


def test_validate_links_to_its_data_docs_and_other_tasks_get_no_link(api_server, finished_run):
    run_id, _ = finished_run
    token = login(api_server, "admin")
    links = extra_links(api_server, run_id, "validate", token)
    assert links["Data Docs"].endswith("/go/data-docs") and links["Model card"] is None
    status, kind, body = get(f"{api_server}{links['Data Docs']}", token)
    assert (status, kind) == (200, "text/html; charset=utf-8") and b"Data Docs" in body
    assert set(extra_links(api_server, run_id, "plan_partitions", token).values()) == {None}
    # This night deployed nothing: its model-card link says so in one line.
    status, _, body = get(run_url(api_server, run_id, "go/model-card"), token)
    assert status == 404 and b"deployed no version" in body


def test_a_run_whose_params_fail_the_checks_still_gets_its_report_in_the_tab(
    api_server, run_night, s3, bucket
):
    """Each value passes its Param's schema; together they fail the config's cross-field check.
    The night fails, its report says why, and the tab shows it; without a report, a page says
    why instead of an error."""
    from tasks.storage import delete_keys

    night = run_night(bucket=bucket, min_image_side=100, max_image_side=50)
    assert night.state == "failed", night.states
    reason = "min_image_side 100 is above max_image_side 50"
    assert reason in night.report(s3).decode()
    token = login(api_server, "admin")
    status, kind, body = get(run_url(api_server, night.run_id, "report"), token)
    assert (status, kind) == (200, "text/html; charset=utf-8") and reason.encode() in body
    delete_keys(s3, bucket, [run_layout(PipelineConfig(bucket=bucket), night.run_id).night_report.key])
    status, kind, body = get(run_url(api_server, night.run_id, "report"), token)
    assert (status, kind) == (404, "text/html; charset=utf-8")
    assert b"id='missing-report'" in body and b"night_report task" in body
