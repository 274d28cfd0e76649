"""The branch after each evaluation: deploy the candidate, train again, or give up."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    DEPLOY = "deploy"
    RETRAIN = "retrain"
    GIVE_UP = "give_up"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str


def decide(accuracy: float, min_accuracy: float, attempt: int, max_attempts: int) -> Decision:
    """Deploys when the test accuracy meets the threshold; retrains while attempts remain."""
    if accuracy >= min_accuracy:
        return Decision(
            Verdict.DEPLOY,
            f"attempt {attempt}: test accuracy {accuracy:.4f} >= {min_accuracy:.4f}; deploying",
        )
    if attempt < max_attempts:
        return Decision(
            Verdict.RETRAIN,
            f"attempt {attempt}: test accuracy {accuracy:.4f} < {min_accuracy:.4f}; "
            f"training attempt {attempt + 1} of {max_attempts}",
        )
    return Decision(
        Verdict.GIVE_UP,
        f"no attempt met the threshold: attempt {attempt} of {max_attempts} reached test accuracy "
        f"{accuracy:.4f} < {min_accuracy:.4f}; production model left unchanged",
    )
