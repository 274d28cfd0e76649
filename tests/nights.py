"""The whole-DAG nights the suite shares, each run once per session through `dag.test()`.

A night is the expensive part of the suite (a real S3 bucket, GX, training, a SavedModel
export), and many tests check different facts of the same kind of night: the deploying night
that the DAG, report, browser and link tests all read, the gate failure that the alert and
the artifact-server tests read. So each kind of night runs once, in a session fixture, and
reaches the tests as a `Night`: its run id, task states, everything it printed and logged,
the alerts it sent, and production's pointer as the night left it. Its bucket stays for the
tests to read: the documents the real writers wrote, never hand-made copies.

Nights that need an earlier night's production model run as one chain (`champion_nights`
here, the week of nights in tests/week.py). Tests that change the DAG or the environment for
their run (a fault, a monkeypatched step) run their own nights with `run_night`.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import pytest
from alert_sink import WebhookSink
from dag_runs import run_with_defaults_restored
from pointers import production_pointer

from tasks.config import PipelineConfig
from tasks.demo.data import DIGIT_PARAMS
from tasks.layout import model_layout, run_segment
from tasks.recipe import REFERENCE_RECIPE
from tasks.storage import S3Uri, create_bucket, get_bytes, make_client, put_json

ALERT_WEBHOOK_ENV = "RETRAIN_ALERT_WEBHOOK_URL"

# The smallest settings that still prove a deploy: 32x32 digits, in label order as the demo
# passes them (without, the folders sorted by name), three epochs.
FAST = {
    "image_size": 32,
    "epochs": 3,
    "batch_size": 32,
    "min_images": 100,
    **DIGIT_PARAMS,
}
BARE_RECIPE = asdict(REFERENCE_RECIPE)
# A gate that refuses a bucket holding two of its three classes, quickly (nothing trains).
GATE_CONF = {
    **FAST,
    "class_names": ["zero", "one", "two"],
    "min_images": 20,
    "min_images_per_class": 5,
    "max_quarantine_fraction": 0.1,
}
GUARDED_MODEL = "guarded"


@dataclass
class Night:
    """One finished run of the retrain DAG, as the tests read it."""

    run_id: str
    state: str
    states: dict[str, str]
    log: str  # what the run printed (stdout and stderr) and logged at INFO and above
    alerts: list[dict[str, Any]]  # the failure alerts the run sent
    bucket: str
    model_name: str
    pointer: bytes | None  # production.json as the night left it (None: there was none)

    @property
    def segment(self) -> str:
        return run_segment(self.run_id)

    def failed_task(self) -> str:
        (failed,) = [task for task, state in self.states.items() if state == "failed"]
        return failed

    def run_file(self, s3: Any, name: str) -> bytes:
        """A file of the night's run folder (runs/<run>/<name>)."""
        return get_bytes(s3, S3Uri(self.bucket, f"runs/{self.segment}/{name}"))

    def report(self, s3: Any) -> bytes:
        """The night report the run wrote."""
        return get_bytes(s3, S3Uri(self.bucket, f"reports/{self.segment}/night_report.html"))


class _LogLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(levelname)-8s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def recorded_output(pytest_config: pytest.Config) -> Iterator[list[str]]:
    """Collects what the block prints (through pytest's global capture: a session fixture has
    no capfd) and logs at INFO and above. The yielded list holds the text once the block
    ends. What was printed is handed back to pytest, so a failing test's report shows it."""
    capture = pytest_config.pluginmanager.getplugin("capturemanager")
    capturing = capture is not None and capture.is_globally_capturing()
    earlier_out, earlier_err = capture.read_global_capture() if capturing else ("", "")
    root, lines = logging.getLogger(), _LogLines()
    level = root.level
    root.addHandler(lines)
    root.setLevel(min(level, logging.INFO))
    collected: list[str] = []
    try:
        yield collected
    finally:
        root.removeHandler(lines)
        root.setLevel(level)
        out, err = capture.read_global_capture() if capturing else ("", "")
        sys.stdout.write(earlier_out + out)
        sys.stderr.write(earlier_err + err)
        collected.append(out + err + "\n".join(lines.lines))


class NightRunner:
    """Runs the retrain DAG with `conf` over its parsed defaults; the run's failure alerts go
    to the session's webhook. Returns the `Night`."""

    def __init__(self, retrain_dag: Any, pristine_params: dict, s3: Any, webhook: WebhookSink, config):
        self.retrain_dag, self.pristine_params, self.s3 = retrain_dag, pristine_params, s3
        self.webhook, self.pytest_config = webhook, config

    def __call__(self, *, bucket: str, model_name: str = "digits-cnn", **conf: Any) -> Night:
        alerts_before = len(self.webhook.messages)
        with pytest.MonkeyPatch.context() as patch, recorded_output(self.pytest_config) as output:
            patch.setenv(ALERT_WEBHOOK_ENV, self.webhook.url)
            dag_run, states = run_with_defaults_restored(
                self.retrain_dag, self.pristine_params, bucket=bucket, model_name=model_name, **conf
            )
        return Night(
            run_id=dag_run.run_id,
            state=dag_run.state,
            states=states,
            log=output[0],
            alerts=list(self.webhook.messages[alerts_before:]),
            bucket=bucket,
            model_name=model_name,
            pointer=self.pointer(bucket, model_name),
        )

    def pointer(self, bucket: str, model_name: str) -> bytes | None:
        uri = model_layout(PipelineConfig(bucket=bucket, model_name=model_name)).pointer
        try:
            return get_bytes(self.s3, uri)
        except Exception:  # noqa: BLE001 - no bucket, no pointer: production has none
            return None


def new_bucket(s3: Any, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    create_bucket(s3, name)
    return name


def guard_production(s3: Any, bucket: str) -> bytes:
    """Puts a production pointer that a failing night must leave byte for byte; returns it."""
    pointer_uri = model_layout(PipelineConfig(bucket=bucket, model_name=GUARDED_MODEL)).pointer
    put_json(s3, pointer_uri, production_pointer(bucket, GUARDED_MODEL, 3).to_json())
    return get_bytes(s3, pointer_uri)


@pytest.fixture(scope="session")
def alert_webhook() -> Iterator[WebhookSink]:
    """The webhook every shared night sends its failure alerts to."""
    with WebhookSink() as sink:
        yield sink


@pytest.fixture(scope="session")
def run_night(retrain_dag, pristine_params, s3_endpoint, alert_webhook, pytestconfig) -> NightRunner:
    return NightRunner(retrain_dag, pristine_params, make_client(s3_endpoint), alert_webhook, pytestconfig)


@dataclass(frozen=True)
class ChampionNights:
    """Four nights of one model on the session's digits, each after the one before. (The
    week of nights, tests/week.py, holds a night with no change.)"""

    first: Night  # deploys version 1 (max_attempts 2: attempt 1 is blessed, attempt 2 never runs)
    refused: Night  # forced, one epoch: a regression against v1, given up on; the run stays green
    passed: Night  # forced, as long as v1's training, within a 0.2 margin: deployed as v2
    other_size: Night  # 24 px: v2 cannot score these images, so only the thresholds apply; v3

    def all(self) -> list[Night]:
        return [self.first, self.refused, self.passed, self.other_size]


@pytest.fixture(scope="session")
def champion_nights(run_night, digits_bucket) -> ChampionNights:
    conf = {
        **FAST,
        "bucket": digits_bucket,
        "model_name": f"champion-{uuid.uuid4().hex[:6]}",
        "min_test_accuracy": 0.5,
        "max_attempts": 1,
    }
    first = run_night(**{**conf, "max_attempts": 2})
    assert first.states["deploy"] == "success", first.states
    return ChampionNights(
        first=first,
        refused=run_night(
            **{**conf, "epochs": 1, "force_retrain": True, "max_regression": 0.0, "fail_on_give_up": False}
        ),
        passed=run_night(**{**conf, "force_retrain": True, "max_regression": 0.2}),
        # The reference recipe passes 0.5 in 2 epochs at 24 px; augmentation needs more epochs.
        other_size=run_night(**{**conf, **BARE_RECIPE, "image_size": 24, "epochs": 2, "max_regression": 0.0}),
    )


@pytest.fixture(scope="session")
def gate_failure_night(run_night, s3_endpoint) -> tuple[Night, bytes]:
    """A bucket with images of two of the three classes the night asks for: the gate fails
    it at validate. Returns the night and the production pointer it had to leave alone."""
    from images_factory import seed_images

    s3 = make_client(s3_endpoint)
    bucket = new_bucket(s3, "gate")
    production_before = guard_production(s3, bucket)
    seed_images(s3, bucket, classes=("zero", "one"))
    return run_night(bucket=bucket, **{**GATE_CONF, "model_name": GUARDED_MODEL}), production_before
