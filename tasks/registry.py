"""The model contract consumers rely on, usable from any Python program with only boto3 and
TensorFlow: read the production pointer, list versions, load a model (only a complete one:
its `_COMPLETE` marker must exist), predict, and roll back (a pointer move with the same
conditional write the pipeline uses)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tasks.storage import (
    S3Client,
    S3Uri,
    StorageError,
    download_file,
    exists,
    get_json,
    head_etag,
    list_folders,
    put_json_if,
)

MARKER = "_COMPLETE"


@dataclass(frozen=True)
class VersionInfo:
    version: int
    complete: bool
    accuracy: float | None
    run_id: str | None
    in_production: bool


def pointer_from_card(card: dict[str, Any], version_uri: S3Uri, published_at: str) -> dict[str, Any]:
    """production.json, derived from a version's model card (so publish and rollback agree)."""
    return {
        "model_name": card["model_name"],
        "version": card["version"],
        "version_uri": str(version_uri),
        "model_uri": str(version_uri.join("model.keras")),
        "evaluation_uri": str(version_uri.join("evaluation.json")),
        "serving_uri": str(version_uri.join("serving")),
        "class_names": card["dataset"]["class_names"],
        "image_size": card["dataset"]["image_size"],
        "metrics": {key: card["metrics"][key] for key in ("accuracy", "macro_f1")},
        "run_id": card["run_id"],
        "attempt": card["attempt"],
        "dataset_fingerprint": card["dataset"]["fingerprint"],
        "published_at": published_at,
    }


class Registry:
    """The versions and production pointer of one model under `s3://bucket/models/<name>/`."""

    def __init__(self, client: S3Client, bucket: str, model_name: str, models_prefix: str = "models/"):
        self.client = client
        self.root = S3Uri(bucket, f"{models_prefix}{model_name}")
        self.pointer_uri = self.root.join("production.json")

    def pointer(self) -> dict[str, Any] | None:
        return get_json(self.client, self.pointer_uri) if exists(self.client, self.pointer_uri) else None

    def versions(self) -> list[VersionInfo]:
        pointer = self.pointer()
        found = []
        for name in sorted((n for n in list_folders(self.client, self.root) if n.isdigit()), key=int):
            version_uri = self.root.join(name)
            complete = exists(self.client, version_uri.join(MARKER))
            card = get_json(self.client, version_uri.join("model_card.json")) if complete else {}
            found.append(
                VersionInfo(
                    int(name),
                    complete,
                    card.get("metrics", {}).get("accuracy"),
                    card.get("run_id"),
                    bool(pointer and pointer["version"] == int(name)),
                )
            )
        return found

    def card(self, version: int | None = None) -> dict[str, Any]:
        return get_json(self.client, self._complete_version(version).join("model_card.json"))

    def _complete_version(self, version: int | None) -> S3Uri:
        if version is None:
            pointer = self.pointer()
            if pointer is None:
                raise StorageError(f"{self.pointer_uri}: no production model yet")
            version = pointer["version"]
        version_uri = self.root.join(str(version))
        if not exists(self.client, version_uri.join(MARKER)):
            raise StorageError(f"{version_uri}: version {version} is missing or incomplete (no {MARKER})")
        return version_uri

    def load(self, version: int | None = None) -> tuple[Any, dict[str, Any]]:
        """(keras model, model card) of a complete version, production by default."""
        import keras

        version_uri = self._complete_version(version)
        card = get_json(self.client, version_uri.join("model_card.json"))
        with tempfile.TemporaryDirectory(prefix="registry-") as scratch:
            local = download_file(self.client, version_uri.join("model.keras"), Path(scratch) / "model.keras")
            return keras.models.load_model(local), card

    def rollback(self, version: int) -> dict[str, Any]:
        """Points production at an earlier complete version; fails if another writer moved the
        pointer meanwhile (nothing is overwritten then)."""
        from datetime import UTC, datetime

        version_uri = self._complete_version(version)
        card = get_json(self.client, version_uri.join("model_card.json"))
        pointer = pointer_from_card(card, version_uri, datetime.now(UTC).isoformat())
        put_json_if(
            self.client, self.pointer_uri, pointer, expected_etag=head_etag(self.client, self.pointer_uri)
        )
        return pointer


def predict(
    model: Any, card: dict[str, Any], images: list[bytes], keys: list[str]
) -> list[tuple[str, float]]:
    """(class name, probability) per image, decoded exactly as the pipeline preprocesses."""
    from tasks.images import decode_rgb

    size = card["dataset"]["image_size"]
    batch = np.stack([decode_rgb(body, size, key) for body, key in zip(images, keys, strict=True)])
    probabilities = np.asarray(model.predict_on_batch(batch.astype(np.float32) / 255.0))
    names = card["dataset"]["class_names"]
    return [(names[int(np.argmax(row))], float(np.max(row))) for row in probabilities]
