"""Step 5: score an attempt's model on the fixed test split and write `evaluation.json`."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tasks.storage import S3Client, S3Uri, download_file, get_json, put_json
from tasks.train import download_shards

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evaluation:
    model_uri: str
    evaluation_uri: str
    test_images: int
    accuracy: float
    macro_f1: float


def classification_metrics(
    true_labels: np.ndarray, predicted_labels: np.ndarray, class_names: list[str]
) -> dict:
    """Accuracy, per-class and macro F1, and the confusion matrix (rows: true, columns: predicted)."""
    from sklearn.metrics import confusion_matrix, f1_score

    labels = list(range(len(class_names)))
    per_class_f1 = f1_score(true_labels, predicted_labels, labels=labels, average=None,
                            zero_division=0)
    return {
        "accuracy": float(np.mean(true_labels == predicted_labels)),
        "macro_f1": float(np.mean(per_class_f1)),
        "per_class_f1": {name: float(v) for name, v in zip(class_names, per_class_f1, strict=True)},
        "confusion_matrix": confusion_matrix(true_labels, predicted_labels, labels=labels).tolist(),
        "class_names": class_names,
    }


def evaluate(client: S3Client, dataset_uri: str, model_uri: str, output_uri: str) -> Evaluation:
    """Predicts the test split with the model and writes the metrics next to the model."""
    import keras

    from tasks.shards import read_split

    dataset = get_json(client, S3Uri.parse(dataset_uri))
    class_names = dataset["class_names"]
    with tempfile.TemporaryDirectory(prefix="evaluate-") as scratch:
        folder = Path(scratch)
        test_paths = download_shards(client, dataset["shards"]["test"], folder)
        model = keras.models.load_model(
            download_file(client, S3Uri.parse(model_uri), folder / "model.keras")
        )
        test_data = read_split(test_paths, dataset["image_size"], len(class_names), 64, cache=False)
        true_batches, predicted_batches = [], []
        for images, one_hot in test_data:
            true_batches.append(np.argmax(one_hot.numpy(), axis=1))
            predicted_batches.append(np.argmax(model.predict_on_batch(images), axis=1))
    true_labels = np.concatenate(true_batches)
    predicted_labels = np.concatenate(predicted_batches)
    metrics = classification_metrics(true_labels, predicted_labels, class_names)
    evaluation_uri = S3Uri.parse(output_uri).join("evaluation.json")
    put_json(client, evaluation_uri, {
        "model_uri": model_uri, "dataset_uri": dataset_uri,
        "test_images": len(true_labels), **metrics,
    })
    log.info("test accuracy %.4f, macro F1 %.4f on %d images; written to %s",
             metrics["accuracy"], metrics["macro_f1"], len(true_labels), evaluation_uri)
    return Evaluation(model_uri, str(evaluation_uri), len(true_labels), metrics["accuracy"],
                      metrics["macro_f1"])


def evaluation_record(evaluation: Evaluation) -> dict:
    return asdict(evaluation)
