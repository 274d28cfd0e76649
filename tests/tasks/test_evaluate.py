"""Evaluation metrics, and evaluate() on a real trained model."""

from __future__ import annotations

import io
from functools import partial

import numpy as np
import pytest
from PIL import Image
from pointers import production_pointer
from steps import collect_and_build

from tasks.config import PipelineConfig
from tasks.evaluate import classification_metrics, evaluate_attempt
from tasks.layout import model_layout
from tasks.storage import S3Uri, get_json, put_json
from tasks.train import TrainRequest, run_training


def test_metrics_on_known_predictions():
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]])
    metrics = classification_metrics(np.array([0, 0, 1, 1]), probabilities, ["a", "b"])
    assert metrics.accuracy == 0.75
    assert metrics.confusion_matrix == [[1, 1], [0, 2]]
    assert metrics.per_class["a"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
    }
    assert metrics.macro_f1 == pytest.approx((2 / 3 + 0.8) / 2)
    assert metrics.macro_precision == pytest.approx((1 + 2 / 3) / 2)
    assert metrics.roc_auc_ovr == {"a": 1.0, "b": 1.0}  # probabilities rank every pair right


@pytest.mark.slow
def test_evaluate_scores_the_test_split_and_writes_evaluation_json(s3, digits_bucket):
    config = PipelineConfig(bucket=digits_bucket, image_size=32, model_name="eval-model")
    dataset = collect_and_build(s3, config, "eval")
    attempt_uri = f"s3://{digits_bucket}/runs/eval/attempt-1"
    trained = run_training(s3, TrainRequest(dataset.dataset_uri, attempt_uri, epochs=4))
    score = partial(evaluate_attempt, s3, config, dataset_uri=dataset.dataset_uri, attempt=1)
    evaluation = score(attempt_uri=attempt_uri)
    assert evaluation.champion is None
    assert evaluation.test_images == dataset.split_counts["test"]
    assert evaluation.accuracy > 0.5  # far above the 0.1 of guessing, after 4 epochs on digits
    document = get_json(s3, S3Uri.parse(evaluation.evaluation_uri))
    assert document["accuracy"] == evaluation.accuracy
    assert np.array(document["confusion_matrix"]).sum() == evaluation.test_images
    assert 0.5 < document["macro_roc_auc_ovr"] <= 1.0
    for picture in ("confusion_matrix.png", "training_curves.png"):
        png = s3.get_object(Bucket=digits_bucket, Key=f"runs/eval/attempt-1/{picture}")["Body"].read()
        assert Image.open(io.BytesIO(png)).format == "PNG", picture

    # The production model is the champion when its classes and input size match.
    classes = get_json(s3, S3Uri.parse(dataset.dataset_uri))["class_names"]
    pointer = production_pointer(
        digits_bucket, config.model_name, 7, model_uri=trained.model_uri, class_names=classes, image_size=32
    )
    put_json(s3, model_layout(config).pointer, pointer.to_json())
    against_itself = score(attempt_uri=attempt_uri)
    assert against_itself.champion is not None
    assert against_itself.champion.accuracy == against_itself.accuracy
    assert against_itself.champion.version == 7
