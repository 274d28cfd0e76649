"""Runs pipeline steps in the DAG's order without Airflow, handing each the run's resolved
classes as the DAG's tasks do."""

from __future__ import annotations

from dataclasses import replace

from tasks.collect import collect_manifest, collect_parts
from tasks.config import PipelineConfig
from tasks.deploy import publish_version
from tasks.gated_nights import Validated, validate_night
from tasks.preprocess import PreprocessResult, build_dataset
from tasks.records import Candidate, Publication
from tasks.registry import Registry
from tasks.storage import S3Client


def collect_and_build(client: S3Client, config: PipelineConfig, run_id: str) -> PreprocessResult:
    """collect, then preprocess straight from the manifest (the gate left out)."""
    collected = collect_manifest(client, config, run_id)
    return build_dataset(client, config.with_classes(collected.class_names), collected.manifest_uri, run_id)


def collect_and_validate(client: S3Client, config: PipelineConfig, run_id: str) -> Validated:
    """plan_partitions, every collect partition in turn, then validate, as the DAG runs them."""
    plan, parts = collect_parts(client, config, run_id)
    resolved = config.with_classes(plan.class_names)
    return validate_night(client, resolved, run_id, parts, plan.class_names_from, plan.skipped)


def judge_and_publish(
    client: S3Client, config: PipelineConfig, candidate: Candidate, run_id: str
) -> Publication:
    """deploy as a night runs it: the candidate judged against production as it is now (the
    ETag its evaluate read), then published and promoted."""
    _, etag = Registry(client, config.bucket, config.model_name).production()
    return publish_version(client, config, replace(candidate, production_etag=etag), run_id=run_id)
