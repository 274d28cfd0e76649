"""A local S3 endpoint (moto's server mode) for the demo and the tests: real HTTP, real
boto3 signing, objects kept in memory for the life of the process."""

from __future__ import annotations

import json
import logging
import os
import socket
from typing import Any

DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "demo-access-key",
    "AWS_SECRET_ACCESS_KEY": "demo-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalS3:
    """Starts moto on 127.0.0.1 and a free port; use as a context manager."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._server: Any = None

    def start(self) -> LocalS3:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        for name, value in DUMMY_CREDENTIALS.items():
            os.environ.setdefault(name, value)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def airflow_connection(self) -> str:
        """The value for AIRFLOW_CONN_AWS_DEFAULT pointing Airflow's S3Hook at this endpoint."""
        return json.dumps({
            "conn_type": "aws",
            "login": os.environ["AWS_ACCESS_KEY_ID"],
            "password": os.environ["AWS_SECRET_ACCESS_KEY"],
            "extra": {"endpoint_url": self.endpoint_url, "region_name": "us-east-1"},
        })
