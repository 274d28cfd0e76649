"""The gate's rules on manifests (no S3): derived columns, reasons, dataset-level failures."""

from __future__ import annotations

import pandas as pd

from tasks.collect import MANIFEST_COLUMNS
from tasks.config import PipelineConfig
from tasks.expectations import Validator, table
from tasks.validate import gate_manifest, with_derived_columns

CONFIG = PipelineConfig(
    class_names=("cat", "dog"), min_images=4, min_images_per_class=2, max_quarantine_fraction=0.5
)


def manifest(rows: list[tuple[str, str | None, str]]) -> pd.DataFrame:
    """(key, class_name, sha256) rows of 32x32 decodable PNGs."""
    return pd.DataFrame(
        [
            {
                "key": key,
                "class_name": name,
                "extension": ".png",
                "bytes": 100,
                "etag": "e",
                "last_modified": "2026-01-01T00:00:00+00:00",
                "sha256": sha,
                "decodable": True,
                "format": "PNG",
                "width": 32,
                "height": 32,
                "mode": "RGB",
                "channels": 3,
                "reason": None,
            }
            for key, name, sha in rows
        ],
        columns=MANIFEST_COLUMNS,
    )


GOOD = [(f"raw/{c}/{i}.png", c, f"{c}{i}") for c in ("cat", "dog") for i in range(3)]


def test_derived_columns_flag_conflicts_and_unsafe_keys():
    extra = [("raw/dog/x.png", "dog", "cat0"), ("raw/../y.png", "cat", "z")]
    frame = with_derived_columns(manifest([*GOOD, *extra]))
    assert frame.loc[frame["key"] == "raw/cat/0.png", "label_conflict"].item()
    assert not frame.loc[frame["key"] == "raw/cat/1.png", "label_conflict"].item()
    assert not frame.loc[frame["key"] == "raw/../y.png", "safe_key"].item()
    assert frame["shortest_side"].tolist()[0] == 32


def test_a_clean_manifest_passes_and_writes_data_docs(tmp_path):
    findings = gate_manifest(manifest(GOOD), CONFIG, Validator(tmp_path))
    assert findings.failure is None
    assert len(findings.clean) == 6 and findings.quarantine == {} and findings.duplicates == []
    assert (tmp_path / "index.html").exists()
    assert all(outcome.success for outcome in findings.outcomes)


def test_quarantined_objects_are_left_out_until_their_share_is_too_high(tmp_path):
    rows = [*GOOD, ("raw/bird/1.png", "bird", "b1")]
    findings = gate_manifest(manifest(rows), CONFIG, Validator(tmp_path / "a"))
    assert findings.quarantine == {"raw/bird/1.png": ["unknown class"]}
    assert findings.failure is None and len(findings.clean) == 6
    strict = PipelineConfig.from_params({**CONFIG.to_params(), "max_quarantine_fraction": 0.1})
    failure = gate_manifest(manifest(rows), strict, Validator(tmp_path / "b")).failure
    assert failure.startswith("quarantined 1 of 7 objects (14.3%) > 10.0% allowed")
    assert failure.endswith("unknown class 1; see quarantine.json")


def test_a_missing_class_is_named(tmp_path):
    findings = gate_manifest(manifest([r for r in GOOD if r[1] == "cat"]), CONFIG, Validator(tmp_path))
    assert "class dog: 0 images < min_images_per_class 2" in findings.failure
    images_row = next(
        line for line in table(findings.outcomes).splitlines() if "values_to_be_between(images)" in line
    )
    assert "1 unexpected (dog: 0)" in images_row and images_row.endswith("FAIL")


def test_objects_too_large_in_bytes_or_pixels_are_quarantined(tmp_path):
    frame = manifest([*GOOD, ("raw/cat/huge.png", "cat", "h1"), ("raw/dog/heavy.png", "dog", "h2")])
    frame.loc[frame["key"] == "raw/cat/huge.png", ["width", "height"]] = [9000, 40]
    frame.loc[frame["key"] == "raw/dog/heavy.png", "bytes"] = 30 * 2**20
    config = PipelineConfig.from_params({**CONFIG.to_params(), "max_image_side": 8192})
    findings = gate_manifest(frame, config, Validator(tmp_path))
    assert findings.quarantine == {"raw/cat/huge.png": ["too large"], "raw/dog/heavy.png": ["too large"]}
    assert findings.failure is None and len(findings.clean) == 6


def test_too_few_images_fail_the_gate_with_the_setting_named(tmp_path):
    config = PipelineConfig.from_params({**CONFIG.to_params(), "min_images": 10})
    failure = gate_manifest(manifest(GOOD), config, Validator(tmp_path)).failure
    assert failure is not None and "6 images < min_images 10" in failure, failure
