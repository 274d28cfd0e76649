"""Step 6: bless the candidate or not, and decide what follows: deploy, train again, give up.

In the manner of TFX's Evaluator: value thresholds (minimum accuracy, optionally minimum macro
F1) and a change threshold against the current production model (the champion), with every
check and a one-line reason recorded in the attempt's `blessing.json`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from enum import StrEnum

from tasks.config import ATTEMPT_GROUPS, PipelineConfig
from tasks.errors import InvalidSettingsError, PermanentError
from tasks.layout import AttemptLayout
from tasks.records import ChampionScore, Evaluation
from tasks.run_documents import AttemptTraining, BlessingDocument, CandidateScores, Check
from tasks.storage import S3Client, put_json

log = logging.getLogger(__name__)

BLESSED_METRICS = ("accuracy", "macro_f1")


class BlessingConfigError(InvalidSettingsError):
    """No threshold is configured: refusing to bless rather than passing silently."""


class Verdict(StrEnum):
    DEPLOY = "deploy"
    RETRAIN = "retrain"
    GIVE_UP = "give_up"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str
    blessing_uri: str = ""


def bless(
    candidate: CandidateScores,
    champion: ChampionScore | None,
    *,
    min_accuracy: float | None,
    min_macro_f1: float | None = None,
    max_regression: float | None = 0.0,
) -> BlessingDocument:
    """Applies the value thresholds, and the change threshold when there is a champion (the
    document has no `training` yet: bless_attempt adds it)."""
    value_thresholds = {"accuracy": min_accuracy, "macro_f1": min_macro_f1}
    if all(threshold is None for threshold in value_thresholds.values()) and (
        champion is None or max_regression is None
    ):
        raise BlessingConfigError(
            "no blessing threshold configured (min_test_accuracy, min_macro_f1 or, with a "
            "champion, max_regression); refusing to bless"
        )
    checks = [
        Check(metric, "value", score, threshold, score >= threshold)
        for metric, threshold in value_thresholds.items()
        if threshold is not None
        for score in [getattr(candidate, metric)]
    ]
    if champion is not None and max_regression is not None:
        checks += [
            Check(metric, "change", score, floor, score >= floor)
            for metric in BLESSED_METRICS
            for score, floor in [(getattr(candidate, metric), getattr(champion, metric) - max_regression)]
        ]
    failed = [check for check in checks if not check.passed]
    if failed:
        reason = "; ".join(
            f"{c.metric} {c.value:.4f} < {c.threshold:.4f}"
            + (" (champion minus margin)" if c.kind == "change" else "")
            for c in failed
        )
    else:
        reason = f"accuracy {candidate.accuracy:.4f} meets every threshold" + (
            f"; champion v{champion.version} had {champion.accuracy:.4f}"
            if champion
            else "; no champion yet, value thresholds only"
        )
    return BlessingDocument(not failed, reason, candidate, champion, checks)


def next_step(blessed: bool, blessing_reason: str, attempt: int, max_attempts: int) -> Decision:
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


def training_summary(client: S3Client, attempt: AttemptLayout, number: int) -> AttemptTraining:
    """What the attempt trained (for a retry: what it changed) and which epoch it published."""
    from tasks.train import TrainRequest, TrainResult, describe_attempt

    result = TrainResult.read(client, attempt.train_result)
    request = TrainRequest.from_json(result.request)
    return AttemptTraining(
        attempt=describe_attempt(request, number),
        epochs_trained=result.epochs_trained,
        kept_epoch=result.kept_epoch,
    )


def blessing_of(evaluation: Evaluation, config: PipelineConfig) -> BlessingDocument:
    """The run's thresholds applied to an evaluated attempt."""
    return bless(
        CandidateScores(evaluation.attempt, evaluation.model_uri, evaluation.accuracy, evaluation.macro_f1),
        evaluation.champion,
        min_accuracy=config.min_test_accuracy,
        min_macro_f1=config.min_macro_f1,
        max_regression=config.max_regression,
    )


def bless_attempt(client: S3Client, config: PipelineConfig, evaluation: Evaluation) -> Decision:
    """Blesses an evaluated attempt, writes its blessing.json, and says what the run does next."""
    blessing = blessing_of(evaluation, config)
    attempt_layout = AttemptLayout.at(evaluation.attempt_uri)
    blessing_uri = attempt_layout.blessing
    put_json(
        client,
        blessing_uri,
        replace(blessing, training=training_summary(client, attempt_layout, evaluation.attempt)).to_json(),
    )
    attempts = min(config.max_attempts, ATTEMPT_GROUPS)
    decision = next_step(blessing.blessed, blessing.reason, evaluation.attempt, attempts)
    log.info("%s (%s)", decision.reason, blessing_uri)
    return Decision(decision.verdict, decision.reason, str(blessing_uri))


class NoAttemptBlessed(PermanentError):
    """The night gave up and fail_on_give_up is set: the run fails (production is untouched)."""


def give_up(evaluations: list[Evaluation], config: PipelineConfig) -> str:
    """The give-up reason; raised as NoAttemptBlessed when the run should fail for it."""
    reason = give_up_reason(evaluations, config)
    if config.fail_on_give_up:
        raise NoAttemptBlessed(reason)
    return reason


def give_up_reason(evaluations: list[Evaluation], config: PipelineConfig) -> str:
    """One line for on-call: the best attempt and each rule that refused it (a value threshold,
    or the comparison with the champion), as its blessing.json says."""
    best = max(evaluations, key=lambda evaluation: evaluation.accuracy)
    refused = blessing_of(best, config).reason
    return (
        f"no attempt was blessed: the best, attempt {best.attempt} of {len(evaluations)}, "
        f"was refused on {refused}; production model left unchanged"
    )
