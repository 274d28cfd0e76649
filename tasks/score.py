"""Batch inference for consumers: classify every image under a prefix with the production
model and write one CSV of predictions (key, class_name, probability, model_version)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd

from tasks.registry import Registry, predict
from tasks.storage import S3Client, S3Uri, get_bytes, iter_objects, parallel_map, put_csv

log = logging.getLogger(__name__)

BATCH_SIZE = 64


@dataclass(frozen=True)
class ScoreResult:
    predictions_uri: str
    images: int
    model_version: int


def score_prefix(client: S3Client, registry: Registry, incoming: S3Uri, output: S3Uri) -> ScoreResult:
    model, card = registry.load()
    keys = [item["Key"] for item in iter_objects(client, incoming) if not item["Key"].endswith("/")]
    rows = []
    for start in range(0, len(keys), BATCH_SIZE):
        batch = keys[start : start + BATCH_SIZE]
        bodies = parallel_map(lambda key: get_bytes(client, S3Uri(incoming.bucket, key)), batch)
        for key, (name, probability) in zip(batch, predict(model, card, bodies, batch), strict=True):
            rows.append(
                {
                    "key": key,
                    "class_name": name,
                    "probability": round(probability, 6),
                    "model_version": card.version,
                }
            )
    columns = ["key", "class_name", "probability", "model_version"]
    put_csv(client, output, pd.DataFrame(rows, columns=columns))
    log.info("scored %d images with version %d; predictions in %s", len(keys), card.version, output)
    return ScoreResult(str(output), len(keys), card.version)
