"""Credentials the trainer can outlive: minted per attempt for longer than its time limit and
scoped to it where the deployment names a trainer role; and a credential that expires mid-attempt
ends the attempt with one line naming the fix, publishing nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from fault_proxy import FaultProxy, Faults

from tasks.layout import AttemptLayout
from tasks.storage import S3Uri, exists
from tasks.train import TrainRequest
from tasks.trainer_access import session_duration, trainer_session_policy

ROLE = "arn:aws:iam::123456789012:role/retrain-trainer"


def test_the_session_policy_reaches_the_dataset_and_the_attempts_folder_only():
    policy = trainer_session_policy(
        "s3://shop/runs/r~3A1/attempt-2", "s3://shop/runs/r~3A1/attempt-1/model.keras"
    )
    statements = {statement["Sid"]: statement for statement in policy["Statement"]}
    assert statements["ReadTheDataset"]["Resource"] == [
        "arn:aws:s3:::shop/datasets/*",
        "arn:aws:s3:::shop/examples/*",
        "arn:aws:s3:::shop/runs/r~3A1/attempt-1/model.keras",
    ]
    assert statements["WriteTheAttempt"]["Resource"] == ["arn:aws:s3:::shop/runs/r~3A1/attempt-2/*"]
    assert "s3:PutObject" not in statements["ReadTheDataset"]["Action"]
    assert not any(
        "models/" in resource for statement in policy["Statement"] for resource in statement["Resource"]
    )
    assert session_duration(timedelta(hours=4)) == timedelta(hours=4, minutes=30)
    assert session_duration(timedelta(hours=40)) == timedelta(hours=12)


def test_minted_credentials_outlive_the_attempts_limit(s3_endpoint):
    """Against the S3 server's STS (AssumeRole with the session policy and duration)."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    from trainer_operator import mint_attempt_credentials

    limit = timedelta(hours=4)
    policy = trainer_session_policy("s3://shop/runs/r/attempt-1", None)
    aws = AwsBaseHook(aws_conn_id="aws_default", client_type="s3")
    variables, expires = mint_attempt_credentials(
        aws, ROLE, "retrain-r-attempt_1.train-try1", policy, session_duration(limit)
    )
    assert set(variables) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
    assert variables["AWS_ACCESS_KEY_ID"] != os.environ["AWS_ACCESS_KEY_ID"]
    assert expires > datetime.now(UTC) + limit


@pytest.mark.slow
def test_a_credential_that_expires_mid_attempt_ends_it_in_one_line(s3, dataset, s3_endpoint):
    """The first checkpoint upload after epoch 1 is refused as an expired session's would be."""
    output = f"{dataset.dataset_uri.rsplit('/', 2)[0]}-expiring/attempt-1"
    request = TrainRequest(dataset.dataset_uri, output, epochs=2)
    attempt_path = "/" + S3Uri.parse(output).bucket + "/" + S3Uri.parse(output).key
    with FaultProxy(urlsplit(s3_endpoint).port, seed=5) as proxy:
        proxy.set_faults(Faults(expired_fraction=1.0, methods=frozenset({"PUT", "POST"}), path=attempt_path))
        finished = subprocess.run(
            [sys.executable, "-m", "tasks.train", *request.to_cli_args()],
            env={**os.environ, "AWS_ENDPOINT_URL": proxy.endpoint_url},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proxy.counts["expired"] >= 1
    last_line = finished.stderr.strip().splitlines()[-1]
    assert finished.returncode == 1, finished.stderr[-2000:]
    assert last_line.startswith("train: error: ") and "temporary credentials expired" in last_line
    assert "RETRAIN_TRAINER_ROLE_ARN" in last_line and "Traceback" not in finished.stderr
    assert not exists(s3, AttemptLayout.at(output).train_result)
