"""A local S3 endpoint (moto's server mode) for the demo and the tests: real HTTP, real
boto3 signing, objects kept in memory for the life of the server process.

The server runs as its own process: in-process it would share the GIL with the workers it
serves, which halves throughput for parallel transfers.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "demo-access-key",
    "AWS_SECRET_ACCESS_KEY": "demo-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}
STARTUP_TIMEOUT_SECONDS = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def airflow_connection(endpoint_url: str) -> str:
    """The value for AIRFLOW_CONN_AWS_DEFAULT pointing Airflow's S3Hook at an endpoint, with
    the credentials of this environment."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": os.environ["AWS_ACCESS_KEY_ID"],
            "password": os.environ["AWS_SECRET_ACCESS_KEY"],
            "extra": {"endpoint_url": endpoint_url, "region_name": "us-east-1"},
        }
    )


class LocalS3:
    """Starts `moto.server` on 127.0.0.1 and a free port; use as a context manager."""

    def __init__(self, port: int | None = None, require_auth: bool = False) -> None:
        self.port = port or free_port()
        # With auth on, moto checks access keys like S3 does and refuses unknown ones.
        self.require_auth = require_auth
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalS3:
        for name, value in DUMMY_CREDENTIALS.items():
            os.environ.setdefault(name, value)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **({"INITIAL_NO_AUTH_ACTION_COUNT": "0"} if self.require_auth else {})},
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto server exited with code {self._process.returncode}")
            try:
                urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"moto server did not answer on {self.endpoint_url} within {STARTUP_TIMEOUT_SECONDS} s"
        )

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._process = None

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def airflow_connection(self) -> str:
        return airflow_connection(self.endpoint_url)
