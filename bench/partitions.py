"""The mapped data plane on a real Airflow (standalone: scheduler, API server and LocalExecutor,
parallelism 2): wall time from the start of plan_partitions to the end of assemble_dataset
(collect + validate + preprocess) for the same images at 4 partitions vs 1, each on a bucket of
its own so that both decode everything. Training is not part of the figure: each run is
stopped once its dataset is written.

Run alone with `python -m bench.partitions`.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from tasks.demo.data import DIGIT_CLASS_NAMES, digit_png
from tasks.demo.local_s3 import LocalS3, free_port
from tasks.demo.run import DAG_ID, airflow_command
from tasks.demo.ui import admin_password, stop_group, wait_for_health
from tasks.layout import raw_image
from tasks.storage import S3Client, create_bucket, make_client, parallel_map, put_bytes

PARALLELISM = 2
SHIFTS = 3  # each digit also shifted by 1 and 2 pixels: 5,391 distinct images
IMAGE_SIZE = 128
DATA_PLANE = ("plan_partitions", "collect", "validate", "preprocess", "assemble_dataset")


def upload_shifted_digits(client: S3Client, bucket: str) -> int:
    from sklearn.datasets import load_digits

    digits = load_digits()
    create_bucket(client, bucket)
    items = [(index, shift) for index in range(len(digits.images)) for shift in range(SHIFTS)]

    def upload(item: tuple[int, int]) -> None:
        index, shift = item
        pixels = np.roll(digits.images[index], shift, axis=1)
        uri = raw_image(
            bucket, "raw/", DIGIT_CLASS_NAMES[int(digits.target[index])], f"d{index:04d}-{shift}.png"
        )
        put_bytes(client, uri, digit_png(pixels, IMAGE_SIZE), "image/png")

    parallel_map(upload, items)
    return len(items)


class Api:
    def __init__(self, base_url: str, password: str) -> None:
        self.base_url, self.token = base_url, ""
        self.token = self.call("POST", "/auth/token", {"username": "admin", "password": password})[
            "access_token"
        ]

    def call(self, method: str, path: str, body: dict | None = None) -> Any:
        request = urllib.request.Request(
            self.base_url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"{}")


def cpu_times() -> tuple[float, float]:
    """(busy, total) CPU time of the whole machine so far, from /proc/stat."""
    user, nice, system, idle, iowait, *rest = (
        float(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    )
    busy = user + nice + system + sum(rest[:3])
    return busy, busy + idle + iowait


def data_plane_seconds(api: Api, conf: dict[str, Any], timeout_s: float = 1200) -> dict[str, float]:
    """Triggers a run, waits for its dataset and stops the run. Returns the data plane's wall
    time ("wall"), each task's summed duration, from the task instances' own times, and how
    busy the machine's CPUs were meanwhile ("cpu_busy", 0 to 1)."""
    busy_before, total_before = cpu_times()
    run = api.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": conf})
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}"
    deadline = time.monotonic() + timeout_s
    while True:
        instances = api.call("GET", f"{path}/taskInstances?limit=100")["task_instances"]
        states = {ti["task_id"]: ti["state"] for ti in instances}
        if states.get("assemble_dataset") == "success":
            break
        failed = [task for task, state in states.items() if state in ("failed", "upstream_failed")]
        if failed or time.monotonic() > deadline:
            raise RuntimeError(f"the data plane did not finish: {states}")
        time.sleep(2)
    busy_after, total_after = cpu_times()
    api.call("PATCH", path, {"state": "failed"})  # the figure ends here; no training
    plane = [ti for ti in instances if ti["task_id"] in DATA_PLANE]
    starts = [datetime.fromisoformat(ti["start_date"]) for ti in plane]
    ends = [datetime.fromisoformat(ti["end_date"]) for ti in plane]
    seconds = {
        "wall": (max(ends) - min(starts)).total_seconds(),
        "cpu_busy": (busy_after - busy_before) / (total_after - total_before),
    }
    for ti, start, end in zip(plane, starts, ends, strict=True):
        seconds[ti["task_id"]] = seconds.get(ti["task_id"], 0.0) + (end - start).total_seconds()
    return seconds


def measure() -> list[tuple[str, float, float]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with LocalS3() as s3, tempfile.TemporaryDirectory(prefix="bench-airflow-") as home:
        client = make_client(s3.endpoint_url)
        images = {count: upload_shifted_digits(client, f"bench-partitions-{count}") for count in (1, 4)}
        airflow, env = airflow_command(
            Path(home),
            s3,
            RETRAIN_SCHEDULE="none",
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(port),
            AIRFLOW__API__BASE_URL=url,
            AIRFLOW__CORE__PARALLELISM=str(PARALLELISM),
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(64),
        )
        with open(Path(home) / "standalone.log", "wb") as log:
            standalone = subprocess.Popen(
                [airflow, "standalone"], env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT
            )
            try:
                if not wait_for_health(url, standalone, 300):
                    raise RuntimeError(f"Airflow did not come up on {url}")
                api = Api(url, admin_password(Path(home)))
                deadline = time.monotonic() + 300
                while True:
                    try:
                        api.call("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
                        break
                    except urllib.error.HTTPError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(3)
                seconds = {
                    count: data_plane_seconds(
                        api,
                        {
                            "bucket": f"bench-partitions-{count}",
                            "partitions": count,
                            "image_size": IMAGE_SIZE,
                            "class_names": list(DIGIT_CLASS_NAMES),
                        },
                    )
                    for count in (1, 4)
                }
            finally:
                stop_group(standalone)
    cores = len(os.sched_getaffinity(0))
    one, four = seconds[1], seconds[4]
    print(f"data plane task seconds at P=1: {one}\ndata plane task seconds at P=4: {four}")
    return [
        (
            f"partitions: s, collect..assemble at P=4 vs P=1 ({images[4]} images, "
            f"parallelism {PARALLELISM}, {cores} cores)",
            four["wall"],
            one["wall"],
        ),
        ("partitions: CPUs busy during the data plane, P=1 (fraction)", one["cpu_busy"], 0.0),
        ("partitions: CPUs busy during the data plane, P=4 (fraction)", four["cpu_busy"], 0.0),
        ("partitions: collect, objects/s of one instance (P=1)", images[1] / one["collect"], 0.0),
        ("partitions: preprocess, images/s of one instance (P=1)", images[1] / one["preprocess"], 0.0),
        (
            "partitions: validate + assemble_dataset, rows/s (P=1)",
            images[1] / (one["validate"] + one["assemble_dataset"]),
            0.0,
        ),
    ]


if __name__ == "__main__":
    for name, measured, baseline in measure():
        ratio = f"{measured / baseline:>6.2f}x" if baseline else "      -"
        print(f"{name:<72} {measured:>10.4g} {baseline:>10.4g} {ratio}")
