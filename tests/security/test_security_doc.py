"""docs/security.md: every rule names its test, and every test it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_rule_names_a_test_that_exists():
    page = (ROOT / "docs" / "security.md").read_text()
    rules = re.findall(r"^\d+\. \*\*.+?(?=^\d+\. \*\*|^## )", page, flags=re.MULTILINE | re.DOTALL)
    assert len(rules) >= 9
    for rule in rules:
        assert "Held by" in rule, rule[:80]
    named = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", page)
    assert named
    for path, test in named:
        source = (ROOT / path).read_text()
        if test:
            assert f"def {test}(" in source, f"{path}::{test}"
