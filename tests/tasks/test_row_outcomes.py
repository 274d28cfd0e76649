"""Which rows the gate checks again and which carry their stored outcome (no S3)."""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import pytest

from tasks.config import PipelineConfig
from tasks.partitions import key_slot
from tasks.row_outcomes import OUTCOME_COLUMNS, difference, rules_digest


def frame(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    """(key, etag, sha256) rows of 100 bytes each."""
    return pd.DataFrame(
        {
            "key": [key for key, _, _ in rows],
            "etag": [etag for _, etag, _ in rows],
            "bytes": 100,
            "sha256": [sha for _, _, sha in rows],
        }
    ).astype({"key": "string", "etag": "string", "sha256": "string"})


def stored_from(rows: list[tuple[str, str, str]], quarantined: dict[str, list[str]]) -> pd.DataFrame:
    table = frame(rows)
    table["reasons"] = [json.dumps(quarantined[key]) if key in quarantined else "" for key in table["key"]]
    return table[OUTCOME_COLUMNS]


NIGHT_ONE = [("raw/a/1.png", "e1", "h1"), ("raw/a/2.png", "e2", "h2"), ("raw/b/3.png", "e3", "h3")]
QUARANTINED = {"raw/b/3.png": ["too small"]}


def checked(rows, stored) -> list[str]:
    tonight = frame(rows)
    return tonight.loc[difference(tonight, stored).check, "key"].tolist()


def test_without_stored_outcomes_every_row_is_checked():
    tonight = difference(frame(NIGHT_ONE), pd.DataFrame(columns=OUTCOME_COLUMNS))
    assert tonight.check.all() and tonight.carried == {}
    assert tonight.stale_slots == {key_slot(key) for key, _, _ in NIGHT_ONE}


def test_an_unchanged_night_checks_nothing_and_carries_the_quarantine():
    tonight = difference(frame(NIGHT_ONE), stored_from(NIGHT_ONE, QUARANTINED))
    assert not tonight.check.any()
    assert tonight.carried == QUARANTINED and tonight.stale_slots == set()


def test_a_changed_object_is_checked_with_every_row_of_its_old_and_new_content():
    rows = [*NIGHT_ONE, ("raw/b/4.png", "e4", "h4")]
    overwritten = [("raw/a/1.png", "e9", "h4"), *rows[1:]]
    assert checked(overwritten, stored_from(rows, {})) == ["raw/a/1.png", "raw/b/4.png"]
    # Same ETag, other size: also a change.
    resized = frame(rows).assign(bytes=[100, 100, 100, 7])
    assert difference(resized, stored_from(rows, {})).check.tolist() == [False, False, False, True]


def test_a_removed_object_rechecks_the_rows_that_shared_its_content():
    # raw/b/3.png held h1 under another class: raw/a/1.png's label conflict ends with it.
    rows = [*NIGHT_ONE[:2], ("raw/b/3.png", "e3", "h1")]
    conflicted = {"raw/a/1.png": ["label conflict"], "raw/b/3.png": ["label conflict"]}
    tonight = difference(frame(NIGHT_ONE[:2]), stored_from(rows, conflicted))
    assert tonight.check.tolist() == [True, False]
    assert tonight.carried == {} and key_slot("raw/b/3.png") in tonight.stale_slots


@pytest.mark.parametrize(
    "change",
    [
        {"class_names": ("a", "c")},
        {"allowed_formats": ("PNG",)},
        {"min_image_side": 9},
        {"max_image_side": 999},
        {"max_image_bytes": 1000},
    ],
)
def test_the_rules_digest_names_every_setting_the_row_rules_read(change):
    config = PipelineConfig(class_names=("a", "b"))
    assert rules_digest(replace(config, **change)) != rules_digest(config)
    assert rules_digest(replace(config, min_images=3, epochs=1)) == rules_digest(config)
