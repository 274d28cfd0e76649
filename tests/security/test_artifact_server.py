"""The artifact server (plugins/retrain_views.py) attacked as a reviewer would: every route for
every kind of caller, what it serves and with which headers, and the kinds it refuses. Against a
real API server and the shared gate-failure night (tests/nights.py)."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

import pytest
from api_server import login

from tasks.config import PipelineConfig
from tasks.layout import model_layout, run_layout
from tasks.storage import put_bytes

pytestmark = pytest.mark.slow

DAG = "image_classifier_retrain"
# Who may read the retrain DAG sees its outputs; everyone else is refused.
CALLERS = {None: 401, "outsider": 403, "viewer": 200, "user": 200, "op": 200, "admin": 200}


def fetch(url: str, token: str | None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers by lower-case name, body) of a GET, redirects followed."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, lower_case(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, lower_case(error.headers), error.read()


def lower_case(headers) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


@pytest.fixture(scope="module")
def night(gate_failure_night, s3_endpoint):
    """The gate-failure night's run, with a model file and a script planted where it may show."""
    from tasks.storage import make_client

    s3 = make_client(s3_endpoint)
    night, _ = gate_failure_night
    config = PipelineConfig(bucket=night.bucket, model_name=night.model_name)
    reports = run_layout(config, night.run_id).reports
    put_bytes(s3, reports.join("planted.js"), b"alert(document.cookie)", "text/javascript")
    put_bytes(
        s3,
        reports.join("planted.svg"),
        b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
    )
    put_bytes(s3, model_layout(config).version(1).model, b"weights")
    return night, reports.key, config


def routes(api_server: str, run_id: str, reports: str) -> list[str]:
    run = f"{api_server}/retrain/runs/{DAG}/{urllib.parse.quote(run_id, safe='')}"
    return [
        f"{run}/report",
        f"{run}/files/{reports}/night_report.html",
        f"{run}/go/data-docs",
        f"{api_server}/retrain/models",
    ]


@pytest.mark.parametrize("caller", list(CALLERS), ids=[str(caller) for caller in CALLERS])
def test_every_route_for_every_caller(api_server, night, caller):
    run, reports, _ = night
    token = login(api_server, caller) if caller else None
    for url in routes(api_server, run.run_id, reports):
        status, headers, body = fetch(url, token)
        assert status == CALLERS[caller], (url, body[:200])
        if status == 200:
            assert headers["x-content-type-options"] == "nosniff", url
            policy = headers["content-security-policy"]
            assert "sandbox" in policy and "allow-scripts" not in policy and "default-src 'none'" in policy


def test_only_the_listed_kinds_are_served_and_never_model_weights(api_server, night):
    run, reports, config = night
    token = login(api_server, "viewer")
    base = f"{api_server}/retrain/runs/{DAG}/{urllib.parse.quote(run.run_id, safe='')}/files"
    status, _, body = fetch(f"{base}/{reports}/planted.js", token)
    assert status == 403 and b"not served here" in body
    status, _, body = fetch(f"{base}/{model_layout(config).version(1).model.key}", token)
    assert status == 403 and b".keras" in body
    # An SVG is served, as an image that cannot run its script in the UI's origin.
    status, headers, _ = fetch(f"{base}/{reports}/planted.svg", token)
    assert status == 200 and headers["content-type"] == "image/svg+xml"
    assert "allow-scripts" not in headers["content-security-policy"]


def test_an_object_over_the_cap_is_refused_not_loaded(api_server, night, s3):
    from tasks.artifacts import MAX_SERVED_BYTES

    run, _, config = night
    large = run_layout(config, run.run_id).reports.join("large.json")
    put_bytes(s3, large, b" " * (MAX_SERVED_BYTES + 1), "application/json")
    token = login(api_server, "viewer")
    url = f"{api_server}/retrain/runs/{DAG}/{urllib.parse.quote(run.run_id, safe='')}/files/{large.key}"
    status, _, body = fetch(url, token)
    assert status == 413 and b"read it from S3" in body
