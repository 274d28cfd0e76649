"""Hostile names from S3 through a real night and the Models page, in Chromium: object keys and
a model folder that are HTML (`<script>`, an `<img onerror>` breaking out of an attribute) show
as text; no element they describe exists in the page, and no dialog fires."""

from __future__ import annotations

import urllib.parse
import uuid

import pytest
from api_server import browser_page
from images_factory import seed_images
from nights import new_bucket

from tasks.layout import ModelLayout
from tasks.model_card import Deployment
from tasks.storage import S3Uri, make_client, put_bytes, put_json

pytestmark = pytest.mark.slow

SCRIPT = "<script>alert(1)</script>"
ATTRIBUTE_BREAKOUT = "\"'><img src=x onerror=alert(2)>"
HOSTILE_KEYS = [f"raw/zero/{SCRIPT}.png", f"raw/one/{ATTRIBUTE_BREAKOUT}.png"]


@pytest.fixture(scope="module")
def hostile_night(run_night, s3_endpoint):
    """A green night over a bucket where two objects are named as HTML (and are not images:
    the gate quarantines them, so the report lists their keys)."""
    s3 = make_client(s3_endpoint)
    bucket = new_bucket(s3, "hostile")
    seed_images(s3, bucket)
    for key in HOSTILE_KEYS:
        put_bytes(s3, S3Uri(bucket, key), b"not an image")
    night = run_night(
        bucket=bucket,
        model_name=f"hostile-{uuid.uuid4().hex[:6]}",
        image_size=32,
        epochs=1,
        class_names=["zero", "one", "two"],
        min_images=20,
        min_images_per_class=5,
        max_quarantine_fraction=0.1,
        min_test_accuracy=0.0,
    )
    assert night.state == "success", night.states
    return night


@pytest.fixture
def viewer_page(api_server):
    with browser_page(api_server, "viewer") as opened:
        yield opened


def assert_shown_as_text(frame, names: list[str]) -> None:
    for name in names:
        assert frame.get_by_text(name, exact=False).count() >= 1, name
    assert frame.locator("script").count() == 0
    assert frame.locator("img[src='x']").count() == 0


def test_hostile_keys_in_the_night_report_are_text(api_server, hostile_night, viewer_page):
    page, dialogs = viewer_page
    run = urllib.parse.quote(hostile_night.run_id, safe="")
    page.goto(f"{api_server}/dags/image_classifier_retrain/runs/{run}/plugin/night-report")
    report = page.frame_locator("iframe").first
    report.locator("#decision").wait_for(timeout=60_000)
    assert report.locator("#decision").inner_text().startswith("Deployed version 1")
    assert_shown_as_text(report, HOSTILE_KEYS)
    assert dialogs == []


def test_a_hostile_model_folder_on_the_models_page_is_text(api_server, digits_bucket, s3, viewer_page):
    page, dialogs = viewer_page
    hostile_model = f"{ATTRIBUTE_BREAKOUT}<svg onload=alert(3)>"  # a folder name: no '/'
    version = ModelLayout.of(digits_bucket, hostile_model).version(1)
    source = f"s3://{digits_bucket}/runs/planted/attempt-1"
    claim = Deployment("manual__planted", 1, "fp", source, 0.5, 0.5, version=1)
    put_json(s3, version.deployment, claim.to_json())
    page.goto(f"{api_server}/plugin/retrain-models")
    models = page.frame_locator("iframe").first
    models.locator("h2").first.wait_for(timeout=60_000)
    assert_shown_as_text(models, [hostile_model])
    assert models.locator("svg[onload]").count() == 0
    assert dialogs == []
