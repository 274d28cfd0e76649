"""Step 7: publish a blessed model as a new immutable version, then move the production pointer.

A version (see tasks/layout.py) holds model.keras, labels.json, the attempt's evaluation,
blessing, history and confusion matrix, the model card (JSON and Markdown), deployment.json,
a TensorFlow SavedModel under serving/<version>/ for TF Serving, and `_COMPLETE`, written
last. Only then does the registry move production.json to it.
"""

from __future__ import annotations

import logging

from tasks.card_pages import card_html, card_markdown
from tasks.config import PipelineConfig
from tasks.freshness import settings_digest, trainer_code_version, training_signature
from tasks.layout import AttemptLayout
from tasks.model_card import Deployment, build_card
from tasks.records import Candidate, DatasetRecord, Lineage, Publication
from tasks.registry import ProductionMovedError, Registry
from tasks.run_documents import BlessingDocument, EvaluationDocument
from tasks.storage import S3Client, S3Uri, copy_object, put_bytes, put_json
from tasks.tensorflow_runtime import load_tensorflow
from tasks.train import TrainRequest, TrainResult

log = logging.getLogger(__name__)


def export_for_serving(client: S3Client, model_uri: S3Uri, target: S3Uri) -> None:
    """A TensorFlow SavedModel (signature `serving_default`) in the numbered-folder layout that
    TensorFlow Serving polls: point its model base path at `<version>/serving/`."""
    import tempfile
    from pathlib import Path

    load_tensorflow()
    import keras

    from tasks.storage import download_file, upload_tree

    with tempfile.TemporaryDirectory(prefix="serving-") as scratch:
        model = keras.models.load_model(
            download_file(client, model_uri, Path(scratch) / "model.keras"), compile=False
        )
        model.export(str(Path(scratch) / "saved_model"), format="tf_saved_model", verbose=False)
        upload_tree(client, Path(scratch) / "saved_model", target)


def promote_as_judged(registry: Registry, version: int, candidate: Candidate, run_id: str) -> None:
    """Promotes the version only if production is still the one the candidate was judged
    against (a rollback or another run since: ProductionMovedError, in one line, and the
    version stays published, unpromoted). A retried deploy whose promotion landed is done."""
    try:
        registry.promote(version, expected_etag=candidate.production_etag)
    except ProductionMovedError:
        now = registry.pointer()
        if now is not None and (now.version, now.run_id) == (version, run_id):
            log.info("deploy retried: production already points at version %d of this run", version)
            return
        moved_to = f"version {now.version} (run {now.run_id})" if now else "no version"
        raise ProductionMovedError(
            f"production moved to {moved_to} after attempt {candidate.attempt} was compared with it; "
            f"version {version} stays published but unpromoted; the next night compares with "
            f"the production of then (or promote it with `retrain models rollback {version}`)"
        ) from None


def publish_version(
    client: S3Client, config: PipelineConfig, candidate: Candidate, *, run_id: str
) -> Publication:
    """Claims a version, copies the candidate into it, marks it complete, then promotes it."""
    registry = Registry(client, config.bucket, config.model_name)
    dataset = DatasetRecord.read(client, candidate.dataset_uri)
    attempt = AttemptLayout.at(candidate.attempt_uri)
    trained = TrainResult.read(client, attempt.train_result)
    request = TrainRequest.from_json(trained.request, str(attempt.train_result))
    lineage = Lineage(
        training_signature=training_signature(config, dataset.dataset_id),
        trainer_code=trainer_code_version(),
        settings_digest=settings_digest(config),
        parent_version=request.parent_version,
        warm_generation=request.warm_generation,
    )
    deployment = Deployment(
        run_id=run_id,
        attempt=candidate.attempt,
        dataset_fingerprint=candidate.dataset_fingerprint,
        source_uri=candidate.attempt_uri,
        accuracy=candidate.accuracy,
        macro_f1=candidate.macro_f1,
        **lineage.to_json(),
    )
    version = registry.claim_version(deployment)
    for name in AttemptLayout.PUBLISHED_FILES:
        copy_object(client, attempt.file(name), version.file(name))
    put_json(client, version.labels, dataset.class_names)
    card = build_card(
        model_name=config.model_name,
        version=version.version,
        run_id=run_id,
        attempt=candidate.attempt,
        params=config.to_params(),
        dataset=dataset,
        trained=trained,
        evaluation=EvaluationDocument.read(client, attempt.evaluation),
        blessing=BlessingDocument.read(client, attempt.blessing),
        lineage=lineage,
    )
    put_json(client, version.model_card, card.to_json())
    put_bytes(client, version.model_card_markdown, card_markdown(card).encode(), "text/markdown")
    put_bytes(client, version.model_card_page, card_html(card).encode(), "text/html; charset=utf-8")
    export_for_serving(client, attempt.model, version.serving_export)
    put_bytes(client, version.marker, b"")
    promote_as_judged(registry, version.version, candidate, run_id)
    log.info(
        "published %s version %d (test accuracy %.4f); pointer %s",
        config.model_name,
        version.version,
        candidate.accuracy,
        registry.pointer_uri,
    )
    return Publication(
        config.model_name, version.version, str(version.root), str(registry.pointer_uri), candidate.accuracy
    )
