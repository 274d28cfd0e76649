"""The branch after each evaluation: deploy the candidate, train again, or give up."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    DEPLOY = "deploy"
    RETRAIN = "retrain"
    GIVE_UP = "give_up"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str


def decide(blessed: bool, blessing_reason: str, attempt: int, max_attempts: int) -> Decision:
    """Deploys a blessed candidate; otherwise retrains while attempts remain."""
    if blessed:
        return Decision(Verdict.DEPLOY, f"attempt {attempt} blessed: {blessing_reason}; deploying")
    if attempt < max_attempts:
        return Decision(
            Verdict.RETRAIN,
            f"attempt {attempt} not blessed: {blessing_reason}; "
            f"training attempt {attempt + 1} of {max_attempts}",
        )
    return Decision(Verdict.GIVE_UP, f"attempt {attempt} of {max_attempts} not blessed: {blessing_reason}")


def give_up_reason(evaluations: list[dict[str, Any]], min_accuracy: float | None) -> str:
    """One line for on-call: the best attempt and how far it fell short."""
    best = max(evaluations, key=lambda evaluation: evaluation["accuracy"])
    threshold = f" < {min_accuracy:.2f}" if min_accuracy is not None else ""
    return (
        f"no attempt met the thresholds: best accuracy {best['accuracy']:.4f}{threshold} "
        f"(attempt {best['attempt']} of {len(evaluations)}); production model left unchanged"
    )
