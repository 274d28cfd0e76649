"""docs/reliability.md lists every drill the suite runs, in order, as the suite writes it."""

from __future__ import annotations

from reliability import DRILLS, HEADER, documented_drills


def test_every_drill_has_a_row_in_the_docs_table():
    assert documented_drills() == list(DRILLS)


def test_the_docs_table_has_the_columns_the_suite_writes():
    from reliability import DOCS_PATH

    assert HEADER in DOCS_PATH.read_text()
