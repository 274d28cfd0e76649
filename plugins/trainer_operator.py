"""The training task: one operator, two backends running the same trainer CLI arguments.

`docker` (production): DockerOperator starts the trainer image with the CLI arguments as its
command, GPUs as device requests, S3 credentials as private environment (never rendered,
logged or pushed to XCom: minted for the attempt where the deployment names a trainer role,
else the Airflow connection's), and the S3 endpoint as plain environment. `local`: the
same arguments are parsed and run in this worker's process.
Either way the task returns `train_result.json` as read back from S3.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk.exceptions import AirflowFailException

from tasks.config import TRAINER_BACKENDS as BACKENDS
from tasks.records import RecordJson

if TYPE_CHECKING:  # boto3 and the layout are imported when a trainer starts, not at DAG parse
    from tasks.trainer_access import IamPolicy


def gpu_device_requests(gpus: str) -> list[Any] | None:
    """`0` -> CPU only; `all` -> every GPU; `N` -> N GPUs."""
    from docker.types import DeviceRequest

    value = str(gpus).strip().lower()
    if value in ("", "0", "none"):
        return None
    if value == "all":
        return [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    if value.isdigit():
        return [DeviceRequest(count=int(value), capabilities=[["gpu"]])]
    raise AirflowFailException(f"gpus={gpus!r}: use 'all', a number of GPUs, or '0' for CPU")


def container_name(run_id: str, task_id: str, try_number: int) -> str:
    """Unique per run, attempt and try, within Docker's name alphabet."""
    raw = f"retrain-{run_id}-{task_id}-try{try_number}"
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", raw)[:200]


class TrainerOperator(DockerOperator):
    """Trains one attempt described by a TrainRequest dict (templated, usually an XComArg)."""

    template_fields = (*DockerOperator.template_fields, "train_request")

    def __init__(
        self,
        *,
        train_request: Any,
        backend: str,
        gpus: str = "0",
        aws_conn_id: str = "aws_default",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("auto_remove", "force")
        kwargs.setdefault("mount_tmp_dir", False)
        super().__init__(command=None, **kwargs)
        self.train_request = train_request
        self.backend = backend
        self.gpus = gpus
        self.aws_conn_id = aws_conn_id

    # Returns the train result (pushed to XCom) instead of DockerOperator's container logs.
    def execute(self, context: Any) -> RecordJson:  # type: ignore[override]
        from retrain_alerts import recording_failure

        with recording_failure(context):
            return self._train(context)

    def _train(self, context: Any) -> RecordJson:
        from retrain_airflow import s3_client
        from tasks.layout import AttemptLayout
        from tasks.train import TrainRequest, TrainResult, parse_request, run_training

        request = TrainRequest.from_json(self.train_request)
        cli_args = request.to_cli_args()
        if self.backend == "local":
            self.log.info("trainer_backend=local: training in this worker's process, no container")
            run_training(s3_client(self.aws_conn_id), parse_request(cli_args))
        elif self.backend == "docker":
            ti = context["ti"]
            name = container_name(ti.run_id, ti.task_id, ti.try_number)
            self._run_trainer_container(context, cli_args, name)
        else:
            raise AirflowFailException(f"trainer_backend={self.backend!r}: use one of {BACKENDS}")
        result_uri = AttemptLayout.at(request.output_uri).train_result
        return TrainResult.read(s3_client(self.aws_conn_id), result_uri).to_json()

    def _container_credentials(self, aws: Any, name: str) -> dict[str, str]:
        """The container's S3 credentials: minted for this attempt where the deployment names a
        trainer role (scoped to the attempt, lasting past its time limit), else the connection's."""
        from tasks.config import DeploymentSettings
        from tasks.train import TrainRequest
        from tasks.trainer_access import session_duration, trainer_session_policy

        deployment = DeploymentSettings()
        limit = self.execution_timeout or timedelta(hours=deployment.training_timeout_hours)
        if deployment.trainer_role_arn:
            request = TrainRequest.from_json(self.train_request)
            policy = trainer_session_policy(request.output_uri, request.warm_start_uri)
            variables, expires = mint_attempt_credentials(
                aws, deployment.trainer_role_arn, name, policy, session_duration(limit)
            )
            self.log.info("trainer credentials minted for this attempt, valid until %s", expires)
            return variables
        credentials = aws.get_credentials()
        if credentials.token:
            self.log.warning(
                "the connection's credentials are temporary: they may expire before this attempt "
                "ends (its limit: %s); set RETRAIN_TRAINER_ROLE_ARN (docs/security.md)",
                limit,
            )
        return {
            "AWS_ACCESS_KEY_ID": credentials.access_key,
            "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
            **({"AWS_SESSION_TOKEN": credentials.token} if credentials.token else {}),
        }

    def _run_trainer_container(self, context: Any, cli_args: list[str], name: str) -> None:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
        from airflow.providers.docker.exceptions import DockerContainerFailedException
        from docker.errors import APIError

        aws = AwsBaseHook(aws_conn_id=self.aws_conn_id, client_type="s3")
        self._private_environment = self._container_credentials(aws, name)
        endpoint_url = aws.conn_config.endpoint_url
        self.environment = {
            **(self.environment or {}),
            "AWS_DEFAULT_REGION": aws.conn_region_name or "us-east-1",
            **({"AWS_ENDPOINT_URL": endpoint_url} if endpoint_url else {}),
        }
        self.command = cli_args
        self.device_requests = gpu_device_requests(self.gpus)
        self.container_name = name
        self.log.info(
            "trainer container %s from %s on %s (gpus=%s, network=%s)",
            name,
            self.image,
            self.docker_url,
            self.gpus,
            self.network_mode,
        )
        try:
            super().execute(context)
        except DockerContainerFailedException as error:
            last_line = (error.logs or ["(no output)"])[-1]
            if isinstance(last_line, bytes):
                last_line = last_line.decode(errors="replace")
            raise RuntimeError(
                f"trainer container {name} failed ({error}); last line: {last_line}"
            ) from error
        except APIError as error:
            explanation = str(error.explanation or error)
            if "could not select device driver" in explanation:
                raise AirflowFailException(
                    f"gpus={self.gpus} requested, but the Docker engine at {self.docker_url} has no "
                    f"GPU runtime ({explanation}); install the NVIDIA Container Toolkit on that host "
                    "or run with gpus=0"
                ) from error
            if "/images/create" in str(error):  # the engine's pull endpoint
                raise AirflowFailException(
                    f"trainer image {self.image} is not on the Docker engine at {self.docker_url} "
                    f"and cannot be pulled ({explanation}); build it with `make trainer-image`"
                ) from error
            raise


def mint_attempt_credentials(
    aws: Any, role_arn: str, session_name: str, policy: IamPolicy, duration: timedelta
) -> tuple[dict[str, str], datetime]:
    """(the container's AWS_* variables, when they expire): credentials of `role_arn` assumed
    with the connection's, limited by the session `policy`, lasting `duration`."""
    from botocore.exceptions import BotoCoreError, ClientError

    sts = aws.get_session().client(
        "sts", endpoint_url=aws.conn_config.endpoint_url, region_name=aws.conn_region_name or "us-east-1"
    )
    try:
        minted = sts.assume_role(
            RoleArn=role_arn,
            RoleSessionName=session_name[-64:],
            DurationSeconds=int(duration.total_seconds()),
            Policy=json.dumps(policy),
        )["Credentials"]
    except (BotoCoreError, ClientError) as error:
        raise AirflowFailException(
            f"RETRAIN_TRAINER_ROLE_ARN={role_arn}: no credentials for the trainer ({error}); the "
            f"connection must be allowed sts:AssumeRole on it, and its maximum session duration "
            f"must be at least {duration} (the training limit plus a margin)"
        ) from error
    variables = {
        "AWS_ACCESS_KEY_ID": minted["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": minted["SecretAccessKey"],
        "AWS_SESSION_TOKEN": minted["SessionToken"],
    }
    return variables, minted["Expiration"]


def trainer_task(train_request: Any) -> TrainerOperator:
    """The retrain DAG's `train` task: one attempt, in the trainer container (or in-process with
    trainer_backend=local), with the deployment's backend, image, GPUs, connection, engine,
    network and limits, read when the DAG is parsed: no run can choose what runs with the keys."""
    from tasks.config import DeploymentSettings

    deployment = DeploymentSettings()
    return TrainerOperator(
        task_id="train",
        train_request=train_request,
        backend=deployment.trainer_backend,
        gpus=deployment.gpus,
        image=deployment.trainer_image,
        aws_conn_id=deployment.aws_conn_id,
        docker_url=deployment.docker_url,
        network_mode=deployment.docker_network,
        shm_size=deployment.trainer_shm_bytes,
        execution_timeout=timedelta(hours=deployment.training_timeout_hours),
        pool=deployment.training_pool,
        doc_md="Runs `python -m tasks.train` with this attempt's S3 URIs and hyperparameters.",
    )
