"""Airflow glue for the retrain DAGs: Params generated from the config's declarations, the
context every task body needs (config, S3 client, run id), and the mapping of pipeline
errors onto Airflow's retry semantics."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import Param, get_current_context
from airflow.sdk.exceptions import AirflowFailException

from retrain_alerts import recording_failure
from tasks.config import DeploymentSettings, PipelineConfig, param_schemas, unknown_params
from tasks.errors import InvalidSettingsError
from tasks.records import RecordJson

if TYPE_CHECKING:
    from tasks.partitions import Partition

DEPLOYMENT = DeploymentSettings()

# Tasks that only talk to S3: a throttled or briefly unreachable endpoint gets three tries more.
# Typed loosely on purpose: task keyword arguments, and with exact types mypy resolves
# TaskFlow's overloads and refuses the XComArgs the DAG file passes where values are declared.
S3_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
}


def retrain_params() -> dict[str, Param]:
    """The DAG's Params, one per config setting, grouped in the trigger form's sections."""
    params = {}
    for name, schema in param_schemas().items():
        default = schema.pop("default")
        description = schema.pop("description")
        params[name] = Param(default, description=description, **schema)
    return params


def production_asset() -> Any:
    """The Asset consumers schedule on: the deploy task emits an event on it whose extra holds
    the bucket, version, version URI and accuracy. It is named, not an s3:// URI, because the
    bucket is a per-run Param, and because resolving an s3:// URI while parsing would import
    boto3 in every DAG parse."""
    from airflow.sdk import Asset

    return Asset(name="nightly_retrain_production_model")


def s3_client(aws_conn_id: str = DEPLOYMENT.aws_conn_id) -> Any:
    """A boto3 S3 client built from an Airflow connection (its extra `endpoint_url` may point
    at MinIO or a local endpoint), with the pipeline's pool size and retry mode."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from tasks.storage import client_config, log_retries

    return log_retries(S3Hook(aws_conn_id=aws_conn_id, config=client_config()).get_conn())


def run_config(context: Any, known_params: Iterable[str] | None = None) -> PipelineConfig:
    """The run's validated config; refuses conf keys that are not among the DAG's Params
    (`known_params`, by default the retrain DAG's). Airflow accepts such keys, adds them to
    the run's params and ignores them, so a misspelt key would silently run the default. A
    bucket the deployment does not allow (RETRAIN_ALLOWED_BUCKETS) is refused here, before
    any S3 call."""
    with failing_fast():
        dag_run = context.get("dag_run")
        conf = getattr(dag_run, "conf", None) or {}
        known = list(known_params if known_params is not None else param_schemas())
        refused = unknown_params(list(conf), known=known)
        if refused:
            raise InvalidSettingsError(refused)
        config = PipelineConfig.from_params(dict(context["params"]))
        refusal = DeploymentSettings().bucket_refusal(config)
        if refusal:
            raise InvalidSettingsError(refusal)
        return config


@dataclass(frozen=True)
class Step:
    """What a task body works with."""

    context: Any
    config: PipelineConfig
    client: Any
    run_id: str


@contextmanager
def pipeline_step(
    class_names: list[str] | None = None, *, known_params: Iterable[str] | None = None
) -> Iterator[Step]:
    """The current task's context, config (with the run's resolved classes, once collect has
    resolved them) and S3 client, with the fail-fast rule applied to everything inside.
    `known_params`: the DAG's Param names, for a DAG other than the retrain DAG."""
    context = get_current_context()
    with recording_failure(context), failing_fast():
        config = run_config(context, known_params)
        if class_names:
            config = config.with_classes(class_names)
        yield Step(context, config, s3_client(), context["run_id"])


@contextmanager
def failing_fast() -> Iterator[None]:
    """Fails the task without retries when retrying cannot help (bad data, missing bucket,
    wrong credentials, invalid Params); transient problems still raise and get retried."""
    from tasks.errors import PermanentError

    try:
        yield
    except InvalidSettingsError as error:
        # The reason is the whole story: the frames of the check that refused the value
        # would only lengthen the log Airflow prints under it.
        raise AirflowFailException(str(error)) from None
    except PermanentError as error:  # unfit data, refused S3 access: keep the cause for debugging
        raise AirflowFailException(str(error)) from error


def mapped_results(results: Sequence[Any]) -> list[Any]:
    """Every result of a mapped task, read by index. Iterating Airflow's lazy sequence of
    them reads one item past the end, which its task SDK logs as an `XCom not found` error
    in every green run."""
    return [results[index] for index in range(len(results))]


# Names each mapped collect/preprocess instance in the grid ("part 2 of 4").
PARTITION_LABEL = "{{ partition_label }}"


def mapped_partition(context: Any, partition: RecordJson) -> Partition:
    """The partition a mapped instance works on, from its XCom form; also gives the instance
    its name in the grid (PARTITION_LABEL)."""
    from tasks.partitions import Partition

    part = Partition.from_xcom(partition)
    context["partition_label"] = part.label
    return part


def label_edge(upstream: Any, downstream: Any, label: str) -> None:
    """`upstream >> downstream` with a label in the graph. (A Label between task groups would
    wire the group's leaves instead of these tasks.)"""
    upstream >> downstream
    downstream.operator.dag.set_edge_info(
        upstream.operator.task_id, downstream.operator.task_id, {"label": label}
    )
