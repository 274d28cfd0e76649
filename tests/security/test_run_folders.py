"""Run folders that cannot collide: one S3 folder per run id, so a run named to look like
another cannot write into its folder; earlier releases' shared folders are still found, and
only for the run that wrote them."""

from __future__ import annotations

import random
import re
import time

from tasks.artifacts import report_segment
from tasks.layout import ModelLayout, legacy_run_segment, run_layout_of, run_segment
from tasks.model_card import Deployment
from tasks.night_report import NightOutcome
from tasks.retention import remove_old_runs
from tasks.storage import exists, put_bytes, put_json

SCHEDULED = "scheduled__2026-01-02T02:00:00+00:00"
LOOK_ALIKE = "scheduled__2026-01-02T02_00_00_00_00"  # a manual run named after its folder


def run_id_of(segment: str) -> str:
    """The inverse of run_segment: it exists, so no two run ids share a segment."""
    return re.sub(
        r"(?:~[0-9A-F]{2})+", lambda match: bytes.fromhex(match.group().replace("~", "")).decode(), segment
    )


def test_a_look_alike_run_id_gets_a_folder_of_its_own():
    assert legacy_run_segment(SCHEDULED) == legacy_run_segment(LOOK_ALIKE)  # the collision, before
    assert run_segment(SCHEDULED) != run_segment(LOOK_ALIKE)
    assert run_segment(LOOK_ALIKE) == LOOK_ALIKE  # a plain id reads as it is


def test_distinct_run_ids_never_share_a_segment():
    alphabet = "aZ09._-:+~ /%é€T"
    generator = random.Random(20261207)
    run_ids = {"".join(generator.choices(alphabet, k=generator.randint(1, 12))) for _ in range(20_000)}
    segments = {run_id: run_segment(run_id) for run_id in run_ids}
    assert len(set(segments.values())) == len(run_ids)
    for run_id, segment in segments.items():
        assert run_id_of(segment) == run_id
        assert re.fullmatch(r"[A-Za-z0-9._~-]+", segment), segment  # one path segment, URL-safe


def test_an_earlier_releases_report_is_found_only_for_the_run_that_wrote_it(s3, bucket):
    legacy = run_layout_of(bucket, legacy_run_segment(SCHEDULED))
    # As the earlier release wrote it: no run_id in night_report.json.
    put_json(s3, legacy.night_outcome, NightOutcome("deployed", "version 1 is production now").to_json())
    assert report_segment(s3, bucket, SCHEDULED) == legacy_run_segment(SCHEDULED)
    # A run of this release that named itself after that folder wrote there since: refused.
    written_since = NightOutcome("failed", "planted", run_id=LOOK_ALIKE)
    put_json(s3, legacy.night_outcome, written_since.to_json())
    assert report_segment(s3, bucket, SCHEDULED) == run_segment(SCHEDULED)


def test_retention_keeps_the_shared_folder_an_earlier_releases_version_came_from(s3, bucket):
    legacy = run_layout_of(bucket, legacy_run_segment(SCHEDULED))
    put_bytes(s3, legacy.manifest, b"key\n")
    version = ModelLayout.of(bucket, "old-model").version(1)
    claim = Deployment(SCHEDULED, 1, "fp", str(legacy.attempt(1).root), 0.9, 0.9, version=1)
    put_json(s3, version.deployment, claim.to_json())
    put_bytes(s3, version.marker, b"")
    time.sleep(1.1)  # S3 times have whole seconds: the shared folder is the oldest run
    for later in ("manual__newer", "manual__now"):
        put_bytes(s3, run_layout_of(bucket, run_segment(later)).manifest, b"key\n")

    remove_old_runs(s3, bucket, current_run_id="manual__now", keep_runs=1)

    assert exists(s3, legacy.manifest)
