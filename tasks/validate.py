"""Step 2: the Great Expectations gate over the run's manifest.

A failed expectation stops the run before any training time is spent, with one line that
names the expectation and what was observed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import pandas as pd

from tasks.config import PipelineConfig

log = logging.getLogger(__name__)

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# GX logs every public function it registers, at INFO, on first import.
logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)


class DataValidationError(ValueError):
    """The data is not fit to train on; the message says which expectation failed and why."""


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str
    column: str | None
    success: bool
    observed: str

    def describe(self) -> str:
        target = f"{self.expectation}({self.column})" if self.column else self.expectation
        return f"{target}: observed {self.observed}"


@dataclass(frozen=True)
class ValidationReport:
    success: bool
    row_count: int
    outcomes: list[ExpectationOutcome]

    def failures(self) -> list[ExpectationOutcome]:
        return [outcome for outcome in self.outcomes if not outcome.success]

    def table(self) -> str:
        lines = [f"{'expectation':<58} {'observed':<40} result"]
        for outcome in self.outcomes:
            name = f"{outcome.expectation}({outcome.column or ''})"
            verdict = "pass" if outcome.success else "FAIL"
            lines.append(f"{name:<58} {outcome.observed[:40]:<40} {verdict}")
        return "\n".join(lines)


def manifest_suite(config: PipelineConfig) -> Any:
    """The expectations a manifest must meet; GX is imported here, not at module import."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    classes = list(config.class_names)
    return gx.ExpectationSuite(
        name="raw_manifest",
        expectations=[
            gxe.ExpectTableRowCountToBeBetween(min_value=config.min_images),
            gxe.ExpectColumnValuesToNotBeNull(column="key"),
            gxe.ExpectColumnValuesToBeUnique(column="key"),
            gxe.ExpectColumnValuesToNotBeNull(column="class_name"),
            gxe.ExpectColumnValuesToBeInSet(column="class_name", value_set=classes),
            gxe.ExpectColumnDistinctValuesToContainSet(column="class_name", value_set=classes),
            gxe.ExpectColumnValuesToNotBeNull(column="sha256"),
            gxe.ExpectColumnValuesToBeBetween(column="bytes", min_value=1),
        ],
    )


def _observed(result: Any) -> str:
    details = result.result or {}
    if "unexpected_count" in details:
        sample = details.get("partial_unexpected_list") or []
        shown = ", ".join(str(value) for value in sample[:3])
        return f"{details['unexpected_count']} unexpected" + (f" (e.g. {shown})" if shown else "")
    if "observed_value" in details:
        return str(details["observed_value"])
    return "n/a"


def validate_manifest(manifest: pd.DataFrame, config: PipelineConfig) -> ValidationReport:
    """Runs the manifest suite on an ephemeral GX context and reports every expectation."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("manifest")
        .add_dataframe_asset("raw_manifest")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": manifest})
    )
    suite = context.suites.add(manifest_suite(config))
    results = batch.validate(suite)
    outcomes = [
        ExpectationOutcome(
            expectation=result.expectation_config.type,
            column=result.expectation_config.kwargs.get("column"),
            success=bool(result.success),
            observed=_observed(result),
        )
        for result in results.results
    ]
    return ValidationReport(bool(results.success), len(manifest), outcomes)


def gate(manifest: pd.DataFrame, config: PipelineConfig) -> ValidationReport:
    """Validates and raises DataValidationError naming every failed expectation."""
    report = validate_manifest(manifest, config)
    log.info("manifest validation (%d rows):\n%s", report.row_count, report.table())
    if not report.success:
        reasons = "; ".join(outcome.describe() for outcome in report.failures())
        raise DataValidationError(f"data quality gate failed: {reasons}")
    return report
