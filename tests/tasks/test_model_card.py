"""The model card deploy publishes: its page for people says what the JSON says, beside its
pictures, and escapes every value (class names are S3 folder names, Params are the
triggering person's)."""

from __future__ import annotations

import html
from dataclasses import replace

from steps import judge_and_publish

from tasks.card_pages import card_html, card_markdown
from tasks.config import PipelineConfig
from tasks.layout import model_layout
from tasks.model_card import ModelCard
from tasks.storage import get_bytes, head_object


def test_deploy_publishes_the_card_as_a_page_beside_its_pictures(s3, bucket, candidate):
    config = PipelineConfig(bucket=bucket)
    judge_and_publish(s3, config, candidate, "r1")
    version = model_layout(config).version(1)
    card = ModelCard.read(s3, version.model_card)
    page = get_bytes(s3, version.model_card_page).decode()
    assert head_object(s3, version.model_card_page)["ContentType"].startswith("text/html")
    assert f"<h1>{card.model_name} version 1</h1>" in page
    assert f"<td>{card.metrics.accuracy:.4f}</td>" in page
    assert html.escape(", ".join(card.dataset.class_names)) in page
    for picture in ("training_curves.png", "confusion_matrix.png"):
        assert f"src='{picture}'" in page
        assert head_object(s3, version.file(picture)) is not None
    # The page and the Markdown are rendered from the same facts.
    for line in card_markdown(card).splitlines():
        if line.startswith("- "):
            assert html.escape(line[2:]) in page


def test_the_card_page_escapes_hostile_names(s3, bucket, candidate):
    judge_and_publish(s3, PipelineConfig(bucket=bucket), candidate, "r1")
    card = ModelCard.read(s3, model_layout(PipelineConfig(bucket=bucket)).version(1).model_card)
    hostile_data = replace(card.dataset, class_names=["<script>alert(1)</script>", "two"])
    page = card_html(replace(card, dataset=hostile_data, run_id="manual__<img src=x onerror=alert(2)>"))
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
