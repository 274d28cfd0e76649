"""A real Airflow API server (with this project's plugins) for the artifact-server and security
tests, with a user per Airflow role (`viewer`, `user`, `op`, `admin`) and `outsider`, who may read
no DAG (tests/outsider_auth_manager.py); and the helpers to log in and GET through it."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tasks.demo.local_s3 import free_port

HERE = Path(__file__).resolve().parent
ROLES = {"viewer": "viewer", "user": "user", "op": "op", "admin": "admin", "outsider": "viewer"}
PASSWORDS = {name: f"{name}-{secrets.token_hex(4)}" for name in ROLES}


@pytest.fixture(scope="session")
def api_server(airflow_db, s3_endpoint, digits_bucket, tmp_path_factory):
    """`airflow api-server` on a free port, sharing the tests' metadata database and S3
    endpoint (its model page shows the digits bucket); one user per role, and outsider (no DAG
    access). Yields its base URL."""
    passwords = tmp_path_factory.mktemp("auth") / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "AIRFLOW__CORE__AUTH_MANAGER": "outsider_auth_manager.OutsiderAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
            f"{name}:{role}" for name, role in ROLES.items()
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "RETRAIN_BUCKET": digits_bucket,
    }
    log = tmp_path_factory.mktemp("api-server") / "api-server.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "airflow"),
                "api-server",
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert server.poll() is None, log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2):
                    break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail(f"the API server did not answer within 180 s: {log.read_text()[-3000:]}")
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def login(base_url: str, username: str) -> str:
    """An API token for one of the server's users, as the UI's login gets it."""
    request = urllib.request.Request(
        f"{base_url}/auth/token",
        data=json.dumps({"username": username, "password": PASSWORDS[username]}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.load(response)["access_token"])


def get(url: str, token: str | None = None) -> tuple[int, str, bytes]:
    """(status, content type, body) of a GET, errors included; redirects are followed."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def extra_links(api_server: str, run_id: str, task_id: str, token: str) -> dict:
    run = urllib.parse.quote(run_id, safe="")
    url = f"{api_server}/api/v2/dags/image_classifier_retrain/dagRuns/{run}/taskInstances/{task_id}/links"
    status, _, body = get(url, token)
    assert status == 200, body[:300]
    return json.loads(body)["extra_links"]


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@contextmanager
def browser_page(base_url: str, username: str) -> Iterator[tuple[Any, list[str]]]:
    """A Chromium page (Debian's, through Playwright) logged in to the API server as
    `username`, and the messages of every dialog it opened (each dismissed)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: `make test` installs Debian's chromium package")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        host = urllib.parse.urlparse(base_url).hostname
        # What the UI's login leaves: the API token in the `_token` cookie.
        token = login(base_url, username)
        context.add_cookies([{"name": "_token", "value": token, "domain": host, "path": "/"}])
        page, dialogs = context.new_page(), []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        try:
            yield page, dialogs
        finally:
            browser.close()
