"""Promotion only against the champion a night compared with: a rollback made while the night
trained is kept, and the version the night published stays, unpromoted."""

from __future__ import annotations

from dataclasses import replace

import pytest
from steps import judge_and_publish

from tasks.config import PipelineConfig
from tasks.deploy import publish_version
from tasks.layout import model_layout
from tasks.registry import ProductionMovedError, Registry
from tasks.storage import get_bytes


def test_a_rollback_made_while_the_night_trained_is_kept(s3, bucket, candidate):
    """The night judged its candidate against version 2; a person rolls back to version 1 before
    it deploys: deploy publishes version 3 but does not promote it over the rollback."""
    config = PipelineConfig(bucket=bucket)
    registry = Registry(s3, bucket, config.model_name)
    for run_id in ("run-1", "run-2"):
        judge_and_publish(s3, config, candidate, run_id)
    _, judged_against = registry.production()
    registry.rollback(1)
    rolled_back = get_bytes(s3, model_layout(config).pointer)
    with pytest.raises(ProductionMovedError, match=r"version 3 stays published but unpromoted") as raised:
        publish_version(s3, config, replace(candidate, production_etag=judged_against), run_id="run-3")
    assert "production moved to version 1 (run run-1)" in str(raised.value) and "\n" not in str(raised.value)
    assert get_bytes(s3, model_layout(config).pointer) == rolled_back
    assert [(v.version, v.complete, v.in_production) for v in registry.versions()][-1] == (3, True, False)
