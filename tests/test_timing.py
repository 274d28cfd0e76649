"""The time per test file that every run prints (tests/timing.py), and the table of the ten
slowest files that docs/testing.md keeps from a full run."""

from __future__ import annotations

import itertools
from collections import defaultdict
from types import SimpleNamespace

import timing
from timing import HEADER, ROOT, file_table, record_report

DOCS_PATH = ROOT / "docs" / "testing.md"


def test_each_file_gets_the_time_of_its_tests_set_up_call_and_tear_down(monkeypatch):
    monkeypatch.setattr(timing, "_seconds_per_file", defaultdict(float))
    monkeypatch.setattr(timing, "_tests_per_file", defaultdict(set))
    for nodeid, phase_seconds in (("tests/a.py::one", (2.0, 1.0, 0.5)), ("tests/b.py::two", (0.1, 6.0, 0.0))):
        for seconds in phase_seconds:
            record_report(SimpleNamespace(nodeid=nodeid, duration=seconds))
    record_report(SimpleNamespace(nodeid="tests/a.py::three", duration=0.5))
    table = file_table()
    assert table is not None and table.startswith(HEADER)
    assert table.splitlines()[2:] == [
        "| tests/b.py | 1 | 6 | 60.4% |",
        "| tests/a.py | 2 | 4 | 39.6% |",
        "| all | 3 | 10 | 100% |",
    ]


def test_the_docs_table_lists_ten_test_files_that_exist():
    after_header = DOCS_PATH.read_text().split(HEADER, 1)[1].splitlines()
    table = itertools.takewhile(lambda line: line.startswith("| "), after_header)
    rows = [line.split(" | ")[0].removeprefix("| ") for line in table]
    assert len(rows) == 10, rows
    assert all((ROOT / name).is_file() for name in rows), rows
