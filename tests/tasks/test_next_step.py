"""The branch rule after each blessing, and the give-up line."""

from __future__ import annotations

import pytest

from tasks.blessing import Verdict, give_up_reason, next_step
from tasks.config import PipelineConfig
from tasks.records import ChampionScore, Evaluation


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


def evaluated(attempt: int, accuracy: float, macro_f1: float, champion: dict | None = None) -> Evaluation:
    attempt_uri = f"s3://b/runs/r/attempt-{attempt}"
    return Evaluation(
        attempt=attempt,
        attempt_uri=attempt_uri,
        model_uri=f"{attempt_uri}/model.keras",
        evaluation_uri=f"{attempt_uri}/evaluation.json",
        test_images=100,
        accuracy=accuracy,
        macro_f1=macro_f1,
        champion=ChampionScore.from_json(champion) if champion else None,
        production_etag=None,
    )


def test_give_up_names_the_best_attempt_the_threshold_and_production():
    reason = give_up_reason([evaluated(1, 0.81, 0.80), evaluated(2, 0.8712, 0.87)], PipelineConfig())
    assert reason == (
        "no attempt was blessed: the best, attempt 2 of 2, was refused on accuracy 0.8712 < 0.9000; "
        "production model left unchanged"
    )


def test_give_up_names_the_rule_that_refused_when_it_is_not_accuracy():
    champion = {
        "version": 4,
        "model_uri": "s3://b/models/m/4/model.keras",
        "accuracy": 0.95,
        "macro_f1": 0.95,
    }
    refused_by_f1 = give_up_reason([evaluated(1, 0.93, 0.84)], PipelineConfig(min_macro_f1=0.85))
    assert "was refused on macro_f1 0.8400 < 0.8500;" in refused_by_f1
    assert "accuracy" not in refused_by_f1.split("refused on")[1]
    refused_by_champion = give_up_reason([evaluated(1, 0.93, 0.94, champion)], PipelineConfig())
    assert (
        "refused on accuracy 0.9300 < 0.9500 (champion minus margin); macro_f1 0.9400 < 0.9500 "
        "(champion minus margin);" in refused_by_champion
    )
