"""The S3 layout: the keys of a run, an attempt and a model, and no key built elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

from tasks.config import PipelineConfig
from tasks.layout import AttemptLayout, model_layout, predictions, run_layout, run_segment

ROOT = Path(__file__).resolve().parents[2]


def test_run_segment_is_a_safe_path_segment():
    segment = run_segment("manual__2026-11-28T12:16:25.497459+00:00")
    assert segment == "manual__2026-11-28T12~3A16~3A25.497459~2B00~3A00"
    assert run_segment("nightly_2026-11-28") == "nightly_2026-11-28"  # a plain id reads as it is


def test_the_keys_consumers_and_steps_rely_on():
    config = PipelineConfig(bucket="shop", model_name="cnn")
    run = run_layout(config, "scheduled__2026-01-02T02:00:00+00:00")
    segment = "scheduled__2026-01-02T02~3A00~3A00~2B00~3A00"
    assert str(run.manifest) == f"s3://shop/runs/{segment}/manifest.csv"
    assert str(run.dataset_ref) == f"s3://shop/runs/{segment}/dataset_ref.json"
    assert str(run.data_docs_index("raw")) == f"s3://shop/reports/{segment}/data_docs/raw/index.html"
    attempt = run.attempt(2)
    assert str(attempt.model) == f"s3://shop/runs/{segment}/attempt-2/model.keras"
    assert AttemptLayout.at(str(attempt.root)) == attempt
    models = model_layout(config)
    assert str(models.pointer) == "s3://shop/models/cnn/production.json"
    version = models.version(7)
    assert str(version.marker) == "s3://shop/models/cnn/7/_COMPLETE"
    assert str(version.serving_export) == "s3://shop/models/cnn/7/serving/7"
    assert str(predictions("shop", "manual__x")) == "s3://shop/predictions/manual__x.csv"


# A key built by hand: a literal path segment joined onto a URI (not str.join), an f-string or
# literal key given to S3Uri, or an s3:// URI formatted from parts.
KEY_BUILDING = re.compile(r'(?<!["\'])\.join\(\s*f?"|S3Uri\([^()]*,\s*f?"|f"s3://\{')


def test_no_module_but_the_layout_builds_s3_keys():
    allowed = {ROOT / "tasks" / "layout.py", ROOT / "tasks" / "storage.py"}
    sources = [
        *(ROOT / "tasks").rglob("*.py"),
        *(ROOT / "plugins").glob("*.py"),
        *(ROOT / "dags").glob("*.py"),
    ]
    stray = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sources
        if path not in allowed
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if KEY_BUILDING.search(line)
    ]
    assert stray == []
