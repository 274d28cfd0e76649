"""The rollback DAG through dag.test(): moves production to an earlier version and emits the
production Asset's event, which a CLI rollback cannot."""

from __future__ import annotations

from steps import judge_and_publish

from tasks.config import PipelineConfig
from tasks.registry import Registry


def asset_events(dag_run) -> list[dict]:
    """The extras of the Asset events the run's tasks emitted."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        events = session.query(AssetEvent).filter(AssetEvent.source_run_id == dag_run.run_id).all()
        return [dict(event.extra) for event in events]


def test_rollback_moves_production_and_tells_the_assets_consumers(dagbag, s3, bucket, candidate):
    for run_id in ("run-1", "run-2"):
        judge_and_publish(s3, PipelineConfig(bucket=bucket), candidate, run_id)
    dag_run = dagbag.get_dag("rollback_production").test(
        run_conf={"bucket": bucket, "model_name": "digits-cnn", "version": 1}
    )
    assert dag_run.state == "success"
    assert Registry(s3, bucket, "digits-cnn").pointer().version == 1
    (extra,) = asset_events(dag_run)
    assert (extra["version"], extra["bucket"], extra["rollback"]) == (1, bucket, True)


def test_rolling_back_to_a_missing_version_fails_and_keeps_production(dagbag, s3, bucket, candidate, capfd):
    judge_and_publish(s3, PipelineConfig(bucket=bucket), candidate, "run-1")
    dag_run = dagbag.get_dag("rollback_production").test(
        run_conf={"bucket": bucket, "model_name": "digits-cnn", "version": 7}
    )
    assert dag_run.state == "failed"
    assert "version 7" in "".join(capfd.readouterr())
    assert Registry(s3, bucket, "digits-cnn").pointer().version == 1
