"""What someone allowed to trigger a run can and cannot choose: a Param naming another image or
a bucket outside the deployment's allow-list is refused by the run's first task, in one line,
before any S3 call (the refused bucket does not exist: an S3 call would have said so)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

ELSEWHERE = "someone-elses-bucket"


def first_failure(night) -> str:
    assert night.state == "failed", night.states
    assert night.states["plan_partitions"] == "failed", night.states
    (alert,) = night.alerts
    assert alert["task_id"] == "plan_partitions"
    return alert["reason"]


def test_a_bucket_outside_the_allow_list_is_refused_before_any_s3_call(run_night, digits_bucket, monkeypatch):
    monkeypatch.setenv("RETRAIN_ALLOWED_BUCKETS", f"{digits_bucket},reports-*")
    for conf in (
        {"bucket": ELSEWHERE},
        {"bucket": digits_bucket, "inventory_uri": f"s3://{ELSEWHERE}/inv/x/"},
    ):
        reason = first_failure(run_night(**conf))
        assert f"bucket '{ELSEWHERE}' is not one this deployment allows" in reason, reason
        assert "RETRAIN_ALLOWED_BUCKETS" in reason and "does not exist" not in reason


@pytest.mark.parametrize(
    ("param", "value"),
    [("trainer_image", "attacker/exfiltrate:latest"), ("trainer_backend", "local"), ("gpus", "all")],
)
def test_what_runs_with_the_keys_is_not_a_param(run_night, digits_bucket, param, value):
    try:
        reason = first_failure(run_night(bucket=digits_bucket, **{param: value}))
    finally:  # dag.test() added the key to the shared DAG's Params
        run_night.retrain_dag.params.pop(param, None)
    assert reason.startswith(f"unknown Param {param}"), reason
