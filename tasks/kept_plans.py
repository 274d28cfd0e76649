"""plan_partitions' memory of its last plan from an S3 Inventory report.

What plan_partitions makes of a report depends only on the report's rows and the settings that
select and split them (the bucket, raw_prefix, ignore_patterns, class_names, partitions). So
each plan it makes from a report is kept under a digest of those: the listing part of every
collect partition and, in `plan.json`, the classes, object count and noise counts. A night whose
report holds the same rows (the same text in each data file: a new delivery of an unchanged
bucket) copies those parts into its run on the S3 side instead of parsing, filtering and
splitting every row again. Its memory no longer grows with the catalogue, and its work is one
decompress-and-hash pass over the report's text and one copy per partition.

The kept plan is a cache: one is kept per raw prefix, and without it (first night, another
report, another setting, a part removed by hand) the night plans in full, with the same result.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

from tasks.config import PipelineConfig
from tasks.layout import KeptPlanLayout, kept_plans, run_layout
from tasks.partitions import Partition, part_name
from tasks.records import JsonRecord
from tasks.storage import (
    PermanentStorageError,
    S3Client,
    S3Uri,
    copy_object,
    delete_keys,
    iter_objects,
    parallel_map,
    put_json,
)

log = logging.getLogger(__name__)

# Part of the plan digest: bump it when what plan_partitions makes of a report changes.
KEPT_PLAN_VERSION = 1


@dataclass(frozen=True)
class KeptPlan(JsonRecord):
    """`plan.json`: what plan_partitions made of a report, beside the listing parts."""

    class_names: list[str]
    class_names_from: str
    objects: int
    partitions: int
    skipped: dict[str, int]
    planned_by_run: str


def plan_digest(config: PipelineConfig, report_digests: list[str]) -> str:
    """Names a plan: the report's rows (the digest of each data file's text) and the settings
    plan_partitions reads."""
    document = [
        KEPT_PLAN_VERSION,
        config.bucket,
        config.raw_prefix,
        list(config.ignore_patterns),
        list(config.class_names),
        config.partitions,
        report_digests,
    ]
    return hashlib.sha256(json.dumps(document).encode()).hexdigest()[:24]


def part_pairs(
    config: PipelineConfig, run_id: str, kept: KeptPlanLayout, count: int
) -> list[tuple[S3Uri, S3Uri]]:
    """(the run's listing part, the kept plan's) for each of `count` partitions."""
    layout = run_layout(config, run_id)
    names = [part_name(number, count) for number in range(count)]
    return [(layout.listing_part(name), kept.listing_part(name)) for name in names]


def take_kept_plan(
    client: S3Client, config: PipelineConfig, run_id: str, kept: KeptPlanLayout
) -> tuple[KeptPlan, list[Partition]] | None:
    """The kept plan and the run's partitions, its listing parts copied into the run; None
    when there is no such plan or it is incomplete."""
    plan = KeptPlan.read_cached(client, kept.record, "planning in full")
    if plan is None:
        return None
    pairs = part_pairs(config, run_id, kept, plan.partitions)
    try:
        parallel_map(lambda pair: copy_object(client, pair[1], pair[0]), pairs)
    except PermanentStorageError as error:
        log.warning("%s is incomplete (%s): planning in full", kept.root, error)
        return None
    log.info(
        "S3 Inventory report identical to the one run %s planned from: taking its plan", plan.planned_by_run
    )
    partitions = [
        Partition(number, plan.partitions, str(run_part)) for number, (run_part, _) in enumerate(pairs)
    ]
    return plan, partitions


def keep_plan(
    client: S3Client, config: PipelineConfig, run_id: str, kept: KeptPlanLayout, plan: KeptPlan
) -> None:
    """Copies the run's listing parts into the kept plan, then writes its plan.json, then drops
    every other kept plan of the raw prefix."""
    parallel_map(lambda pair: copy_object(client, *pair), part_pairs(config, run_id, kept, plan.partitions))
    put_json(client, kept.record, plan.to_json())
    mine = kept.root.folder().key
    stale = [
        item["Key"] for item in iter_objects(client, kept_plans(config)) if not item["Key"].startswith(mine)
    ]
    delete_keys(client, config.bucket, stale)
    log.info("kept the plan as %s", kept.root)
