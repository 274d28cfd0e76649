"""The blessing rules as a table: first model, pass, fail on value, fail on change, none set."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tasks.blessing import BlessingConfigError, bless
from tasks.records import ChampionScore
from tasks.run_documents import BlessingDocument, CandidateScores

CANDIDATE = CandidateScores(1, "s3://b/m.keras", accuracy=0.95, macro_f1=0.94)
CHAMPION = ChampionScore(4, "s3://b/4.keras", accuracy=0.96, macro_f1=0.95)


@pytest.mark.parametrize(
    ("champion", "min_accuracy", "min_f1", "max_regression", "blessed", "reason"),
    [
        (None, 0.90, None, 0.0, True, "no champion yet, value thresholds only"),
        (replace(CHAMPION, accuracy=0.93, macro_f1=0.92), 0.90, None, 0.0, True, "champion v4 had 0.9300"),
        (None, 0.97, None, 0.0, False, "accuracy 0.9500 < 0.9700"),
        (None, 0.90, 0.945, 0.0, False, "macro_f1 0.9400 < 0.9450"),
        (CHAMPION, 0.90, None, 0.0, False, "accuracy 0.9500 < 0.9600 (champion minus margin)"),
        (CHAMPION, 0.90, None, 0.02, True, "champion v4 had 0.9600"),
        (CHAMPION, None, None, 0.0, False, "champion minus margin"),
    ],
    ids=["first-model", "pass", "fail-value", "fail-f1", "fail-change", "within-margin", "change-only"],
)
def test_blessing_rules(champion, min_accuracy, min_f1, max_regression, blessed, reason):
    blessing = bless(
        CANDIDATE, champion, min_accuracy=min_accuracy, min_macro_f1=min_f1, max_regression=max_regression
    )
    assert blessing.blessed is blessed
    assert reason in blessing.reason
    assert blessing.baseline == champion
    document = blessing.to_json()
    assert BlessingDocument.from_json(document) == blessing
    assert {check["metric"] for check in document["checks"]} <= {"accuracy", "macro_f1"}
    assert all(
        set(check) == {"metric", "kind", "value", "threshold", "passed"} for check in document["checks"]
    )


def test_no_thresholds_at_all_is_a_configuration_error():
    with pytest.raises(BlessingConfigError, match="refusing to bless"):
        bless(CANDIDATE, None, min_accuracy=None, min_macro_f1=None, max_regression=0.0)
    with pytest.raises(BlessingConfigError):
        bless(CANDIDATE, CHAMPION, min_accuracy=None, min_macro_f1=None, max_regression=None)
