"""A night with no change at two catalogue sizes, 4x apart (50,000 and 200,000 objects by
default), in the same run, against a local S3 server seeded on its side (bench/seeded_s3.py). Each
no-change night runs REPEATS times; the one of median wall time is reported. Each night from the
S3 Inventory report reads a new delivery of it (filtered to raw/, as docs/partitions.md advises),
after one night that planned from the report in full.

Each night runs the DAG's steps in its order: plan_partitions, collect (P instances),
validate, preprocess (P instances), assemble_dataset. The once-only steps each run in a fresh
process, as an Airflow task does, which reports the step's own time (start-up and imports
apart) and its peak resident memory. The mapped instances run in this process, one after the
other; the night's wall time on enough workers is the once-only steps plus the slowest
instance of each mapped step. Every GetObject on a raw object is counted: a night with no
change must read none.

    python -m bench.catalogue [SMALL] [LARGE]      # `make bench-catalogue`
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.memory import peak_rss_mib
from bench.seeded_s3 import seeded_s3
from tasks.config import PipelineConfig
from tasks.demo.inventory import write_inventory
from tasks.storage import S3Client, S3Uri, make_client

IMAGE_SIZE = 32  # the smallest the model takes
ONCE_ONLY = ("plan_partitions", "validate", "assemble_dataset")
REPEATS = 3  # no-change nights per size and way of reading the bucket: the median is reported
FIRST_DELIVERY = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # of the S3 Inventory report; then one a day


def count_raw_gets(client: S3Client, raw_prefix: str) -> list[int]:
    """A counter, bumped by every GetObject of a key under raw_prefix made with `client`."""
    counter = [0]

    def on_get(params: dict[str, Any], **_: Any) -> None:
        if str(params.get("Key", "")).startswith(raw_prefix):
            counter[0] += 1

    client.meta.events.register("before-parameter-build.s3.GetObject", on_get)
    return counter


def config_for(job: dict[str, Any]) -> PipelineConfig:
    config = PipelineConfig(
        bucket=job["bucket"],
        image_size=IMAGE_SIZE,
        inventory_uri=job.get("inventory_uri", ""),
        partitions=job.get("partitions", 0),
    )
    return config.with_classes(job["class_names"]) if job.get("class_names") else config


def run_step(step: str, endpoint_url: str, job: dict[str, Any]) -> dict[str, Any]:
    """One once-only step, in this (fresh) process."""
    import great_expectations  # noqa: F401  (start-up, as the task's own imports: not the step's memory)

    from tasks.collect import PartCollected, plan_collection
    from tasks.gated_nights import validate_night
    from tasks.preprocess import PartProcessed, finish_dataset

    client = make_client(endpoint_url)
    gets = count_raw_gets(client, "raw/")
    config = config_for(job)
    run_id = job["run_id"]
    baseline = peak_rss_mib()
    started = time.perf_counter()
    if step == "plan_partitions":
        result: dict[str, Any] = asdict(plan_collection(client, config, run_id))
    elif step == "validate":
        parts = [PartCollected.from_json(part) for part in job["parts"]]
        validated = validate_night(client, config, run_id, parts, job["class_names_from"], job["skipped"])
        result = {
            "partitions": validated.partitions,
            "clean_manifest_uri": validated.gate.clean_manifest_uri,
            "fingerprint": validated.fingerprint,
            "rows_checked": validated.gate.rows_checked,
        }
    else:
        processed = [PartProcessed.from_json(part) for part in job["parts"]]
        dataset = finish_dataset(client, config, job["manifest"], processed, run_id, job["fingerprint"])
        result = {"dataset_id": dataset.dataset_id}
    result["seconds"] = time.perf_counter() - started
    return {**result, "peak_mib": peak_rss_mib(), "baseline_mib": baseline, "gets": gets[0]}


def in_fresh_process(step: str, endpoint_url: str, job: dict[str, Any]) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.catalogue", "--step", step, endpoint_url, json.dumps(job)],
        capture_output=True,
        text=True,
    )
    if completed.returncode:
        raise RuntimeError(f"{step} failed: {completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def delivered(client: S3Client, bucket: str, report: S3Uri, day: int) -> str:
    """Writes the report's delivery of `day` (after FIRST_DELIVERY), filtered to raw/, as S3
    Inventory would each night; returns the report's folder."""
    started = time.perf_counter()
    write_inventory(client, bucket, report, FIRST_DELIVERY + timedelta(days=day), prefix="raw/")
    print(
        f"  S3 Inventory delivery of {bucket} written in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    return str(report)


def night(
    endpoint_url: str,
    bucket: str,
    run_id: str,
    inventory_uri: str = "",
    partitions: int = 0,
    takes_kept_plan: bool = False,
) -> dict[str, Any]:
    """One night, step by step; returns each step's figures. `partitions` 0: the default P.
    `takes_kept_plan`: the report has the rows of the last one, so planning in full is an error."""
    from tasks.collect import collect_partition
    from tasks.partitions import Partition
    from tasks.preprocess import preprocess_partition

    client = make_client(endpoint_url)
    gets = count_raw_gets(client, "raw/")
    job: dict[str, Any] = {
        "bucket": bucket,
        "run_id": run_id,
        "inventory_uri": inventory_uri,
        "partitions": partitions,
    }
    figures: dict[str, Any] = {}
    plan = figures["plan_partitions"] = in_fresh_process("plan_partitions", endpoint_url, job)
    if takes_kept_plan and not plan["taken_from_run"]:
        raise RuntimeError(f"{run_id} planned in full: its report should have the rows of the last one")
    job["class_names"] = plan["class_names"]
    config = config_for(job)
    collected, figures["collect"] = [], []
    for partition in plan["partitions"]:
        started = time.perf_counter()
        collected.append(collect_partition(client, config, Partition.from_xcom(partition), run_id).to_json())
        figures["collect"].append(time.perf_counter() - started)
    job.update(parts=collected, class_names_from=plan["class_names_from"], skipped=plan["skipped"])
    validated = figures["validate"] = in_fresh_process("validate", endpoint_url, job)
    processed, figures["preprocess"] = [], []
    for partition in validated["partitions"]:
        started = time.perf_counter()
        part = Partition.from_xcom(partition)
        processed.append(preprocess_partition(client, config, part, run_id).to_json())
        figures["preprocess"].append(time.perf_counter() - started)
    job.update(parts=processed, manifest=validated["clean_manifest_uri"])
    job["fingerprint"] = validated["fingerprint"]
    figures["assemble_dataset"] = in_fresh_process("assemble_dataset", endpoint_url, job)
    figures["raw_gets"] = gets[0] + sum(figures[step]["gets"] for step in ONCE_ONLY)
    figures["wall"] = sum(figures[step]["seconds"] for step in ONCE_ONLY) + sum(
        max(figures[step]) for step in ("collect", "preprocess")
    )
    return figures


def describe(size: int, figures: dict[str, Any]) -> str:
    once = ", ".join(
        f"{step} {figures[step]['seconds']:.1f} s / {figures[step]['peak_mib']:.0f} MiB peak "
        f"({figures[step]['peak_mib'] - figures[step]['baseline_mib']:+.0f} over start-up)"
        for step in ONCE_ONLY
    )
    mapped = ", ".join(
        f"{step} {len(figures[step])} x (slowest {max(figures[step]):.1f} s, all {sum(figures[step]):.1f} s)"
        for step in ("collect", "preprocess")
    )
    return (
        f"{size:,} objects: wall {figures['wall']:.1f} s; {once}; {mapped}; "
        f"raw GETs {figures['raw_gets']}; rows checked by the gate {figures['validate']['rows_checked']}"
    )


def median_night(repeats: list[dict[str, Any]], size: int, way: str) -> dict[str, Any]:
    """The night of median wall time among repeats of the same no-change night; each is
    printed, and each must have read no raw object."""
    for figures in repeats:
        print(f"  {way}: " + describe(size, figures), file=sys.stderr)
        if figures["raw_gets"]:
            gets = figures["raw_gets"]
            raise RuntimeError(f"the no-change night ({way}) at {size:,} read {gets} raw objects")
    return sorted(repeats, key=lambda figures: figures["wall"])[len(repeats) // 2]


def measure(small: int = 50_000, large: int = 200_000) -> list[tuple[str, float, float]]:
    from bench.listing import listing_rates
    from tasks.storage import create_bucket

    sizes = {f"bench-catalogue-{small}": small, f"bench-catalogue-{large}": large}
    with seeded_s3(sizes) as (endpoint_url, setup_seconds):
        client = make_client(endpoint_url)
        print(f"catalogue bench: {small + large:,} objects seeded in {setup_seconds:.0f} s", file=sys.stderr)
        for bucket, size in sizes.items():
            started = time.perf_counter()
            night(endpoint_url, bucket, "first-night")
            print(f"  first night at {size:,}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
        nights: dict[str, dict[int, dict[str, Any]]] = {"listed": {}, "from the inventory": {}}
        for bucket, size in sizes.items():
            nights["listed"][size] = median_night(
                [night(endpoint_url, bucket, f"no-change-{repeat}") for repeat in range(REPEATS)],
                size,
                "listed",
            )
        create_bucket(client, "bench-inventories")
        for bucket, size in sizes.items():
            report = S3Uri("bench-inventories", f"{bucket}/nightly/")

            # The first night from the report plans in full and keeps its plan (tasks/kept_plans.py).
            night(endpoint_url, bucket, "first-inventory-night", delivered(client, bucket, report, 0))
            nights["from the inventory"][size] = median_night(
                [
                    night(
                        endpoint_url,
                        bucket,
                        f"no-change-inventory-{repeat}",
                        delivered(client, bucket, report, repeat + 1),
                        takes_kept_plan=True,
                    )
                    for repeat in range(REPEATS)
                ],
                size,
                "from the inventory",
            )
        # One instance over every row: the mapped steps' cost per row, for the sizing.
        largest = f"bench-catalogue-{large}"
        report = S3Uri("bench-inventories", f"{largest}/nightly/")
        whole = night(endpoint_url, largest, "one-partition", str(report), partitions=1)
        print(
            f"  one partition at {large:,}: collect {whole['collect'][0]:.1f} s, "
            f"preprocess {whole['preprocess'][0]:.1f} s; " + describe(large, whole),
            file=sys.stderr,
        )
        single, parallel = listing_rates(client, f"bench-catalogue-{large}")
    return [
        *(
            (
                f"no-change night, raw objects {way}: wall s, {large:,} vs {small:,} objects",
                by_size[large]["wall"],
                by_size[small]["wall"],
            )
            for way, by_size in nights.items()
        ),
        (f"listing: keys/s, 10 paginators vs 1 ({large:,} keys, 10 folders)", parallel, single),
    ]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--step"]:
        print(json.dumps(run_step(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))))
    else:
        sizes = [int(value) for value in sys.argv[1:3]] or [50_000, 200_000]
        for name, measured, baseline in measure(*sizes):
            print(f"{name}: {measured:.1f} vs {baseline:.1f} = {measured / baseline:.2f}x")
