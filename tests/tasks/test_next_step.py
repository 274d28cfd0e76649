"""The branch rule after each blessing, and the give-up line."""

from __future__ import annotations

import pytest

from tasks.blessing import Verdict, give_up_reason, next_step


@pytest.mark.parametrize(
    ("blessed", "attempt", "max_attempts", "verdict"),
    [
        (True, 1, 3, Verdict.DEPLOY),
        (True, 3, 3, Verdict.DEPLOY),
        (False, 1, 3, Verdict.RETRAIN),
        (False, 2, 3, Verdict.RETRAIN),
        (False, 3, 3, Verdict.GIVE_UP),
        (False, 1, 1, Verdict.GIVE_UP),
    ],
)
def test_verdicts(blessed, attempt, max_attempts, verdict):
    assert next_step(blessed, "reason", attempt, max_attempts).verdict is verdict


def test_give_up_names_the_best_attempt_and_production():
    reason = give_up_reason([{"attempt": 1, "accuracy": 0.81}, {"attempt": 2, "accuracy": 0.8712}], 0.9)
    assert reason == (
        "no attempt met the thresholds: best accuracy 0.8712 < 0.90 (attempt 2 of 2); "
        "production model left unchanged"
    )
