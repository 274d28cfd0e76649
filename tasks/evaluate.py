"""Step 5: score an attempt's model, and the production model (the champion) when there is
one, on the same fixed test split; write `evaluation.json`, the confusion matrix and the
training curves (PNG)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tasks.checkpoints import TrainingHistory
from tasks.config import PipelineConfig
from tasks.layout import AttemptLayout
from tasks.plots import confusion_matrix_png, training_curves_png
from tasks.records import DatasetRecord, Evaluation
from tasks.registry import Registry
from tasks.run_documents import ChampionScores, ClassificationMetrics, EvaluationDocument
from tasks.storage import S3Client, S3Uri, download_file, put_bytes, put_json
from tasks.tensorflow_runtime import load_tensorflow
from tasks.train import open_split

log = logging.getLogger(__name__)


def classification_metrics(
    true_labels: np.ndarray, probabilities: np.ndarray, class_names: list[str]
) -> ClassificationMetrics:
    """Accuracy; per-class and macro precision, recall and F1; one-vs-rest ROC AUC (over the
    classes present in the test split); the confusion matrix (rows true, columns predicted)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

    labels = list(range(len(class_names)))
    predicted = np.argmax(probabilities, axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        true_labels, predicted, labels=labels, zero_division=0
    )
    per_class = {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(class_names, precision, recall, f1, support, strict=True)
    }
    present = [label for label in labels if 0 < np.sum(true_labels == label) < len(true_labels)]
    roc_auc = {
        class_names[label]: float(roc_auc_score(true_labels == label, probabilities[:, label]))
        for label in present
    }
    return ClassificationMetrics(
        accuracy=float(np.mean(true_labels == predicted)),
        macro_precision=float(np.mean(precision)),
        macro_recall=float(np.mean(recall)),
        macro_f1=float(np.mean(f1)),
        macro_roc_auc_ovr=float(np.mean(list(roc_auc.values()))) if roc_auc else None,
        per_class=per_class,
        roc_auc_ovr=roc_auc,
        confusion_matrix=confusion_matrix(true_labels, predicted, labels=labels).tolist(),
        class_names=class_names,
    )


def predict_test_split(model: Any, test_data: Any) -> tuple[np.ndarray, np.ndarray]:
    """(true labels, class probabilities) of every test image."""
    true_batches, probability_batches = [], []
    for images, one_hot in test_data:
        true_batches.append(np.argmax(one_hot.numpy(), axis=1))
        probability_batches.append(np.asarray(model.predict_on_batch(images)))
    return np.concatenate(true_batches), np.concatenate(probability_batches)


def evaluate_attempt(
    client: S3Client, config: PipelineConfig, *, dataset_uri: str, attempt: int, attempt_uri: str
) -> Evaluation:
    """Scores the attempt's model, and the production model when it has the same classes and
    input size (the champion), on the dataset's test split."""
    load_tensorflow()
    import keras

    dataset = DatasetRecord.read(client, dataset_uri)
    class_names = dataset.class_names
    output = AttemptLayout.at(attempt_uri)
    model_uri = str(output.model)
    production, production_etag = Registry(client, config.bucket, config.model_name).production()
    champion = Registry.champion_of(production, class_names, dataset.image_size)
    with tempfile.TemporaryDirectory(prefix="evaluate-") as scratch:
        folder = Path(scratch)
        test_data = open_split(client, dataset, "test", folder, batch_size=64)
        scored = {}
        for role, uri in (("candidate", model_uri), ("champion", champion and champion.model_uri)):
            if uri:
                local_model = download_file(client, S3Uri.parse(uri), folder / f"{role}.keras")
                model = keras.models.load_model(local_model, compile=False)
                scored[role] = predict_test_split(model, test_data)
    true_labels, probabilities = scored["candidate"]
    metrics = classification_metrics(true_labels, probabilities, class_names)
    champion_scores = None
    if champion is not None and "champion" in scored:
        champion_metrics = classification_metrics(*scored["champion"], class_names)
        champion_scores = ChampionScores(
            champion.version,
            champion.model_uri,
            champion_metrics.accuracy,
            champion_metrics.macro_f1,
            champion_metrics,
        )
    document = EvaluationDocument(
        **metrics.to_json(),
        model_uri=model_uri,
        dataset_uri=dataset_uri,
        test_images=len(true_labels),
        champion=champion_scores,
    )
    put_json(client, output.evaluation, document.to_json())
    title = f"attempt {attempt}: accuracy {metrics.accuracy:.4f} on {len(true_labels)} images"
    put_bytes(
        client,
        output.confusion_matrix,
        confusion_matrix_png(metrics.confusion_matrix, class_names, title),
        "image/png",
    )
    history = TrainingHistory.read(client, output.history)
    curves_title = (
        f"attempt {attempt}: epoch {history.kept_epoch} of {len(history.epochs)} kept "
        f"(best {history.kept_by})"
    )
    put_bytes(client, output.training_curves, training_curves_png(history, curves_title), "image/png")
    log.info(
        "test accuracy %.4f, macro F1 %.4f on %d images%s; written to %s",
        metrics.accuracy,
        metrics.macro_f1,
        len(true_labels),
        f" (champion v{champion_scores.version}: {champion_scores.accuracy:.4f})"
        if champion_scores
        else " (no comparable champion)",
        output.evaluation,
    )
    return Evaluation(
        attempt,
        attempt_uri,
        model_uri,
        str(output.evaluation),
        len(true_labels),
        metrics.accuracy,
        metrics.macro_f1,
        champion_scores.score() if champion_scores else None,
        production_etag,
    )
