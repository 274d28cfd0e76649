"""Airflow glue: S3 clients from connections, Params to config, fail-fast mapping."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from retrain_airflow import failing_fast, run_config, s3_client
from tasks.storage import StorageError
from tasks.validate import DataValidationError


def test_client_from_the_airflow_connection_reaches_its_endpoint(s3_endpoint, bucket):
    client = s3_client("aws_default")
    assert client.meta.endpoint_url == s3_endpoint
    assert bucket in [item["Name"] for item in client.list_buckets()["Buckets"]]


def test_params_become_a_validated_config():
    assert run_config({"params": {"epochs": 2}}).epochs == 2
    with pytest.raises(AirflowFailException, match="invalid pipeline config"):
        run_config({"params": {"epochs": 0}})


@pytest.mark.parametrize(
    "error",
    [DataValidationError("gate failed"), StorageError("no bucket", permanent=True), ValueError("bad")],
)
def test_permanent_problems_fail_without_retry(error):
    with pytest.raises(AirflowFailException, match=str(error)), failing_fast():
        raise error


def test_transient_problems_stay_retryable():
    with pytest.raises(StorageError), failing_fast():
        raise StorageError("endpoint unreachable", permanent=False)
