"""A new user's first hour with `make ui`, in a real browser (Debian's chromium driven by
Playwright) against the real `airflow standalone` it starts (API server, scheduler, DAG
processor): read the banner, log in, trigger the retrain DAG from its form with the defaults,
watch the run succeed, read its Night report tab, trigger again from the form with changed
values, read the Models page, roll back from the rollback DAG's form, see the star move, and
stop it all with Ctrl-C. Screenshots go to build/first-hour-*.png.

The deployment's Param defaults are the banner's quick run (RETRAIN_PARAM_DEFAULTS), so "the
defaults" here are what the form shows and what a quick run trains.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.config import PARAM_DEFAULTS_ENV, PipelineConfig
from tasks.demo.local_s3 import free_port
from tasks.demo.ui import QUICK_RUN

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
BUILD = ROOT / "build"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
RUN_TIMEOUT_SECONDS = 420
STOP_SECONDS = 10


def processes_using(airflow_home: Path) -> list[int]:
    """PIDs whose environment names this Airflow home (standalone's children included)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"AIRFLOW_HOME={airflow_home}".encode() in environ:
            found.append(int(proc.name))
    return found


class Terminal:
    """`make ui` as a terminal runs it: its own process group (Ctrl-C signals the whole
    group), lines typed on its stdin, what it prints read line by line."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.printed: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.printed.append(line)
            self.lines.put(line)

    def read_until(self, pattern: str, timeout: float) -> list[str]:
        """The lines printed from now up to and including the first that contains `pattern`."""
        read, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                assert self.process.poll() is None, f"make ui exited early: {''.join(self.printed)}"
                continue
            read.append(line)
            if pattern in line:
                return read
        pytest.fail(f"no {pattern!r} within {timeout} s; it printed:\n{''.join(self.printed[-40:])}")

    def type_line(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def ctrl_c(self) -> float:
        """Seconds until make and everything below it exited after the terminal's SIGINT."""
        started = time.monotonic()
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            pytest.fail(f"make ui still ran 60 s after Ctrl-C:\n{''.join(self.printed[-20:])}")
        return time.monotonic() - started


@pytest.fixture
def make_ui(tmp_path) -> Iterator[tuple[Terminal, Path, int]]:
    home, port = tmp_path / "airflow-ui", free_port()
    # What an earlier `make ui` left: its metadata and logs, whose S3 data died with it.
    (home / "logs").mkdir(parents=True)
    (home / "logs" / "earlier-run.log").write_text("a run whose reports are gone\n")
    (home / "airflow.db").write_bytes(b"an earlier session's metadata")
    env = {key: value for key, value in os.environ.items() if key not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env |= {"PYTHONUNBUFFERED": "1", PARAM_DEFAULTS_ENV: json.dumps(QUICK_RUN)}
    terminal = Terminal(["make", "--no-print-directory", "ui", f"UI_HOME={home}", f"UI_PORT={port}"], env)
    try:
        yield terminal, home, port
    finally:
        if terminal.process.poll() is None:
            terminal.ctrl_c()


class FirstHour:
    """The browser, logged in as a person would, and the REST API with the login's token."""

    def __init__(self, page, url: str) -> None:
        self.page, self.url = page, url

    def log_in(self, password: str) -> None:
        self.page.goto(self.url)
        self.page.get_by_label(re.compile("username", re.I)).fill("admin")
        self.page.get_by_label(re.compile("password", re.I)).fill(password)
        self.page.get_by_role("button", name=re.compile("sign in", re.I)).click()
        self.page.wait_for_url(re.compile(r"^(?!.*auth/login)"), timeout=60_000)

    def open_trigger_form(self, dag_id: str):
        self.page.goto(f"{self.url}/dags/{dag_id}")
        self.page.get_by_role("button", name="Trigger Dag").click()
        return self.page.get_by_role("dialog")

    def trigger(self, form) -> str:
        """Submits the form; the UI then opens the new run, whose id is in its address."""
        form.get_by_role("button", name="Trigger", exact=True).click()
        self.page.wait_for_url(re.compile("/runs/"), timeout=60_000)
        return urllib.parse.unquote(self.page.url.rsplit("/runs/", 1)[1].split("/")[0])

    def api(self, path: str) -> dict:
        """GET on Airflow's REST API with the login's token (the UI's `_token` cookie)."""
        token = next(cookie["value"] for cookie in self.page.context.cookies() if cookie["name"] == "_token")
        request = urllib.request.Request(
            f"{self.url}/api/v2/{path}", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def run_state(self, dag_id: str, run_id: str) -> dict:
        return self.api(f"dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}")

    def wait_for_the_run(self, dag_id: str, run_id: str) -> dict:
        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            run = self.run_state(dag_id, run_id)
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(2)
        pytest.fail(f"{dag_id} run {run_id} did not finish within {RUN_TIMEOUT_SECONDS} s")

    def night_report(self):
        """The Night report tab of the run the page shows (reloaded: it opened while running)."""
        self.page.reload()
        self.page.get_by_text("Night report", exact=True).click()
        report = self.page.frame_locator("iframe").first
        report.locator("#decision").wait_for(timeout=60_000)
        return report

    def production_row(self) -> str:
        self.page.goto(self.url)
        self.page.get_by_role("button", name="Browse").click()
        self.page.get_by_role("menuitem", name="Models").click()
        production = self.page.frame_locator("iframe").first.locator("tr.production").first
        production.wait_for(timeout=60_000)
        return str(production.inner_text())


@pytest.fixture
def browser_page():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: `make test` installs Debian's chromium package")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        browser.close()


def test_a_new_users_first_hour_in_the_browser(make_ui, browser_page):
    terminal, home, port = make_ui
    BUILD.mkdir(exist_ok=True)
    url = f"http://127.0.0.1:{port}"

    # The banner comes last, above nothing of Airflow's, and again on Enter.
    printed = terminal.read_until("Ctrl-C stops", timeout=300)
    banner = "".join(
        printed[printed.index(next(line for line in printed if line.startswith("Airflow UI:"))) :]
    )
    assert f"Airflow UI: {url}" in banner and f"Airflow's log: {home / 'standalone.log'}" in banner
    assert banner.count("\n") < 10, banner
    terminal.type_line("")
    assert "".join(terminal.read_until("Ctrl-C stops", timeout=30)).strip() == banner.strip()
    password = banner.split("login admin / ", 1)[1].split(")", 1)[0]

    person = FirstHour(browser_page, url)
    person.log_in(password)
    # The earlier session's runs are forgotten with its S3 data.
    assert person.api("dags/image_classifier_retrain/dagRuns")["total_entries"] == 0
    assert not (home / "logs" / "earlier-run.log").exists()

    # The form with the deployment's defaults: nothing to fill in, the rules stated.
    form = person.open_trigger_form("image_classifier_retrain")
    form.get_by_role("button", name="Training").click()
    assert form.locator("input[name=element_image_size]").input_value() == str(QUICK_RUN["image_size"])
    assert form.get_by_text("(allowed: >= 22, <= 512)").is_visible()
    form.screenshot(path=str(BUILD / "first-hour-form.png"))
    first_run = person.trigger(form)
    assert person.wait_for_the_run("image_classifier_retrain", first_run)["state"] == "success"

    report = person.night_report()
    assert report.locator("#decision").inner_text() == "Deployed version 1"
    assert report.locator("span.passed").all_inner_texts() == ["passed", "passed"]
    first_accuracy = float(report.locator(".accuracy").first.inner_text())
    assert first_accuracy >= PipelineConfig().min_test_accuracy
    assert report.get_by_role("link", name="Model card, version 1").is_visible()
    browser_page.screenshot(path=str(BUILD / "first-hour-report.png"))
    report.get_by_role("link", name="Model card, version 1").click()
    report.locator("h1", has_text="version 1").wait_for(timeout=60_000)

    # Again, forced, with a margin against the champion typed into the form.
    form = person.open_trigger_form("image_classifier_retrain")
    form.get_by_role("button", name="Training").click()
    form.get_by_role("button", name="Blessing and retries").click()
    form.locator("label:has(input[name=element_force_retrain])").click()
    form.locator("input[name=element_max_regression]").fill("0.2")
    second_run = person.trigger(form)
    run = person.wait_for_the_run("image_classifier_retrain", second_run)
    assert run["state"] == "success" and run["conf"]["force_retrain"] is True
    report = person.night_report()
    assert report.locator("#decision").inner_text() == "Deployed version 2"
    assert report.get_by_role("cell", name=f"v1: {first_accuracy:.4f}").is_visible()

    assert person.production_row().startswith("★ 2")
    browser_page.screenshot(path=str(BUILD / "first-hour-models.png"))

    # Roll back from the rollback DAG's form: its default is version 1.
    rollback = person.trigger(person.open_trigger_form("rollback_production"))
    assert person.wait_for_the_run("rollback_production", rollback)["state"] == "success"
    assert person.production_row().startswith("★ 1")

    # Ctrl-C stops make, retrain ui, Airflow and the S3 endpoint, and quickly.
    assert terminal.ctrl_c() <= STOP_SECONDS
    assert processes_using(home) == []
    with pytest.raises(OSError, match="Connection refused"):
        urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2)
