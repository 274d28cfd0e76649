"""Where the suite's time goes: every run prints the time spent in each test file (set-up,
call and tear-down of its tests, so a shared night's cost lands on the file of the first test
that needs it) with its share of the whole, and writes the table to build/test-times.md.
docs/testing.md keeps the ten slowest files of a full run."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TABLE_PATH = ROOT / "build" / "test-times.md"
HEADER = "| test file | tests | seconds | share |\n|---|---|---|---|\n"

_seconds_per_file: dict[str, float] = defaultdict(float)
_tests_per_file: dict[str, set[str]] = defaultdict(set)


def record_report(report: pytest.TestReport) -> None:
    """Adds one phase (set-up, call or tear-down) of one test to its file's time."""
    test_file = report.nodeid.split("::", 1)[0]
    _seconds_per_file[test_file] += report.duration
    _tests_per_file[test_file].add(report.nodeid)


def file_table() -> str | None:
    """The files, slowest first, as a Markdown table; None when no test ran."""
    total = sum(_seconds_per_file.values())
    if not total:
        return None
    rows = sorted(_seconds_per_file.items(), key=lambda item: item[1], reverse=True)
    lines = [
        f"| {name} | {len(_tests_per_file[name])} | {seconds:.0f} | {seconds / total:.1%} |"
        for name, seconds in rows
    ]
    tests = sum(len(nodes) for nodes in _tests_per_file.values())
    lines.append(f"| all | {tests} | {total:.0f} | 100% |")
    return HEADER + "\n".join(lines) + "\n"


def write_file_table() -> Path | None:
    table = file_table()
    if table is None:
        return None
    TABLE_PATH.parent.mkdir(exist_ok=True)
    TABLE_PATH.write_text(table)
    return TABLE_PATH
