"""Every DAG file parses cheaply and without errors; the retrain DAG has the agreed shape."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from fresh_interpreter import run_probe

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
HEAVY_MODULES = ("tensorflow", "keras", "great_expectations", "pandas", "boto3", "numpy", "PIL")


def load_then(dag_file: Path, statement: str, **env: str) -> str:
    """Executes a DAG file as Airflow's parser does, in a fresh interpreter with only `env`
    (besides PATH and Airflow's home), then prints `statement`; returns the printed line."""
    probe = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('probe', {str(dag_file)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        f"print({statement})\n"
    )
    return run_probe(
        probe,
        {
            "PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}",
            "PATH": "/usr/bin:/bin",
            "AIRFLOW_HOME": os.environ["AIRFLOW_HOME"],
            **env,
        },
    )


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "image_classifier_retrain" in dagbag.dag_ids


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda path: path.name)
def test_parsing_imports_nothing_heavy(dag_file):
    loaded = load_then(dag_file, f"sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)")
    assert loaded == "[]"


def test_every_dag_has_tags_owner_and_retries(dagbag):
    for dag in dagbag.dags.values():
        assert dag.tags, dag.dag_id
        for task in dag.tasks:
            assert task.owner == "ml-platform", task.task_id
            assert task.retries >= 1, task.task_id


def failure_alerts(callbacks) -> list:
    """The FailureAlerts among callbacks. By class name: Airflow's plugin loader imports
    plugins/ again under the same module name, so isinstance would depend on test order."""
    callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
    return [callback for callback in callbacks if type(callback).__name__ == "FailureAlert"]


def test_every_dag_alerts_once_per_failed_run(dagbag):
    """The run decides the alert: no task sends one of its own."""
    for dag in dagbag.dags.values():
        assert len(failure_alerts(dag.on_failure_callback)) == 1, dag.dag_id
        for task in dag.tasks:
            assert failure_alerts(task.on_failure_callback) == [], (dag.dag_id, task.task_id)


def test_schedule_and_run_policy(retrain_dag):
    assert retrain_dag.timetable.expression == "0 2 * * *"
    assert retrain_dag.catchup is False
    assert retrain_dag.max_active_runs == 1
    # A stuck night cannot hold the one active run for ever: every attempt's training limit
    # (4 h) plus 2 h, and the trainers share the deployment's pool.
    assert retrain_dag.dagrun_timeout == timedelta(hours=3 * 4 + 2)
    assert {task.pool for task in retrain_dag.tasks if task.task_id.endswith(".train")} == {"default_pool"}
    assert retrain_dag.doc_md and "Nightly retrain" in retrain_dag.doc_md


@pytest.mark.parametrize(("setting", "expected"), [("none", "None"), ("30 3 * * 1", "30 3 * * 1")])
def test_the_schedule_comes_from_the_environment(setting, expected):
    dag_file = ROOT / "dags" / "image_classifier_retrain.py"
    loaded = load_then(dag_file, "module.image_classifier_retrain().schedule", RETRAIN_SCHEDULE=setting)
    assert loaded == expected


def test_params_have_types_and_defaults(retrain_dag):
    params = retrain_dag.params
    expected = {
        "bucket": "string",
        "raw_prefix": "string",
        "model_name": "string",
        "class_names": ["null", "array"],  # optional in the form: empty means every folder
        "image_size": "integer",
        "epochs": "integer",
        "batch_size": "integer",
        "learning_rate": "number",
        "min_test_accuracy": ["null", "number"],
        "min_macro_f1": ["null", "number"],
        "max_regression": ["null", "number"],
        "max_attempts": "integer",
        "min_images": "integer",
        "fail_on_give_up": ["null", "boolean"],
    }
    for name, json_type in expected.items():
        assert params.get_param(name).schema["type"] == json_type, name
    assert params["epochs"] == 40 and params["batch_size"] == 32 and params["image_size"] == 128


def test_tasks_and_edges(retrain_dag):
    attempts = [f"attempt_{n}" for n in (1, 2, 3)]
    steps = ("plan", "train", "evaluate", "decide", "accept", "give_up")
    expected = {
        "plan_partitions",
        "collect",
        "validate",
        "preprocess",
        "assemble_dataset",
        "check_for_change",
        "nothing_to_train",
        "deploy",
        "cleanup",
        "night_report",
    } | {f"{group}.{step}" for group in attempts for step in steps}
    assert set(retrain_dag.task_ids) == expected

    def downstream(task_id: str) -> set[str]:
        return retrain_dag.get_task(task_id).downstream_task_ids

    assert downstream("plan_partitions") == {"collect", "validate"}
    assert downstream("collect") == {"validate"}
    assert downstream("validate") == {"preprocess", "assemble_dataset"}
    assert downstream("preprocess") == {"assemble_dataset"}
    assert "check_for_change" in downstream("assemble_dataset")  # the others read its dataset URI
    for mapped in ("collect", "preprocess"):
        assert retrain_dag.get_task(mapped).map_index_template == "{{ partition_label }}"
    assert downstream("check_for_change") == {"nothing_to_train", "attempt_1.plan"}
    assert (
        retrain_dag.get_edge_info("check_for_change", "nothing_to_train")["label"]
        == "no change since production"
    )
    assert retrain_dag.get_edge_info("check_for_change", "attempt_1.plan")["label"] == "changed: train"
    cleanup = retrain_dag.get_task("cleanup")
    assert cleanup.upstream_task_ids == {"deploy", "nothing_to_train"} | {f"{g}.give_up" for g in attempts}
    assert cleanup.trigger_rule == "none_failed_min_one_success"
    # The report is written on every end of the night, beside cleanup (which decides the run's state).
    report = retrain_dag.get_task("night_report")
    assert report.upstream_task_ids == cleanup.upstream_task_ids and report.trigger_rule == "all_done"
    assert {task.task_id for task in retrain_dag.leaves} == {"cleanup", "night_report"}
    assert downstream("attempt_1.decide") == {"attempt_1.accept", "attempt_1.give_up", "attempt_2.plan"}
    assert retrain_dag.get_edge_info("attempt_1.decide", "attempt_2.plan")["label"].startswith("not blessed")
    assert retrain_dag.get_edge_info("attempt_1.decide", "attempt_1.accept")["label"] == "blessed"
    assert downstream("attempt_3.decide") == {"attempt_3.accept", "attempt_3.give_up"}
    assert retrain_dag.get_task("deploy").upstream_task_ids == {f"{g}.accept" for g in attempts}
    assert retrain_dag.get_task("deploy").trigger_rule == "none_failed_min_one_success"
    assert retrain_dag.get_task("attempt_1.train").execution_timeout is not None


# Tasks that read or write no S3 object themselves; training has its own retries and resumes
# from its last epoch checkpoint.
NO_S3_TASKS = {"nothing_to_train", "plan", "train", "accept", "give_up"}


def test_every_task_that_touches_s3_retries_with_backoff(retrain_dag):
    s3_tasks = [task for task in retrain_dag.tasks if task.task_id.split(".")[-1] not in NO_S3_TASKS]
    assert {task.task_id for task in s3_tasks} >= {"validate", "attempt_1.evaluate", "attempt_1.decide"}
    for task in s3_tasks:
        assert task.retries >= 3 and task.retry_exponential_backoff, task.task_id
