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

from tasks.config import Params, PipelineConfig
from tasks.demo.data import DIGIT_PARAMS, upload_digits
from tasks.demo.local_s3 import LocalS3
from tasks.layout import model_layout, output_prefixes, run_segment
from tasks.records import Pointer
from tasks.storage import download_tree, make_client

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "image_classifier_retrain"
# The digits' best epoch comes by about the fifth (0.99 validation accuracy); the default
# `epochs` would quadruple the demo's time for no gain.
DEMO_EPOCHS = 10


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
        "NO_PROXY": "127.0.0.1,localhost",
        # The embedded default trains in-process; set it to "docker" to use the trainer image.
        "RETRAIN_TRAINER_BACKEND": os.environ.get("RETRAIN_TRAINER_BACKEND", "local"),
        "RETRAIN_DOCKER_NETWORK": os.environ.get("RETRAIN_DOCKER_NETWORK", "host"),
    }


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SystemExit unwinds the with-blocks below, which stop the S3 server and Airflow.
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """Makes SIGTERM unwind like Ctrl-C, so the with-blocks stop what they started. Ctrl-C
    (SIGINT) works too when this was started by a script in the background, which starts it
    with SIGINT ignored."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def airflow_command(airflow_home: Path, s3: LocalS3, **settings: str) -> tuple[str, dict[str, str]]:
    """The venv's `airflow` executable and its environment: this project's DAGs, SQLite under
    airflow_home, the local S3 endpoint as the S3 connection, plus `settings`."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, **airflow_environment(airflow_home, s3.airflow_connection()), **settings}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return str(bin_dir / "airflow"), env


def upload_demo_data(s3: LocalS3, config: PipelineConfig) -> None:
    count = upload_digits(make_client(s3.endpoint_url), config.bucket, config.raw_prefix)
    print(
        f"local S3 endpoint {s3.endpoint_url}: {count} demo images in s3://{config.bucket}/{config.raw_prefix}"
    )


def demo_params(conf: Params) -> Params:
    """The run's Params: the digits' (label order, no mirror flips) and the demo's epochs,
    under whatever the person passed with --conf."""
    return {**DIGIT_PARAMS, "epochs": DEMO_EPOCHS, **conf}


def run_demo(output_folder: Path, airflow_home: Path, conf: Params) -> int:
    exit_on_sigterm()
    conf = demo_params(conf)
    config = PipelineConfig.from_params(conf)
    started = time.perf_counter()
    with LocalS3() as s3:
        upload_demo_data(s3, config)
        client = make_client(s3.endpoint_url)
        airflow, env = airflow_command(airflow_home, s3)
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        dag_run = subprocess.run([airflow, "dags", "test", DAG_ID, "--conf", json.dumps(conf)], env=env)
        shutil.rmtree(output_folder, ignore_errors=True)
        for prefix in output_prefixes(config.bucket):
            # Shards are bulky intermediate data; models, metrics and reports are what people open.
            download_tree(
                client, prefix, output_folder / prefix.key.rstrip("/"), skip_suffixes=(".tfrecord",)
            )
        pointer_uri = model_layout(config).pointer
        pointer = Pointer.read(client, pointer_uri) if dag_run.returncode == 0 else None
    minutes = (time.perf_counter() - started) / 60
    if pointer is None:
        print(f"demo run FAILED after {minutes:.1f} min; outputs so far in {output_folder}/")
        return 1
    print(
        f"\ndemo finished in {minutes:.1f} min\n"
        f"  deployed: {pointer.model_name} version {pointer.version}\n"
        f"  test accuracy: {pointer.metrics['accuracy']:.4f} "
        f"(macro F1 {pointer.metrics['macro_f1']:.4f})\n"
        f"  in S3: {pointer.version_uri} (pointer: {pointer_uri})\n"
        f"  mirrored locally: {output_folder}/models/{config.model_name}/{pointer.version}/, "
        f"{output_folder}/runs/ and the Data Docs in {output_folder}/reports/*/data_docs/*/index.html\n"
        f"  night report: {output_folder}/reports/{run_segment(pointer.run_id)}/night_report.html "
        "(open it in a browser)"
    )
    return 0
