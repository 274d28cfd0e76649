"""The model contract, usable from any Python program with only boto3 and TensorFlow.

Consumers read the production pointer, list versions, load a model (only a complete one: its
`_COMPLETE` marker must exist) and predict. The pipeline claims version numbers and promotes
versions through the same class, and a rollback is the same promotion: one conditional
pointer write for both, so two writers never silently overwrite each other.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tasks.layout import ModelLayout, VersionLayout
from tasks.model_card import Deployment, ModelCard
from tasks.records import Pointer
from tasks.storage import (
    PermanentStorageError,
    S3Client,
    WriteConflictError,
    download_file,
    exists,
    get_json_and_etag,
    head_etag,
    list_folders,
    put_json_if,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VersionInfo:
    version: int
    complete: bool
    accuracy: float | None
    run_id: str | None
    in_production: bool


def pointer_from_card(card: ModelCard, version: VersionLayout, published_at: str) -> Pointer:
    """production.json, derived from a version's model card (so publish and rollback agree)."""
    return Pointer(
        model_name=card.model_name,
        version=card.version,
        version_uri=str(version.root),
        model_uri=str(version.model),
        evaluation_uri=str(version.evaluation),
        serving_uri=str(version.serving_base),
        class_names=card.dataset.class_names,
        image_size=card.dataset.image_size,
        metrics={"accuracy": card.metrics.accuracy, "macro_f1": card.metrics.macro_f1},
        run_id=card.run_id,
        attempt=card.attempt,
        dataset_fingerprint=card.dataset.fingerprint,
        dataset_id=card.dataset.dataset_id,
        published_at=published_at,
        **card.lineage().to_json(),
    )


class ProductionMovedError(WriteConflictError):
    """production.json is no longer the one a promotion was decided against."""


class Registry:
    """The versions and production pointer of one model under `s3://bucket/models/<name>/`."""

    def __init__(self, client: S3Client, bucket: str, model_name: str) -> None:
        self.client = client
        self.layout = ModelLayout.of(bucket, model_name)
        self.pointer_uri = self.layout.pointer

    def pointer(self) -> Pointer | None:
        """The production pointer, or None before the first publication."""
        if not exists(self.client, self.pointer_uri):
            return None
        return Pointer.read(self.client, self.pointer_uri)

    def version_numbers(self) -> list[int]:
        """Every version number ever claimed, complete or not, ascending."""
        return sorted(int(name) for name in list_folders(self.client, self.layout.root) if name.isdigit())

    def versions(self) -> list[VersionInfo]:
        pointer = self.pointer()
        found = []
        for number in self.version_numbers():
            version = self.layout.version(number)
            complete = exists(self.client, version.marker)
            card = ModelCard.read(self.client, version.model_card) if complete else None
            found.append(
                VersionInfo(
                    number,
                    complete,
                    card.metrics.accuracy if card else None,
                    card.run_id if card else None,
                    bool(pointer and pointer.version == number),
                )
            )
        return found

    def card(self, version: int | None = None) -> ModelCard:
        return ModelCard.read(self.client, self.complete_version(version).model_card)

    def complete_version(self, version: int | None = None) -> VersionLayout:
        """The layout of a complete version (production by default); refuses an incomplete one."""
        if version is None:
            pointer = self.pointer()
            if pointer is None:
                raise PermanentStorageError(f"{self.pointer_uri}: no production model yet")
            version = pointer.version
        layout = self.layout.version(version)
        if not exists(self.client, layout.marker):
            raise PermanentStorageError(
                f"{layout.root}: version {version} is missing or incomplete (no _COMPLETE)"
            )
        return layout

    def load(self, version: int | None = None) -> tuple[Any, ModelCard]:
        """(keras model, model card) of a complete version, production by default."""
        from tasks.tensorflow_runtime import load_tensorflow

        load_tensorflow()
        import keras

        layout = self.complete_version(version)
        card = ModelCard.read(self.client, layout.model_card)
        with tempfile.TemporaryDirectory(prefix="registry-") as scratch:
            local = download_file(self.client, layout.model, Path(scratch) / "model.keras")
            return keras.models.load_model(local, compile=False), card

    def production(self) -> tuple[Pointer | None, str | None]:
        """(the production pointer, its ETag), read together; (None, None) before the first
        publication. A promotion conditional on that ETag lands only if production is still
        what was read."""
        found = get_json_and_etag(self.client, self.pointer_uri)
        if found is None:
            return None, None
        document, etag = found
        return Pointer.from_json(document, str(self.pointer_uri)), etag

    @staticmethod
    def champion_of(pointer: Pointer | None, class_names: list[str], image_size: int) -> Pointer | None:
        """The production pointer, if a candidate with these classes (in this order) and this
        input size can be compared with it."""
        if pointer is None:
            return None
        if pointer.class_names != list(class_names) or pointer.image_size != image_size:
            log.warning(
                "production v%s has other classes or input size; comparing with value thresholds only",
                pointer.version,
            )
            return None
        return pointer

    def claim_version(self, deployment: Deployment) -> VersionLayout:
        """Reuses the version of the same run and attempt if a retried deploy finds one;
        otherwise claims the next number with a create-only write of deployment.json, so two
        runs never share a version."""
        taken = self.version_numbers()
        for number in reversed(taken):
            claimed = self.layout.version(number).deployment
            if exists(self.client, claimed):
                existing = Deployment.read(self.client, claimed)
                if (existing.run_id, existing.attempt) == (deployment.run_id, deployment.attempt):
                    log.info("deploy retried: finishing version %d of this run", number)
                    return self.layout.version(number)
        number = (taken[-1] if taken else 0) + 1
        while True:
            version = self.layout.version(number)
            try:
                put_json_if(
                    self.client, version.deployment, replace(deployment, version=number).to_json(), None
                )
                return version
            except WriteConflictError:
                number += 1

    def promote(self, version: int, *, expected_etag: str | None) -> Pointer:
        """Points production at a complete version, only if production.json still has
        `expected_etag` (None: there is no production yet): a `ProductionMovedError` otherwise,
        and nothing is overwritten."""
        layout = self.complete_version(version)
        card = ModelCard.read(self.client, layout.model_card)
        pointer = pointer_from_card(card, layout, datetime.now(UTC).isoformat())
        try:
            put_json_if(self.client, self.pointer_uri, pointer.to_json(), expected_etag)
        except WriteConflictError as conflict:
            raise ProductionMovedError(f"{conflict}; version {version} was not promoted") from conflict
        return pointer

    def rollback(self, version: int) -> Pointer:
        """Points production back at an earlier complete version (as production is now: a
        person chose it; only a concurrent writer makes it fail)."""
        return self.promote(version, expected_etag=head_etag(self.client, self.pointer_uri))


def predict(model: Any, card: ModelCard, images: list[bytes], keys: list[str]) -> list[tuple[str, float]]:
    """(class name, probability) per image, decoded exactly as the pipeline preprocesses."""
    from tasks.images import decode_rgb

    size = card.dataset.image_size
    batch = np.stack([decode_rgb(body, size, key) for body, key in zip(images, keys, strict=True)])
    probabilities = np.asarray(model.predict_on_batch(batch.astype(np.float32) / 255.0))
    names = card.dataset.class_names
    return [(names[int(np.argmax(row))], float(np.max(row))) for row in probabilities]
