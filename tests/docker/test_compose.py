"""The full stack's compose file: valid for Docker Compose, secrets only from .env, and the
names it sets (connection, bucket, images, network, engine URL) the ones the DAG reads."""

from __future__ import annotations

import json
import re
import runpy
import subprocess
from urllib.parse import urlparse

import pytest
from compose_helpers import AIRFLOW_SERVICES, ROOT, compose, write_env_file
from fresh_interpreter import run_probe

SECRETS = (
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_API_SECRET_KEY",
    "AIRFLOW_ADMIN_PASSWORD",
    "POSTGRES_PASSWORD",
    "MINIO_ROOT_PASSWORD",
    "RETRAIN_S3_SECRET_KEY",
)


def airflow_env(config: dict) -> dict[str, str]:
    return config["services"]["airflow-scheduler"]["environment"]


def connection(config: dict) -> tuple[str, dict]:
    """The one Airflow connection the compose file defines: (conn id, its JSON)."""
    (name, value), *others = [
        (name, value) for name, value in airflow_env(config).items() if name.startswith("AIRFLOW_CONN_")
    ]
    assert not others, "the S3 connection must be defined once"
    return name.removeprefix("AIRFLOW_CONN_").lower(), json.loads(value)


def test_the_stack_is_the_celery_layout_of_airflows_compose_file(compose_config):
    services = compose_config["services"]
    for name in (*AIRFLOW_SERVICES, "postgres", "redis", "minio", "minio-init", "docker-socket-proxy"):
        assert name in services, name
    assert airflow_env(compose_config)["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    for name in (
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-worker",
        "airflow-triggerer",
        "postgres",
        "redis",
        "minio",
    ):
        assert "healthcheck" in services[name], f"{name} has no health check"
        conditions = services[name].get("depends_on", {})
        if name.startswith("airflow-"):
            assert conditions["airflow-init"]["condition"] == "service_completed_successfully"
            assert conditions["postgres"]["condition"] == "service_healthy"
            assert conditions["minio-init"]["condition"] == "service_completed_successfully"
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    assert services["trainer-image"]["profiles"] == ["build"]


def test_every_airflow_service_runs_the_project_image_with_the_same_settings(compose_config):
    services = compose_config["services"]
    images = {services[name]["image"] for name in AIRFLOW_SERVICES}
    assert len(images) == 1
    build = services["airflow-worker"]["build"]
    assert build["dockerfile"] == "docker/airflow/Dockerfile"
    assert build["args"]["AIRFLOW_BASE_IMAGE"] == "apache/airflow:3.3.2-python3.11"
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in airflow_env(compose_config)
    worker_env = dict(services["airflow-worker"]["environment"])
    assert worker_env.pop("DUMB_INIT_SETSID") == "0"
    assert worker_env == airflow_env(compose_config)


def test_the_airflow_image_is_the_pinned_official_one_with_the_project_installed():
    dockerfile = (ROOT / "docker" / "airflow" / "Dockerfile").read_text()
    pinned = re.search(r"apache-airflow==([0-9.]+)", (ROOT / "pyproject.toml").read_text()).group(1)
    assert f"ARG AIRFLOW_BASE_IMAGE=apache/airflow:{pinned}-python3.11" in dockerfile
    assert '"/opt/retrain[pipeline]"' in dockerfile


def test_no_airflow_service_mounts_the_docker_socket(compose_config):
    services = compose_config["services"]
    for name, service in services.items():
        sources = [volume.get("source", "") for volume in service.get("volumes", [])]
        if name == "docker-socket-proxy":
            assert any(source.endswith("docker.sock") for source in sources)
        else:
            assert not any("docker.sock" in source for source in sources), name
    engine = urlparse(airflow_env(compose_config)["RETRAIN_DOCKER_URL"])
    assert (engine.scheme, engine.hostname, engine.port) == ("tcp", "docker-socket-proxy", 2375)
    assert "2375" in services["docker-socket-proxy"]["expose"]
    assert "ports" not in services["docker-socket-proxy"], "the engine must not be published on the host"


def test_the_s3_connection_is_minio_on_the_compose_network(compose_config, env_values):
    conn_id, value = connection(compose_config)
    assert conn_id == airflow_env(compose_config)["RETRAIN_AWS_CONN_ID"]
    endpoint = urlparse(value["extra"]["endpoint_url"])
    assert endpoint.hostname in compose_config["services"]
    assert endpoint.port == 9000
    assert value["login"] == env_values["RETRAIN_S3_ACCESS_KEY"]
    assert value["password"] == env_values["RETRAIN_S3_SECRET_KEY"]
    assert value["login"] != env_values["MINIO_ROOT_USER"], "Airflow must not use MinIO's root account"


def test_names_agree_between_compose_services(compose_config):
    services = compose_config["services"]
    env = airflow_env(compose_config)
    assert services["minio-init"]["environment"]["RETRAIN_BUCKET"] == env["RETRAIN_BUCKET"]
    assert services["trainer-image"]["image"] == env["RETRAIN_TRAINER_IMAGE"]
    assert compose_config["networks"]["default"]["name"] == env["RETRAIN_DOCKER_NETWORK"]
    init_env = services["minio-init"]["environment"]
    assert init_env["RETRAIN_S3_ACCESS_KEY"] == connection(compose_config)[1]["login"]


def test_every_retrain_variable_the_stack_sets_is_read_by_the_project(compose_config):
    sources = "".join(
        path.read_text() for folder in ("dags", "plugins", "tasks") for path in (ROOT / folder).rglob("*.py")
    )
    for name in airflow_env(compose_config):
        if name.startswith("RETRAIN_"):
            assert f'"{name}"' in sources, f"{name} is set by docker-compose.yaml but read nowhere"


def test_the_dag_parsed_with_the_stacks_environment_uses_what_the_stack_provides(compose_config, tmp_path):
    """Imports the DAG file in a fresh interpreter with the airflow services' environment (the
    database aside: parsing needs none, and PostgreSQL's driver is the image's business)."""
    env = {
        **airflow_env(compose_config),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db",
        "AIRFLOW_HOME": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    probe = """
import json, sys
sys.path[:0] = ["plugins"]
from airflow.configuration import conf
from airflow.dag_processing.dagbag import DagBag
from tasks.config import PipelineConfig
bag = DagBag(dag_folder="dags/image_classifier_retrain.py")
assert not bag.import_errors, bag.import_errors
dag = bag.dags["image_classifier_retrain"]
train = dag.get_task("attempt_1.train")
options = [name for name in __import__("os").environ if name.startswith("AIRFLOW__")]
# Airflow's documented options (the celery provider, absent here, documents its own section).
described = conf.configuration_description
print(json.dumps({
    "conn_id": train.aws_conn_id, "docker_url": train.docker_url, "network": train.network_mode,
    "backend": train.backend, "image": train.image, "gpus": train.gpus, "schedule": dag.schedule,
    "bucket": dag.params["bucket"], "config_bucket": PipelineConfig().bucket,
    "unknown_options": [name for name in options if (parts := name.lower().split("__"))[1] != "celery"
                        and parts[2] not in described.get(parts[1], {}).get("options", {})],
}))
"""
    parsed = json.loads(run_probe(probe, env, cwd=ROOT))
    assert parsed["conn_id"] == connection(compose_config)[0]
    assert parsed["docker_url"] == env["RETRAIN_DOCKER_URL"]
    assert parsed["network"] == compose_config["networks"]["default"]["name"]
    assert parsed["backend"] == "docker"
    assert parsed["image"] == compose_config["services"]["trainer-image"]["image"]
    assert parsed["gpus"] == env["RETRAIN_GPUS"]
    assert parsed["schedule"] == env["RETRAIN_SCHEDULE"] == "0 2 * * *"
    assert parsed["bucket"] == parsed["config_bucket"] == env["RETRAIN_BUCKET"]
    assert parsed["unknown_options"] == [], "AIRFLOW__ settings Airflow does not know"


def test_secrets_come_only_from_the_env_file(compose_config, env_values):
    committed = (ROOT / "docker-compose.yaml").read_text() + (ROOT / ".env.example").read_text()
    for name in SECRETS:
        assert re.search(rf"^{name}=$", (ROOT / ".env.example").read_text(), re.MULTILINE), name
        assert env_values[name] and env_values[name] not in committed
    assert airflow_env(compose_config)["AIRFLOW__CORE__FERNET_KEY"] == env_values["AIRFLOW_FERNET_KEY"]
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT)
    assert ignored.returncode == 0, ".env must be git-ignored"


@pytest.mark.parametrize("secret", SECRETS)
def test_a_missing_secret_stops_compose_with_its_name(tmp_path, env_file, secret):
    without = tmp_path / ".env"
    without.write_text(re.sub(rf"^{secret}=.*$", f"{secret}=", env_file.read_text(), flags=re.MULTILINE))
    result = compose("config", "--quiet", env_file=without, check=False)
    assert result.returncode != 0
    assert f"required variable {secret} is missing a value" in result.stderr


def test_the_generated_env_file_is_private_and_never_overwritten(env_file):
    assert env_file.stat().st_mode & 0o077 == 0
    before = env_file.read_text()
    assert "left as it is" in write_env_file(env_file)
    assert env_file.read_text() == before


def test_the_fernet_key_is_one_airflow_accepts(env_values):
    from cryptography.fernet import Fernet

    Fernet(env_values["AIRFLOW_FERNET_KEY"].encode())


def test_no_generated_secret_reads_as_a_command_line_option():
    # One token in 64 starts with "-"; 3,000 draws per kind make a regression all but certain
    # to show here rather than as a refused login in a stack that came up healthy.
    new_env = runpy.run_path(str(ROOT / "docker" / "new_env.py"))
    for name in ("AIRFLOW_FERNET_KEY", "AIRFLOW_ADMIN_PASSWORD"):
        leading = {new_env["secret_for"](name)[0] for _ in range(3000)}
        assert "-" not in leading, name
