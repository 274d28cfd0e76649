"""Runs Great Expectations 1.x suites on pandas frames and reports what they found.

One `Validator` holds an ephemeral GX context whose Data Docs site is a local folder; each
`run()` is a Checkpoint with the Data Docs action, so every suite appears in the HTML report.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# GX logs every public function it registers, at INFO, on first import.
logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)


@dataclass(frozen=True)
class Outcome:
    suite: str
    expectation: str
    column: str | None
    success: bool
    observed: str
    unexpected_keys: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.expectation}({self.column})" if self.column else self.expectation

    def describe(self) -> str:
        """One line for the failure message: suite, expectation, observed value, failing keys."""
        keys = self.unexpected_keys[:5]
        return f"{self.suite}: {self.name}: observed {self.observed}" + (
            f" for {', '.join(keys)}" if keys else ""
        )


def _observed(result: dict) -> str:
    if "unexpected_count" in result:
        sample = result.get("partial_unexpected_list") or []
        shown = ", ".join(str(value) for value in sample[:3])
        return f"{result['unexpected_count']} unexpected" + (f" (e.g. {shown})" if shown else "")
    if "observed_value" in result:
        return str(result["observed_value"])
    return "n/a"


def table(outcomes: list[Outcome]) -> str:
    """The log's summary: expectation, observed value, pass/fail."""
    lines = [f"{'expectation':<64} {'observed':<44} result"]
    for outcome in outcomes:
        verdict = "pass" if outcome.success else "FAIL"
        lines.append(f"{outcome.suite + ': ' + outcome.name:<64} {outcome.observed[:44]:<44} {verdict}")
    return "\n".join(lines)


class Validator:
    """An ephemeral GX context writing Data Docs into docs_folder."""

    def __init__(self, docs_folder: Path) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.docs_folder = docs_folder
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.context.update_data_docs_site(
            "local_site",
            {
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_folder),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        self.source = self.context.data_sources.add_pandas("pipeline")
        self.results: dict[str, Any] = {}

    def run(
        self, name: str, frame: pd.DataFrame, expectations: list[Any], key_column: str | None = None
    ) -> list[Outcome]:
        """Validates frame against expectations as the suite `name`; for failed row-level
        expectations, lists the failing rows' key_column values."""
        import great_expectations as gx
        from great_expectations.checkpoint import UpdateDataDocsAction

        batch_definition = self.source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)
        suite = self.context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch_definition, suite=suite)
        )
        result_format: dict[str, Any] = {"result_format": "COMPLETE" if key_column else "SUMMARY"}
        if key_column:
            result_format["unexpected_index_column_names"] = [key_column]
        checkpoint = self.context.checkpoints.add(
            gx.Checkpoint(
                name=name,
                validation_definitions=[definition],
                actions=[UpdateDataDocsAction(name="data_docs")],
                result_format=result_format,
            )
        )
        checkpoint_result = checkpoint.run(batch_parameters={"dataframe": frame})
        self.results[name] = checkpoint_result.describe_dict()
        outcomes = []
        for validation in checkpoint_result.run_results.values():
            for result in validation.results:
                details = result.result or {}
                keys = [
                    str(row[key_column])
                    for row in details.get("unexpected_index_list") or []
                    if key_column and key_column in row
                ]
                outcomes.append(
                    Outcome(
                        name,
                        result.expectation_config.type,
                        result.expectation_config.kwargs.get("column"),
                        bool(result.success),
                        _observed(details),
                        keys,
                    )
                )
        return outcomes
