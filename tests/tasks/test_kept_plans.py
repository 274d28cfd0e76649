"""plan_partitions' kept plan, against the moto server: a new delivery of an S3 Inventory report
with the same rows takes the last plan's listing parts by copy and gives the plan a full one
gives; another report, another setting or an incomplete kept plan plans in full."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from images_factory import digit_like, encode

from tasks.collect import CollectionPlan, plan_collection
from tasks.config import PipelineConfig
from tasks.demo.inventory import write_inventory
from tasks.layout import kept_plans
from tasks.storage import S3Uri, delete_keys, get_bytes, iter_objects, put_bytes

KEYS = [f"raw/{name}/{index} {name}.png" for name in ("cat", "dog", "owl") for index in range(7)]
NOISE = ["raw/cat/.DS_Store", "raw/dog/_SUCCESS"]


def delivery_at(hour: int) -> datetime:
    return datetime(2026, 12, 1, hour, 0, tzinfo=UTC)


def upload(s3, bucket: str, keys: list[str]) -> None:
    for index, key in enumerate(keys):
        put_bytes(s3, S3Uri(bucket, key), encode(digit_like(index)))


def listing_parts(s3, plan: CollectionPlan) -> list[bytes]:
    return [get_bytes(s3, S3Uri.parse(partition["uri"])) for partition in plan.partitions]


def what_it_planned(plan: CollectionPlan) -> tuple:
    """The plan less the run it was written under."""
    partitions = [(partition["number"], partition["count"]) for partition in plan.partitions]
    return plan.class_names, plan.class_names_from, plan.objects, plan.skipped, partitions


def kept_plan_folders(s3, config: PipelineConfig) -> set[str]:
    root = kept_plans(config).key
    return {item["Key"].removeprefix(root).split("/")[0] for item in iter_objects(s3, kept_plans(config))}


def test_a_new_delivery_of_the_same_rows_takes_the_kept_plan(s3, bucket, reports):
    """The inventory filtered to the raw prefix, as docs/partitions.md advises: the runs' own
    files in the bucket would change an unfiltered report every night."""
    upload(s3, bucket, KEYS + NOISE)
    config = PipelineConfig(bucket=bucket, partitions=3, inventory_uri=str(reports))
    write_inventory(s3, bucket, reports, prefix="raw/", began=delivery_at(1))
    first = plan_collection(s3, config, "night-1")
    write_inventory(s3, bucket, reports, prefix="raw/", began=delivery_at(2))  # new data files, the same rows
    second = plan_collection(s3, config, "night-2")
    assert (first.taken_from_run, second.taken_from_run) == ("", "night-1")
    assert what_it_planned(second) == what_it_planned(first)
    assert first.objects == len(KEYS) and first.skipped == {".DS_Store": 1, "_SUCCESS": 1}
    assert all("/night-2/" in partition["uri"] for partition in second.partitions)
    assert listing_parts(s3, second) == listing_parts(s3, first)
    # Without the kept plan, the same night plans in full, to the same plan.
    delete_keys(s3, bucket, [item["Key"] for item in iter_objects(s3, kept_plans(config))])
    full = plan_collection(s3, config, "night-3")
    assert full.taken_from_run == ""
    assert what_it_planned(full) == what_it_planned(second)
    assert listing_parts(s3, full) == listing_parts(s3, second)


def test_another_report_or_setting_plans_in_full_and_one_plan_is_kept(s3, bucket, reports):
    upload(s3, bucket, KEYS)
    config = PipelineConfig(bucket=bucket, partitions=2, inventory_uri=str(reports))
    write_inventory(s3, bucket, reports, prefix="raw/", began=delivery_at(1))
    plan_collection(s3, config, "night-1")
    upload(s3, bucket, ["raw/emu/0 emu.png"])
    write_inventory(s3, bucket, reports, prefix="raw/", began=delivery_at(2))
    grown = plan_collection(s3, config, "night-2")
    assert grown.taken_from_run == "" and grown.objects == len(KEYS) + 1
    assert "emu" in grown.class_names
    assert len(kept_plan_folders(s3, config)) == 1
    for other in (
        replace(config, partitions=3),
        replace(config, ignore_patterns=("owl/*",)),
        config.with_classes(["cat", "dog"]),
    ):
        assert plan_collection(s3, other, "night-3").taken_from_run == ""
    # One plan is kept per raw prefix: the last one made.
    assert len(kept_plan_folders(s3, config)) == 1
    assert plan_collection(s3, config, "night-4").taken_from_run == ""
    assert plan_collection(s3, config, "night-5").taken_from_run == "night-4"


def test_an_incomplete_kept_plan_is_planned_in_full_and_kept_again(s3, bucket, reports):
    upload(s3, bucket, KEYS)
    config = PipelineConfig(bucket=bucket, partitions=3, inventory_uri=str(reports))
    write_inventory(s3, bucket, reports, prefix="raw/", began=delivery_at(1))
    first = plan_collection(s3, config, "night-1")
    parts = [item["Key"] for item in iter_objects(s3, kept_plans(config)) if "/listing/" in item["Key"]]
    assert len(parts) == 3
    delete_keys(s3, bucket, parts[1:2])
    again = plan_collection(s3, config, "night-2")
    assert again.taken_from_run == ""
    assert listing_parts(s3, again) == listing_parts(s3, first)
    assert plan_collection(s3, config, "night-3").taken_from_run == "night-2"
