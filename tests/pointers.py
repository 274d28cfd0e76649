"""Production pointers for tests that need a production model to exist before a run."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tasks.layout import ModelLayout
from tasks.records import Pointer


def production_pointer(bucket: str, model_name: str, version: int, **changes: Any) -> Pointer:
    """A complete production.json for `version`, as deploy writes it, with `changes` applied."""
    layout = ModelLayout.of(bucket, model_name).version(version)
    pointer = Pointer(
        model_name=model_name,
        version=version,
        version_uri=str(layout.root),
        model_uri=str(layout.model),
        evaluation_uri=str(layout.evaluation),
        serving_uri=str(layout.serving_base),
        class_names=["zero", "one", "two"],
        image_size=32,
        metrics={"accuracy": 0.9, "macro_f1": 0.9},
        run_id="an-earlier-run",
        attempt=1,
        dataset_fingerprint="0" * 64,
        published_at="2026-11-30T02:00:00+00:00",
    )
    return replace(pointer, **changes)
