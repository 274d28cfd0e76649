"""Whether a candidate model may replace production, in the manner of TFX's Evaluator: value
thresholds (minimum accuracy, optionally minimum macro F1) and a change threshold against the
current production model (the champion), with every check and a one-line reason recorded in
`blessing.json`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

BLESSED_METRICS = ("accuracy", "macro_f1")


class BlessingConfigError(ValueError):
    """No threshold is configured: refusing to bless rather than passing silently."""


@dataclass(frozen=True)
class Check:
    metric: str
    kind: str  # "value" (>= threshold) or "change" (>= champion - margin)
    value: float
    threshold: float
    passed: bool


@dataclass(frozen=True)
class Blessing:
    blessed: bool
    reason: str
    candidate: dict[str, Any]
    baseline: dict[str, Any] | None
    checks: list[Check] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def bless(
    candidate: dict[str, Any],
    champion: dict[str, Any] | None,
    min_accuracy: float | None,
    min_macro_f1: float | None = None,
    max_regression: float | None = 0.0,
) -> Blessing:
    """candidate/champion: dicts with `accuracy`, `macro_f1` and identity fields."""
    value_thresholds = {"accuracy": min_accuracy, "macro_f1": min_macro_f1}
    if all(threshold is None for threshold in value_thresholds.values()) and (
        champion is None or max_regression is None
    ):
        raise BlessingConfigError(
            "no blessing threshold configured (min_test_accuracy, min_macro_f1 or, with a "
            "champion, max_regression); refusing to bless"
        )
    checks = [
        Check(metric, "value", candidate[metric], threshold, candidate[metric] >= threshold)
        for metric, threshold in value_thresholds.items()
        if threshold is not None
    ]
    if champion is not None and max_regression is not None:
        checks += [
            Check(
                metric,
                "change",
                candidate[metric],
                champion[metric] - max_regression,
                candidate[metric] >= champion[metric] - max_regression,
            )
            for metric in BLESSED_METRICS
        ]
    failed = [check for check in checks if not check.passed]
    if failed:
        reason = "; ".join(
            f"{c.metric} {c.value:.4f} < {c.threshold:.4f}"
            + (" (champion minus margin)" if c.kind == "change" else "")
            for c in failed
        )
    else:
        reason = f"accuracy {candidate['accuracy']:.4f} meets every threshold" + (
            f"; champion v{champion['version']} had {champion['accuracy']:.4f}"
            if champion
            else "; no champion yet, value thresholds only"
        )
    return Blessing(not failed, reason, candidate, champion, checks)
