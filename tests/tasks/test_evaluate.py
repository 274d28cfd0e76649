"""Evaluation metrics, and evaluate() on a real trained model."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.collect import collect
from tasks.config import PipelineConfig
from tasks.evaluate import classification_metrics, evaluate
from tasks.preprocess import preprocess
from tasks.storage import S3Uri, get_json
from tasks.train import TrainRequest, run_training


def test_metrics_on_known_predictions():
    metrics = classification_metrics(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), ["a", "b"])
    assert metrics["accuracy"] == 0.75
    assert metrics["confusion_matrix"] == [[1, 1], [0, 2]]
    assert metrics["per_class_f1"]["a"] == pytest.approx(2 / 3)
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)


def test_evaluate_scores_the_test_split_and_writes_evaluation_json(s3, digits_bucket):
    config = PipelineConfig(bucket=digits_bucket, image_size=32)
    dataset = preprocess(s3, config, collect(s3, config, "eval").manifest_uri, "eval")
    attempt_uri = f"s3://{digits_bucket}/runs/eval/attempt-1"
    trained = run_training(s3, TrainRequest(dataset.dataset_uri, attempt_uri, epochs=4))
    evaluation = evaluate(s3, dataset.dataset_uri, trained.model_uri, attempt_uri)
    assert evaluation.test_images == dataset.split_counts["test"]
    assert evaluation.accuracy > 0.5  # far above the 0.1 of guessing, after 4 epochs on digits
    document = get_json(s3, S3Uri.parse(evaluation.evaluation_uri))
    assert document["accuracy"] == evaluation.accuracy
    assert np.array(document["confusion_matrix"]).sum() == evaluation.test_images
