"""The branch rule after each evaluation."""

from __future__ import annotations

import pytest

from tasks.decide import Verdict, decide


@pytest.mark.parametrize(
    ("accuracy", "attempt", "max_attempts", "verdict"),
    [
        (0.95, 1, 3, Verdict.DEPLOY),
        (0.90, 3, 3, Verdict.DEPLOY),
        (0.80, 1, 3, Verdict.RETRAIN),
        (0.80, 2, 3, Verdict.RETRAIN),
        (0.80, 3, 3, Verdict.GIVE_UP),
        (0.80, 1, 1, Verdict.GIVE_UP),
    ],
)
def test_verdicts(accuracy, attempt, max_attempts, verdict):
    assert decide(accuracy, 0.90, attempt, max_attempts).verdict is verdict


def test_give_up_reason_names_the_numbers_and_production():
    reason = decide(0.8712, 0.90, 2, 2).reason
    assert "0.8712 < 0.9000" in reason
    assert "production model left unchanged" in reason
