"""The pipeline's outputs inside the Airflow UI, behind Airflow's own login.

An `AirflowPlugin` that mounts a FastAPI app on the API server under `/retrain`:

- `/retrain/runs/<dag_id>/<run_id>/report`: the run's night report (a redirect into the next
  route), shown as the "Night report" tab of every DAG run;
- `/retrain/runs/<dag_id>/<run_id>/files/<key>`: streams one S3 object of that run: its
  reports (`reports/<run>/...`: the night report, its pictures, the Data Docs) or its model's
  files (`models/<model_name>/...`), from the bucket and model the run's Params named. Paths
  mirror the bucket's keys, so the report's relative links work here, in S3 and in a local
  mirror alike;
- `/retrain/models`: every model's versions and an accuracy chart, in the navigation bar.

Airflow does not authenticate plugin apps: every route depends on `requires_access_dag`,
which reads the logged-in user from the API token (the UI's `_token` cookie, or a bearer
token) and asks the auth manager for read access to the DAG (401 without a user, 403
without access). What a path may reach is decided by `tasks.artifacts.artifact_key`.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.api_fastapi.core_api.security import requires_access_dag
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from retrain_airflow import s3_client

log = logging.getLogger(__name__)

RETRAIN_DAG_ID = "image_classifier_retrain"
URL_PREFIX = "/retrain"

artifact_app = FastAPI(title="Nightly Retrain artifacts", docs_url=None, redoc_url=None, openapi_url=None)


def run_settings(dag_id: str, run_id: str) -> tuple[str, str]:
    """(bucket, model_name) a run of the retrain DAG used: its conf over the Params' defaults."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    from tasks.config import PipelineConfig

    if dag_id != RETRAIN_DAG_ID:
        raise HTTPException(404, f"{dag_id} writes no night reports; {RETRAIN_DAG_ID} does")
    with create_session() as session:
        dag_run = session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.run_id == run_id).one_or_none()
        if dag_run is None:
            raise HTTPException(404, f"no run {run_id} of {dag_id}")
        config = PipelineConfig.from_params(dict(dag_run.conf or {}))
    return config.bucket, config.model_name


@artifact_app.get("/runs/{dag_id}/{run_id}/report", dependencies=[Depends(requires_access_dag(method="GET"))])
def night_report(dag_id: str, run_id: str) -> RedirectResponse:
    from tasks.layout import run_layout_of, run_segment

    bucket, _ = run_settings(dag_id, run_id)
    return RedirectResponse(
        f"files/{run_layout_of(bucket, run_segment(run_id)).night_report.key}", status_code=307
    )


@artifact_app.get(
    "/runs/{dag_id}/{run_id}/files/{path:path}",
    dependencies=[Depends(requires_access_dag(method="GET"))],
)
def run_file(dag_id: str, run_id: str, path: str) -> Response:
    from tasks.artifacts import RefusedPath, artifact_key, content_type
    from tasks.storage import S3Uri, get_bytes_if_exists

    bucket, model_name = run_settings(dag_id, run_id)
    try:
        key = artifact_key(path, run_id, model_name)
    except RefusedPath as refused:
        raise HTTPException(refused.status, str(refused)) from None
    body = get_bytes_if_exists(s3_client(), S3Uri(bucket, key))
    if body is None:
        raise HTTPException(404, f"{S3Uri(bucket, key)} does not exist (yet)")
    return Response(body, media_type=content_type(key), headers={"Cache-Control": "no-store"})


@artifact_app.get(
    "/models", dependencies=[Depends(requires_access_dag(method="GET", param_dag_id=RETRAIN_DAG_ID))]
)
def models() -> HTMLResponse:
    from tasks.artifacts import models_page
    from tasks.config import PipelineConfig

    return HTMLResponse(models_page(s3_client(), PipelineConfig(), RETRAIN_DAG_ID))


class RetrainViewsPlugin(AirflowPlugin):
    name = "nightly_retrain_views"
    fastapi_apps: list[Any] = [  # noqa: RUF012 - AirflowPlugin's declared class attributes
        {"app": artifact_app, "url_prefix": URL_PREFIX, "name": "Nightly Retrain artifacts"}
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
