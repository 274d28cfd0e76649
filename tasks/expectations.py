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

from tasks.records import GateResults

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# GX logs every public function it registers, at INFO, on first import.
logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)


# A result document as Great Expectations returns it (an expectation's `result`, a suite run's
# summary): GX's own JSON, read by key where a failure is described.
GxResult = dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    suite: str
    expectation: str
    column: str | None
    success: bool
    observed: str
    unexpected_keys: list[str] = field(default_factory=list)
    unexpected_values: list[Any] = field(default_factory=list)  # beside unexpected_keys
    bounds: dict[str, float] = field(default_factory=dict)  # min_value / max_value, if any
    # From the expectation's meta: what a failing key is ("class") and the setting behind
    # the bound ("min_images_per_class"), so a failure reads in the user's terms.
    subject: str | None = None
    setting: str | None = None

    @property
    def name(self) -> str:
        return f"{self.expectation}({self.column})" if self.column else self.expectation

    def describe(self) -> str:
        """One line for the failure message, naming each failing value and the bound it
        missed (`class eleven: 0 images < min_images_per_class 10`) where the expectation
        says what its keys are; else suite, expectation, observed value and failing keys."""
        if self.bounds and (self.subject or self.setting):
            return "; ".join(self._plainly())
        keys = self.unexpected_keys[:5]
        return f"{self.suite}: {self.name}: observed {self.observed}" + (
            f" for {', '.join(keys)}" if keys else ""
        )

    def _plainly(self) -> list[str]:
        setting = f"{self.setting} " if self.setting else ""
        pairs = list(zip(self.unexpected_keys, self.unexpected_values, strict=False))[:5]
        if not pairs:  # a table-level expectation: the observed value is the whole table's
            pairs = [("", self.observed)]
        lines = []
        for key, value in pairs:
            low, high = self.bounds.get("min_value"), self.bounds.get("max_value")
            below = low is not None and _number(value) < low
            sign, bound = ("<", low) if below else (">", high)
            who = f"{self.subject} {key}: " if self.subject and key else ""
            noun = self.column or self.subject or "rows"
            lines.append(f"{who}{_plain(value)} {noun} {sign} {setting}{_plain(bound)}")
        return lines


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _observed(result: GxResult, key_column: str | None = None) -> str:
    if "unexpected_count" in result:
        rows = result.get("unexpected_index_list") or []
        if key_column and rows:
            shown = ", ".join(
                f"{str(row.get(key_column))[:16]}: {_plain(value)}"
                for row in rows[:3]
                for column, value in row.items()
                if column != key_column
            )
        else:
            shown = ", ".join(_plain(value) for value in (result.get("partial_unexpected_list") or [])[:3])
        return f"{result['unexpected_count']} unexpected" + (f" ({shown})" if shown else "")
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
        self.results: dict[str, GxResult] = {}  # by suite name
        self.failures: list[str] = []

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
        result_format: dict[str, str | list[str]] = {"result_format": "COMPLETE" if key_column else "SUMMARY"}
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
        self.results[name] = dict(checkpoint_result.describe_dict())
        outcomes = []
        for validation in checkpoint_result.run_results.values():
            for result in validation.results:
                details = result.result or {}
                config = result.expectation_config
                if config is None:  # every result of a suite run carries its expectation
                    raise RuntimeError("a Great Expectations result without its expectation")
                column = config.kwargs.get("column")
                rows = [
                    row
                    for row in details.get("unexpected_index_list") or []
                    if key_column and key_column in row
                ]
                meta = config.meta or {}
                outcomes.append(
                    Outcome(
                        suite=name,
                        expectation=config.type,
                        column=column,
                        success=bool(result.success),
                        observed=_observed(details, key_column),
                        unexpected_keys=[str(row[key_column]) for row in rows],
                        unexpected_values=[row.get(column) for row in rows],
                        bounds={
                            bound: config.kwargs[bound]
                            for bound in ("min_value", "max_value")
                            if config.kwargs.get(bound) is not None
                        },
                        subject=meta.get("subject"),
                        setting=meta.get("setting"),
                    )
                )
        self.failures += [outcome.describe() for outcome in outcomes if not outcome.success]
        return outcomes

    def gate_results(self) -> GateResults:
        """The verdict of every suite run so far, as validation_results.json holds it."""
        passed = bool(self.results) and all(bool(run.get("success")) for run in self.results.values())
        return GateResults(success=passed, failures=list(self.failures), suites=dict(self.results))
