"""The pipeline's outputs inside the Airflow UI, behind Airflow's own login.

An `AirflowPlugin` that mounts a FastAPI app on the API server under `/retrain`:

- `/retrain/runs/<dag_id>/<run_id>/report`: the run's night report (a redirect into the next
  route), shown as the "Night report" tab of every DAG run;
- `/retrain/runs/<dag_id>/<run_id>/files/<key>`: streams one S3 object of that run: its
  reports (`reports/<run>/...`: the night report, its pictures, the Data Docs) or its model's
  files (`models/<model_name>/...`), from the bucket and model the run's Params named (a bucket
  the deployment does not allow is never read: its own is). Paths mirror the bucket's keys, so
  the report's relative links work here, in S3 and in a local mirror alike. What the bucket
  holds is served as hostile content: listed kinds only, 20 MB at most, with `nosniff` and a
  sandbox CSP under which no script runs (tasks/artifacts.py, docs/security.md);
- `/retrain/runs/<dag_id>/<run_id>/go/<target>`: where a task's extra link leads (the raw
  gate's Data Docs from `validate`, an attempt in the night report from `evaluate`, the
  deployed version's model card page from `deploy`);
- `/retrain/models`: every model's versions and an accuracy chart, in the navigation bar.

Airflow does not authenticate plugin apps: every route depends on `requires_access_dag`,
which reads the logged-in user from the API token (the UI's `_token` cookie, or a bearer
token) and asks the auth manager for read access to the DAG (401 without a user, 403
without access). What a path may reach is decided by `tasks.artifacts.artifact_key`.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from functools import cache
from typing import Any

from airflow.api_fastapi.core_api.security import requires_access_dag
from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from retrain_airflow import s3_client

log = logging.getLogger(__name__)

RETRAIN_DAG_ID = "image_classifier_retrain"
URL_PREFIX = "/retrain"


@cache
def artifact_client() -> Any:
    """The API server's one S3 client for these routes (boto3 clients are thread-safe)."""
    return s3_client()


artifact_app = FastAPI(title="Nightly Retrain artifacts", docs_url=None, redoc_url=None, openapi_url=None)


def run_settings(dag_id: str, run_id: str) -> tuple[str, str]:
    """(bucket, model_name) a run of the retrain DAG used: its conf over the Params' defaults."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    from tasks.config import report_settings

    if dag_id != RETRAIN_DAG_ID:
        raise HTTPException(404, f"{dag_id} writes no night reports; {RETRAIN_DAG_ID} does")
    with create_session() as session:
        dag_run = session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.run_id == run_id).one_or_none()
        if dag_run is None:
            raise HTTPException(404, f"no run {run_id} of {dag_id}")
        config = report_settings(dict(dag_run.conf or {}))
    return config.bucket, config.model_name


@artifact_app.get("/runs/{dag_id}/{run_id}/report", dependencies=[Depends(requires_access_dag(method="GET"))])
def night_report(dag_id: str, run_id: str) -> Response:
    from tasks.artifacts import SERVED_HEADERS, missing_report_page, report_segment
    from tasks.layout import run_layout_of
    from tasks.storage import exists

    bucket, _ = run_settings(dag_id, run_id)
    report = run_layout_of(bucket, report_segment(artifact_client(), bucket, run_id)).night_report
    if not exists(artifact_client(), report):
        return HTMLResponse(missing_report_page(run_id, str(report)), status_code=404, headers=SERVED_HEADERS)
    return RedirectResponse(f"files/{report.key}", status_code=307)


@artifact_app.get(
    "/runs/{dag_id}/{run_id}/files/{path:path}",
    dependencies=[Depends(requires_access_dag(method="GET"))],
)
def run_file(dag_id: str, run_id: str, path: str) -> Response:
    """Streams the object, as hostile content (SERVED_HEADERS), if its kind is served and it
    is not larger than MAX_SERVED_BYTES."""
    from tasks.artifacts import (
        MAX_SERVED_BYTES,
        SERVED_HEADERS,
        RefusedPath,
        artifact_key,
        content_type,
        report_segment,
    )
    from tasks.storage import S3Uri, open_object

    bucket, model_name = run_settings(dag_id, run_id)
    try:
        key = artifact_key(path, run_id, model_name, report_segment(artifact_client(), bucket, run_id))
        media_type = content_type(key)
    except RefusedPath as refused:
        raise HTTPException(refused.status, str(refused)) from None
    opened = open_object(artifact_client(), S3Uri(bucket, key))
    if opened is None:
        raise HTTPException(404, f"{S3Uri(bucket, key)} does not exist (yet)")
    if opened.size > MAX_SERVED_BYTES:
        opened.close()
        shown = f"over the {MAX_SERVED_BYTES:,} shown here; read it from S3"
        raise HTTPException(413, f"{S3Uri(bucket, key)} is {opened.size:,} bytes, {shown}")
    headers = SERVED_HEADERS | {"Content-Length": str(opened.size)}
    return StreamingResponse(opened.chunks(), media_type=media_type, headers=headers)


@artifact_app.get(
    "/runs/{dag_id}/{run_id}/go/{target}", dependencies=[Depends(requires_access_dag(method="GET"))]
)
def go(dag_id: str, run_id: str, target: str) -> RedirectResponse:
    """Resolves an extra link: `data-docs`, `attempt-<n>` or `model-card`."""
    from tasks.artifacts import report_segment
    from tasks.layout import ModelLayout, run_layout_of
    from tasks.night_report import NightOutcome
    from tasks.storage import get_bytes_if_exists

    bucket, model_name = run_settings(dag_id, run_id)
    run = run_layout_of(bucket, report_segment(artifact_client(), bucket, run_id))
    if target == "data-docs":
        return RedirectResponse(f"../files/{run.data_docs_index('raw').key}", status_code=307)
    if target.startswith("attempt-") and target.removeprefix("attempt-").isdigit():
        return RedirectResponse(f"../files/{run.night_report.key}#{target}", status_code=307)
    if target == "model-card":
        written = get_bytes_if_exists(artifact_client(), run.night_outcome)
        outcome = NightOutcome.from_json(json.loads(written)) if written else None
        if outcome is None or outcome.version is None:
            raise HTTPException(404, f"run {run_id} deployed no version (see its night report)")
        card = ModelLayout.of(bucket, model_name).version(outcome.version).model_card_page
        return RedirectResponse(f"../files/{card.key}", status_code=307)
    raise HTTPException(404, f"no link {target}: data-docs, attempt-<n> or model-card")


class RunArtifactLink(BaseOperatorLink):
    """An extra link on the retrain DAG's tasks whose id ends in `task_suffix`, into the
    artifact server (`go/<target>`; `{attempt}` becomes the task's attempt number). Other
    tasks get no link."""

    link_name: str = ""
    task_suffix: str = ""
    target: str = ""

    @property
    def name(self) -> str:
        return self.link_name

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        if ti_key.dag_id != RETRAIN_DAG_ID or not operator.task_id.endswith(self.task_suffix):
            return ""
        attempt = operator.task_id.split(".")[0].removeprefix("attempt_")
        run = urllib.parse.quote(ti_key.run_id, safe="")
        return f"{URL_PREFIX}/runs/{ti_key.dag_id}/{run}/go/{self.target.format(attempt=attempt)}"


class DataDocsLink(RunArtifactLink):
    link_name, task_suffix, target = "Data Docs", "validate", "data-docs"


class AttemptReportLink(RunArtifactLink):
    link_name, task_suffix, target = "Curves and confusion matrix", ".evaluate", "attempt-{attempt}"


class ModelCardLink(RunArtifactLink):
    link_name, task_suffix, target = "Model card", "deploy", "model-card"


@artifact_app.get(
    "/models", dependencies=[Depends(requires_access_dag(method="GET", param_dag_id=RETRAIN_DAG_ID))]
)
def models() -> HTMLResponse:
    from tasks.artifacts import SERVED_HEADERS, models_page
    from tasks.config import PipelineConfig

    return HTMLResponse(
        models_page(artifact_client(), PipelineConfig(), RETRAIN_DAG_ID), headers=SERVED_HEADERS
    )


class RetrainViewsPlugin(AirflowPlugin):
    name = "nightly_retrain_views"
    fastapi_apps: list[Any] = [  # noqa: RUF012 - AirflowPlugin's declared class attributes
        {"app": artifact_app, "url_prefix": URL_PREFIX, "name": "Nightly Retrain artifacts"}
    ]
    global_operator_extra_links: list[Any] = [  # noqa: RUF012 - as above
        DataDocsLink(),
        AttemptReportLink(),
        ModelCardLink(),
    ]
    external_views: list[Any] = [  # noqa: RUF012 - as above
        {
            "name": "Night report",
            "href": f"{URL_PREFIX}/runs/{{DAG_ID}}/{{RUN_ID}}/report",
            "destination": "dag_run",
            "url_route": "night-report",
        },
        {
            "name": "Models",
            "href": f"{URL_PREFIX}/models",
            "destination": "nav",
            "category": "browse",
            "url_route": "retrain-models",
        },
    ]
