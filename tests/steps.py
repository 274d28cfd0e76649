"""Runs pipeline steps in the DAG's order without Airflow, handing each the run's resolved
classes as the DAG's tasks do."""

from __future__ import annotations

from tasks.collect import collect_manifest
from tasks.config import PipelineConfig
from tasks.preprocess import PreprocessResult, build_dataset
from tasks.storage import S3Client


def collect_and_build(client: S3Client, config: PipelineConfig, run_id: str) -> PreprocessResult:
    """collect, then preprocess straight from the manifest (the gate left out)."""
    collected = collect_manifest(client, config, run_id)
    return build_dataset(client, config.with_classes(collected.class_names), collected.manifest_uri, run_id)
