"""Airflow glue for the retrain DAG: S3 clients from Airflow connections, the run's config
from Params, and the mapping of pipeline errors onto Airflow's retry semantics."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from tasks.config import PipelineConfig


def production_asset() -> Any:
    """The Asset consumers schedule on: the deploy task emits an event on it whose extra holds
    the bucket, version, version URI and accuracy. It is named, not an s3:// URI, because the
    bucket is a per-run Param, and because resolving an s3:// URI while parsing would import
    boto3 in every DAG parse."""
    from airflow.sdk import Asset

    return Asset(name="nightly_retrain_production_model")


def s3_client(aws_conn_id: str) -> Any:
    """A boto3 S3 client built from an Airflow connection (its extra `endpoint_url` may point
    at MinIO or a local endpoint)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=aws_conn_id).get_conn()


def run_config(context: Any) -> PipelineConfig:
    with failing_fast():
        return PipelineConfig.from_params(dict(context["params"]))


@contextmanager
def failing_fast() -> Iterator[None]:
    """Fails the task without retries when retrying cannot help (bad data, missing bucket,
    wrong credentials, invalid Params); transient problems still raise and get retried."""
    from tasks.storage import StorageError
    from tasks.validate import DataValidationError

    try:
        yield
    except StorageError as error:
        if error.permanent:
            raise AirflowFailException(str(error)) from error
        raise
    except (DataValidationError, ValueError) as error:
        raise AirflowFailException(str(error)) from error
