"""Step 7: publish a blessed model as a new immutable version, then move the production pointer.

Layout under `models/<model_name>/`:
  <version>/model.keras, labels.json, evaluation.json, blessing.json, history.json,
            confusion_matrix.png, model_card.json, model_card.md, deployment.json,
            serving/<version>/ (TensorFlow SavedModel that TF Serving loads),
            _COMPLETE (written last)
  production.json   the pointer consumers read; written only after the version is complete
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from tasks.config import PipelineConfig
from tasks.model_card import build_card, card_markdown
from tasks.registry import MARKER, pointer_from_card
from tasks.storage import (
    S3Client,
    S3Uri,
    WriteConflictError,
    copy_object,
    exists,
    get_json,
    head_etag,
    list_folders,
    put_bytes,
    put_json,
    put_json_if,
)

log = logging.getLogger(__name__)

COPIED_FROM_ATTEMPT = (
    "model.keras",
    "evaluation.json",
    "blessing.json",
    "history.json",
    "confusion_matrix.png",
)


def export_for_serving(client: S3Client, model_uri: S3Uri, target: S3Uri) -> None:
    """A TensorFlow SavedModel (signature `serving_default`) in the numbered-folder layout that
    TensorFlow Serving polls: point its model base path at `<version>/serving/`."""
    import tempfile
    from pathlib import Path

    import keras

    from tasks.storage import download_file, upload_tree

    with tempfile.TemporaryDirectory(prefix="serving-") as scratch:
        model = keras.models.load_model(download_file(client, model_uri, Path(scratch) / "model.keras"))
        model.export(str(Path(scratch) / "saved_model"), format="tf_saved_model", verbose=False)
        upload_tree(client, Path(scratch) / "saved_model", target)


@dataclass(frozen=True)
class Candidate:
    """What the evaluation of one attempt hands to deploy."""

    attempt: int
    attempt_uri: str
    model_uri: str
    evaluation_uri: str
    accuracy: float
    macro_f1: float


@dataclass(frozen=True)
class Publication:
    model_name: str
    version: int
    version_uri: str
    pointer_uri: str
    accuracy: float


def model_root(config: PipelineConfig) -> S3Uri:
    return S3Uri(config.bucket, f"{config.models_prefix}{config.model_name}")


def pointer_uri(config: PipelineConfig) -> S3Uri:
    return model_root(config).join("production.json")


def current_champion(client: S3Client, config: PipelineConfig) -> dict | None:
    """The production pointer, if there is one the candidate can be compared with (same
    classes in the same order, same input size)."""
    pointer = pointer_uri(config)
    if not exists(client, pointer):
        return None
    champion = get_json(client, pointer)
    comparable = (
        champion.get("class_names") == list(config.class_names)
        and champion.get("image_size") == config.image_size
    )
    if not comparable:
        log.warning(
            "production v%s has other classes or input size; comparing with value thresholds only",
            champion.get("version"),
        )
        return None
    return champion


def versions(client: S3Client, config: PipelineConfig) -> list[int]:
    """Every version number ever claimed, complete or not, ascending."""
    return sorted(int(name) for name in list_folders(client, model_root(config)) if name.isdigit())


def _claim_version(client: S3Client, config: PipelineConfig, deployment: dict) -> int:
    """Reuses this run's own version if a retried deploy finds one; otherwise claims the next
    number with a create-only write of deployment.json, so two runs never share a version."""
    root = model_root(config)
    taken = versions(client, config)
    for version in reversed(taken):
        uri = root.join(str(version), "deployment.json")
        if exists(client, uri):
            existing = get_json(client, uri)
            if (existing["run_id"], existing["attempt"]) == (deployment["run_id"], deployment["attempt"]):
                log.info("deploy retried: finishing version %d of this run", version)
                return version
    version = (taken[-1] if taken else 0) + 1
    while True:
        try:
            put_json_if(
                client,
                root.join(str(version), "deployment.json"),
                {**deployment, "version": version},
                expected_etag=None,
            )
            return version
        except WriteConflictError:
            version += 1


def publish(
    client: S3Client,
    config: PipelineConfig,
    candidate: Candidate,
    run_id: str,
    dataset_fingerprint: str,
    dataset_uri: str,
) -> Publication:
    """Copies the candidate into a new version, marks it complete, then updates the pointer."""
    deployment = {
        "run_id": run_id,
        "attempt": candidate.attempt,
        "dataset_fingerprint": dataset_fingerprint,
        "source_uri": candidate.attempt_uri,
        "accuracy": candidate.accuracy,
        "macro_f1": candidate.macro_f1,
    }
    version = _claim_version(client, config, deployment)
    version_uri = model_root(config).join(str(version))
    attempt = S3Uri.parse(candidate.attempt_uri)
    for name in COPIED_FROM_ATTEMPT:
        copy_object(client, attempt.join(name), version_uri.join(name))
    put_json(client, version_uri.join("labels.json"), list(config.class_names))
    card = build_card(
        model_name=config.model_name,
        version=version,
        run_id=run_id,
        attempt=candidate.attempt,
        params=config.to_params(),
        dataset=get_json(client, S3Uri.parse(dataset_uri)),
        train_result=get_json(client, attempt.join("train_result.json")),
        evaluation=get_json(client, attempt.join("evaluation.json")),
        blessing=get_json(client, attempt.join("blessing.json")),
    )
    put_json(client, version_uri.join("model_card.json"), card)
    put_bytes(client, version_uri.join("model_card.md"), card_markdown(card).encode(), "text/markdown")
    export_for_serving(client, attempt.join("model.keras"), version_uri.join("serving", str(version)))
    put_bytes(client, version_uri.join(MARKER), b"")
    pointer = pointer_uri(config)
    put_json_if(
        client,
        pointer,
        pointer_from_card(card, version_uri, datetime.now(UTC).isoformat()),
        expected_etag=head_etag(client, pointer),
    )
    log.info(
        "published %s version %d (test accuracy %.4f); pointer %s",
        config.model_name,
        version,
        candidate.accuracy,
        pointer,
    )
    return Publication(config.model_name, version, str(version_uri), str(pointer), candidate.accuracy)
