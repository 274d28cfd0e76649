"""Step 2: the data-quality gate over the raw manifest (Great Expectations 1.x).

Row-level problems quarantine the object: it is left out and listed with its reasons in the
run's `quarantine.json`. The run goes on while the quarantined share stays within
`max_quarantine_fraction`. Dataset-level problems (too few images, a class missing or too
rare or too common) fail the run at once, each named plainly (`class eleven: 0 images <
min_images_per_class 10`). Data Docs and the validation results go to the run's reports;
the clean manifest, the one preprocess reads, beside the manifest (see tasks/layout.py).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.config import PipelineConfig
from tasks.errors import PermanentError
from tasks.expectations import Outcome, Validator, table
from tasks.layout import run_layout
from tasks.row_outcomes import OUTCOME_COLUMNS, difference, read_row_outcomes, write_row_outcomes
from tasks.run_documents import QuarantinedObject, QuarantineList
from tasks.storage import S3Client, put_csv, put_json, upload_tree

log = logging.getLogger(__name__)

# What each row-level expectation means for the object that fails it.
ROW_REASONS = {
    ("expect_column_values_to_not_be_null", "class_name"): "not under a class folder",
    ("expect_column_values_to_be_in_set", "class_name"): "unknown class",
    ("expect_column_values_to_be_in_set", "safe_key"): "unsafe key",
    ("expect_column_values_to_be_in_set", "decodable"): "undecodable",
    ("expect_column_values_to_be_in_set", "format"): "unsupported format",
    ("expect_column_values_to_be_between", "shortest_side"): "too small",
    ("expect_column_values_to_be_between", "longest_side"): "too large",
    ("expect_column_values_to_be_between", "bytes"): "too large",
    ("expect_column_values_to_be_in_set", "label_conflict"): "label conflict",
}


class DataValidationError(PermanentError, ValueError):
    """The data is not fit to train on; the message names the expectation and what was seen."""


@dataclass(frozen=True)
class GateResult:
    clean_manifest_uri: str
    class_names: list[str]
    quarantine_uri: str
    data_docs_uri: str
    images: int
    quarantined: int
    duplicates: int
    rows_checked: int = 0  # rows the row-level expectations ran on tonight
    rows_carried: int = 0  # rows whose outcome was carried from an earlier night


def with_derived_columns(manifest: pd.DataFrame) -> pd.DataFrame:
    """Adds the per-row facts the expectations test: key safety, sides, label conflicts."""
    from tasks.images import unsafe_key

    frame = manifest.copy()
    frame["safe_key"] = ~frame["key"].map(unsafe_key).astype(bool)
    frame["shortest_side"] = frame[["width", "height"]].min(axis=1, skipna=False)
    frame["longest_side"] = frame[["width", "height"]].max(axis=1, skipna=False)
    labelled = frame.dropna(subset=["sha256", "class_name"])
    classes_per_content = labelled.groupby("sha256")["class_name"].nunique()
    frame["label_conflict"] = frame["sha256"].map(classes_per_content).fillna(1).gt(1)
    return frame


def row_expectations(config: PipelineConfig) -> list[Any]:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToNotBeNull(column="key"),
        gxe.ExpectColumnValuesToBeUnique(column="key"),
        gxe.ExpectColumnValuesToNotBeNull(column="class_name"),
        gxe.ExpectColumnValuesToBeInSet(column="class_name", value_set=list(config.class_names)),
        gxe.ExpectColumnValuesToBeInSet(column="safe_key", value_set=[True]),
        gxe.ExpectColumnValuesToBeInSet(column="decodable", value_set=[True]),
        gxe.ExpectColumnValuesToBeInSet(column="format", value_set=list(config.allowed_formats)),
        gxe.ExpectColumnValuesToBeBetween(column="shortest_side", min_value=config.min_image_side),
        gxe.ExpectColumnValuesToBeBetween(column="longest_side", max_value=config.max_image_side),
        gxe.ExpectColumnValuesToBeBetween(column="bytes", max_value=config.max_image_bytes),
        gxe.ExpectColumnValuesToBeInSet(column="label_conflict", value_set=[False]),
    ]


def quarantine_reasons(frame: pd.DataFrame, outcomes: list[Outcome]) -> dict[str, list[str]]:
    """key -> reasons, from the failing rows of each row-level expectation."""
    detail = dict(zip(frame["key"], frame["reason"], strict=True))
    reasons: dict[str, list[str]] = {}
    for outcome in outcomes:
        reason = ROW_REASONS.get((outcome.expectation, outcome.column or ""))
        for key in outcome.unexpected_keys if reason else []:
            text = str(reason)
            if reason == "undecodable" and isinstance(detail.get(key), str):
                text = f"undecodable: {detail[key]}"
            reasons.setdefault(key, []).append(text)
    return reasons


def class_counts(clean_per_class: pd.Series, config: PipelineConfig) -> pd.DataFrame:
    """Per class: clean images and their share; the dataset-level expectations run on these."""
    counts = clean_per_class.reindex(list(config.class_names), fill_value=0)
    total = max(int(counts.sum()), 1)
    return pd.DataFrame(
        {"class_name": counts.index, "images": counts.to_numpy(), "share": counts.to_numpy() / total}
    )


def dataset_expectations(config: PipelineConfig) -> list[Any]:
    """The expectations on the clean manifest's per-class counts (class_counts)."""
    import great_expectations.expectations as gxe

    low, high = config.class_share_bounds()
    return [
        gxe.ExpectColumnSumToBeBetween(
            column="images", min_value=config.min_images, meta={"setting": "min_images"}
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="images",
            min_value=config.min_images_per_class,
            meta={"subject": "class", "setting": "min_images_per_class"},
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="share",
            min_value=round(low, 4),
            max_value=round(high, 4),
            meta={"subject": "class", "setting": "share bound from max_class_imbalance"},
        ),
    ]


def _quarantine_failure(quarantine: dict[str, list[str]], total: int, allowed: float) -> str:
    by_reason = pd.Series([r.split(":")[0] for rs in quarantine.values() for r in rs]).value_counts()
    summary = ", ".join(f"{reason} {count}" for reason, count in by_reason.items())
    return (
        f"quarantined {len(quarantine)} of {total} objects ({len(quarantine) / total:.1%}) > "
        f"{allowed:.1%} allowed (max_quarantine_fraction): {summary}; see quarantine.json"
    )


@dataclass(frozen=True)
class Verdict:
    """What the gate decided, whether it checked every row tonight or carried them all."""

    quarantine: dict[str, list[str]]  # key -> reasons
    duplicates: list[str]  # keys left out as exact duplicates of a kept row
    outcomes: list[Outcome]
    failure: str | None  # one line when the data is not fit to train on


@dataclass
class GateFindings:
    clean: pd.DataFrame
    verdict: Verdict
    rows_checked: int = 0
    stale_slots: set[int] = field(default_factory=set)  # stored row outcomes to rewrite

    @property
    def quarantine(self) -> dict[str, list[str]]:
        return self.verdict.quarantine

    @property
    def duplicates(self) -> list[str]:
        return self.verdict.duplicates

    @property
    def outcomes(self) -> list[Outcome]:
        return self.verdict.outcomes

    @property
    def failure(self) -> str | None:
        return self.verdict.failure


def dataset_verdict(
    validator: Validator,
    config: PipelineConfig,
    row_outcomes: list[Outcome],
    clean_per_class: pd.Series,
    quarantine: dict[str, list[str]],
    objects: int,
) -> tuple[list[Outcome], str | None]:
    """Runs the dataset-level expectations on the clean images per class and judges the
    quarantined share: every outcome, and the failure line when the data is unfit."""
    outcomes = row_outcomes + validator.run(
        "raw_manifest_classes",
        class_counts(clean_per_class, config),
        dataset_expectations(config),
        key_column="class_name",
    )
    dataset_failures = [o for o in outcomes if not o.success and o.suite != "raw_manifest_rows"]
    if dataset_failures:
        return outcomes, "data quality gate failed: " + "; ".join(o.describe() for o in dataset_failures)
    if len(quarantine) > config.max_quarantine_fraction * objects:
        return outcomes, _quarantine_failure(quarantine, objects, config.max_quarantine_fraction)
    return outcomes, None


def gate_manifest(
    manifest: pd.DataFrame,
    config: PipelineConfig,
    validator: Validator,
    stored: pd.DataFrame | None = None,
) -> GateFindings:
    """Validates a manifest: quarantines bad rows, drops exact duplicates, checks the rest.
    The row-level expectations run on the rows that differ from the `stored` outcomes of an
    earlier night (tasks/row_outcomes.py); the other rows carry theirs."""
    frame = with_derived_columns(manifest)
    tonight = difference(frame, stored if stored is not None else pd.DataFrame(columns=OUTCOME_COLUMNS))
    checked = frame[tonight.check]
    row_outcomes = validator.run("raw_manifest_rows", checked, row_expectations(config), key_column="key")
    quarantine = {**tonight.carried, **quarantine_reasons(checked, row_outcomes)}
    kept = frame[~frame["key"].isin(quarantine)]
    duplicated = kept.duplicated(subset=["sha256", "class_name"], keep="first")
    clean = kept[~duplicated]
    outcomes, failure = dataset_verdict(
        validator, config, row_outcomes, clean["class_name"].value_counts(), quarantine, len(frame)
    )
    return GateFindings(
        clean[manifest.columns],
        Verdict(quarantine, kept.loc[duplicated, "key"].tolist(), outcomes, failure),
        len(checked),
        tonight.stale_slots,
    )


def gate_raw_manifest(
    client: S3Client,
    config: PipelineConfig,
    manifest_uri: str,
    run_id: str,
    manifest: pd.DataFrame | None = None,
) -> GateResult:
    """Runs the gate and writes its outputs (Data Docs, validation results, quarantine.json,
    the clean manifest), also when it fails; then raises DataValidationError on failure.
    `config.class_names` are the run's resolved classes (see tasks/collect.py)."""
    return gate_and_write(client, config, manifest_uri, run_id, manifest)[0]


def gate_and_write(
    client: S3Client,
    config: PipelineConfig,
    manifest_uri: str,
    run_id: str,
    manifest: pd.DataFrame | None = None,
) -> tuple[GateResult, GateFindings]:
    """gate_raw_manifest, also handing back what it found (the clean rows among it).
    `manifest` is the frame of `manifest_uri` where the caller holds it already."""
    from tasks.collect import read_manifest

    if manifest is None:
        manifest = read_manifest(client, manifest_uri)
    with tempfile.TemporaryDirectory(prefix="data-docs-") as scratch:
        validator = Validator(Path(scratch))
        findings = gate_manifest(manifest, config, validator, read_row_outcomes(client, config))
        upload_tree(client, Path(scratch), run_layout(config, run_id).data_docs("raw"))
    write_row_outcomes(client, config, manifest, findings.quarantine, findings.stale_slots)
    verdict = findings.verdict
    report_gate(
        client, config, run_id, manifest_uri, validator, verdict, len(manifest), findings.rows_checked
    )
    layout = run_layout(config, run_id)
    put_csv(client, layout.clean_manifest, findings.clean)
    result = gate_result(config, run_id, verdict, len(findings.clean), findings.rows_checked, len(manifest))
    return result, findings


def report_gate(
    client: S3Client,
    config: PipelineConfig,
    run_id: str,
    manifest_uri: str,
    validator: Validator,
    verdict: Verdict,
    objects: int,
    rows_checked: int,
    gated_by_run: str = "",
) -> None:
    """Writes the validation results and quarantine.json and logs the verdict (the Data Docs
    are uploaded by the caller); raises DataValidationError when the data is unfit.
    `gated_by_run`: the run that gated this manifest, when not this one (tasks/gated_nights.py)."""
    layout = run_layout(config, run_id)
    put_json(client, layout.validation_results("raw"), validator.gate_results().to_json())
    quarantined = [QuarantinedObject(key, reasons) for key, reasons in sorted(verdict.quarantine.items())]
    put_json(
        client,
        layout.quarantine,
        QuarantineList(
            manifest_uri=manifest_uri,
            quarantined=quarantined,
            duplicates_dropped=verdict.duplicates,
            rows_checked=rows_checked,
            rows_carried=objects - rows_checked,
            gated_by_run=gated_by_run or run_id,
        ).to_json(),
    )
    for key, reasons in sorted(verdict.quarantine.items()):
        log.warning("%s: %s; quarantined", key, "; ".join(reasons))
    log.info(
        "data-quality gate on %d objects (%d checked tonight, %d carried their outcome): "
        "%d quarantined, %d exact duplicates dropped\n%s\nData Docs: %s",
        objects,
        rows_checked,
        objects - rows_checked,
        len(verdict.quarantine),
        len(verdict.duplicates),
        table(verdict.outcomes),
        layout.data_docs_index("raw"),
    )
    if verdict.failure:
        raise DataValidationError(verdict.failure)


def gate_result(
    config: PipelineConfig, run_id: str, verdict: Verdict, images: int, rows_checked: int, objects: int
) -> GateResult:
    layout = run_layout(config, run_id)
    return GateResult(
        str(layout.clean_manifest),
        list(config.class_names),
        str(layout.quarantine),
        str(layout.data_docs_index("raw")),
        images,
        len(verdict.quarantine),
        len(verdict.duplicates),
        rows_checked,
        objects - rows_checked,
    )
