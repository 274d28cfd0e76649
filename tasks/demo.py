"""`make demo`: run the whole pipeline once on the embedded default, start to finish.

Starts a local S3 endpoint, uploads the digits, runs the DAG with `airflow dags test` on a
SQLite Airflow under `.airflow/`, mirrors the run's outputs into `demo-output/`, prints what
was deployed, and stops everything it started, also on failure or Ctrl-C.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tasks.config import PipelineConfig
from tasks.demo_data import upload_digits
from tasks.local_s3 import LocalS3
from tasks.storage import S3Uri, download_tree, get_json, make_client

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DAG_ID = "image_classifier_retrain"


def airflow_environment(airflow_home: Path, aws_connection: str) -> dict[str, str]:
    """Environment for a self-contained Airflow on SQLite running this project's DAGs."""
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_AWS_DEFAULT": aws_connection,
        "GX_ANALYTICS_ENABLED": "false",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "NO_PROXY": "127.0.0.1,localhost",
        # The embedded default trains in-process; set it to "docker" to use the trainer image.
        "RETRAIN_TRAINER_BACKEND": os.environ.get("RETRAIN_TRAINER_BACKEND", "local"),
        "RETRAIN_DOCKER_NETWORK": os.environ.get("RETRAIN_DOCKER_NETWORK", "host"),
    }


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SystemExit unwinds the with-blocks below, which stop the S3 server and Airflow.
    raise SystemExit(128 + signum)


def run_demo(output_folder: Path, airflow_home: Path, conf: dict) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    config = PipelineConfig.from_params(conf)
    started = time.perf_counter()
    with LocalS3() as s3:
        print(f"local S3 endpoint: {s3.endpoint_url}", flush=True)
        client = make_client(s3.endpoint_url)
        count = upload_digits(client, config.bucket, config.raw_prefix)
        print(f"uploaded {count} demo images to s3://{config.bucket}/{config.raw_prefix}", flush=True)
        env = {**os.environ, **airflow_environment(airflow_home, s3.airflow_connection())}
        bin_dir = Path(sys.executable).parent
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        airflow = str(bin_dir / "airflow")
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        dag_run = subprocess.run([airflow, "dags", "test", DAG_ID, "--conf", json.dumps(conf)], env=env)
        shutil.rmtree(output_folder, ignore_errors=True)
        for prefix in (config.runs_prefix, config.reports_prefix, config.models_prefix):
            # Shards are bulky intermediate data; models, metrics and reports are what people open.
            download_tree(
                client,
                S3Uri(config.bucket, prefix),
                output_folder / prefix.rstrip("/"),
                skip_suffixes=(".tfrecord",),
            )
        pointer_key = f"{config.models_prefix}{config.model_name}/production.json"
        pointer = get_json(client, S3Uri(config.bucket, pointer_key)) if dag_run.returncode == 0 else None
    minutes = (time.perf_counter() - started) / 60
    if pointer is None:
        print(f"demo run FAILED after {minutes:.1f} min; outputs so far in {output_folder}/")
        return 1
    print(
        f"\ndemo finished in {minutes:.1f} min\n"
        f"  deployed: {pointer['model_name']} version {pointer['version']}\n"
        f"  test accuracy: {pointer['metrics']['accuracy']:.4f} "
        f"(macro F1 {pointer['metrics']['macro_f1']:.4f})\n"
        f"  in S3: {pointer['version_uri']} (pointer: s3://{config.bucket}/{pointer_key})\n"
        f"  mirrored locally: {output_folder}/models/{config.model_name}/{pointer['version']}/, "
        f"{output_folder}/runs/ and the Data Docs in {output_folder}/reports/*/data_docs/*/index.html"
    )
    return 0
