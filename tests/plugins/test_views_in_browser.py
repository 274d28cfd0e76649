"""The night report and the model page in a real browser (Debian's chromium driven by
Playwright), inside the Airflow UI of a real API server, after a real night that deployed.
Screenshots go to build/ (the README's pictures come from here)."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest
from api_server import browser_page, extra_links, get, login

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"


@pytest.fixture(scope="module")
def deployed_run(champion_nights):
    """The shared chain's first night, which deployed version 1 (tests/nights.py); the chain
    went on to version 3."""
    return champion_nights.first.run_id, champion_nights.first.model_name


@pytest.fixture
def page(api_server):
    with browser_page(api_server, "admin") as (opened, _):
        yield opened


def test_the_night_report_opens_in_the_runs_tab_with_its_pictures_and_data_docs(
    api_server, deployed_run, page
):
    run_id, _ = deployed_run
    BUILD.mkdir(exist_ok=True)
    run = urllib.parse.quote(run_id, safe="")
    page.goto(f"{api_server}/dags/image_classifier_retrain/runs/{run}/plugin/night-report")
    report = page.frame_locator("iframe").first
    decision = report.locator("#decision")
    decision.wait_for(timeout=60_000)
    assert decision.inner_text() == "Deployed version 1"
    # Both data-quality gates passed on this green night, and the report says so.
    assert report.locator("span.passed").all_inner_texts() == ["passed", "passed"]
    page.screenshot(path=str(BUILD / "night-report.png"))
    accuracy = float(report.locator(".accuracy").first.inner_text())
    assert 0.5 <= accuracy <= 1
    matrix = report.locator("img[alt='Confusion matrix']")
    matrix.scroll_into_view_if_needed()
    assert matrix.evaluate("image => image.decode().then(() => image.naturalWidth)") > 0
    page.screenshot(path=str(BUILD / "night-report-attempt.png"))
    report.locator("a", has_text="expectation results (raw)").click()
    expectations = report.locator("th", has_text="Observed Value").first
    expectations.wait_for(timeout=60_000)
    page.screenshot(path=str(BUILD / "data-docs.png"))


def test_the_model_page_lists_the_version_with_its_report(api_server, deployed_run, page):
    run_id, model_name = deployed_run
    page.goto(f"{api_server}/plugin/retrain-models")
    models = page.frame_locator("iframe").first
    heading = models.locator("h2", has_text=model_name)
    heading.wait_for(timeout=60_000)
    production = models.locator("section", has=heading).locator("tr.production")
    # The chain of nights left version 3 in production; version 1 links to its night.
    assert production.first.inner_text().startswith("★ 3")
    assert models.locator("svg[aria-label='test accuracy over versions']").count() >= 1
    heading.scroll_into_view_if_needed()
    page.screenshot(path=str(BUILD / "models.png"))
    models.locator("a", has_text=run_id).click()
    models.locator("#decision").wait_for(timeout=60_000)


def test_deploy_and_evaluate_link_to_the_model_card_and_the_attempt(api_server, deployed_run):
    run_id, model_name = deployed_run
    token = login(api_server, "admin")
    card_link = extra_links(api_server, run_id, "deploy", token)["Model card"]
    status, kind, body = get(f"{api_server}{card_link}", token)
    assert (status, kind) == (200, "text/html; charset=utf-8")
    assert f"<h1>{model_name} version 1</h1>".encode() in body
    attempt_link = extra_links(api_server, run_id, "attempt_1.evaluate", token)["Curves and confusion matrix"]
    status, kind, body = get(f"{api_server}{attempt_link}", token)
    assert (status, kind) == (200, "text/html; charset=utf-8") and b"id='attempt-1'" in body
