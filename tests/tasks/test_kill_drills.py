"""Kill drills: a task's process SIGKILLed in the middle of preprocess and of deploy, then the
task run again with the same inputs, as Airflow retries it. After each: the store, the run
folder and the registry hold nothing a later run or a consumer would trust by mistake."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, replace

import pytest
from kill_switch import run_killed
from reliability import record
from steps import collect_and_build, judge_and_publish

from tasks.collect import collect_manifest, read_manifest
from tasks.config import PipelineConfig
from tasks.demo.data import DIGIT_CLASS_NAMES, upload_digits
from tasks.deploy import publish_version
from tasks.examples import read_index
from tasks.layout import example_store, model_layout, run_layout
from tasks.partitions import Partition
from tasks.preprocess import PREPROCESSING_VERSION, finish_dataset, plan_preprocessing, preprocess_partition
from tasks.registry import Registry
from tasks.retention import remove_old_runs
from tasks.storage import S3Uri, create_bucket, exists, get_json, iter_objects

pytestmark = pytest.mark.slow

IMAGE_SIZE = 24


def digits_in_new_bucket(client, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    create_bucket(client, name)
    upload_digits(client, name, "raw/", image_size=IMAGE_SIZE, limit=160)
    return name


@pytest.fixture(scope="module")
def clean_fingerprint(s3_endpoint) -> str:
    """The dataset fingerprint of 160 digits preprocessed without interruption."""
    from tasks.storage import make_client

    client = make_client(s3_endpoint)
    bucket = digits_in_new_bucket(client, "kill-clean")
    return collect_and_build(client, config_for(bucket), "clean").fingerprint


def config_for(bucket: str) -> PipelineConfig:
    return PipelineConfig(bucket=bucket, image_size=IMAGE_SIZE, class_names=DIGIT_CLASS_NAMES)


def stored_packs(client, store) -> set[str]:
    return {
        f"s3://{store.root.bucket}/{item['Key']}"
        for item in iter_objects(client, store.root.folder())
        if item["Key"].endswith(".tfrecord")
    }


PREPROCESS_IN_CHILD = """
import json
import tasks.examples, tasks.partitions
from kill_switch import kill_on_call
from tasks.config import PipelineConfig
from tasks.partitions import Partition
from tasks.preprocess import preprocess_partition
from tasks.storage import make_client

spec = json.loads({spec})
kill_on_call(getattr(tasks, spec["module"]), spec["function"], spec["call"], after=spec["after"])
config = PipelineConfig(**spec["config"])
preprocess_partition(make_client(), config, Partition.from_xcom(spec["partition"]), spec["run_id"])
"""

PREPROCESS_KILLS = {
    # id: (module, function, call, after)
    "after-the-first-pack": ("examples", "upload_file", 1, True),
    "during-the-index-write": ("partitions", "put_csv", 3, False),
}


@pytest.mark.parametrize("moment", PREPROCESS_KILLS)
def test_preprocess_killed_then_retried_stores_each_image_once_and_the_same_dataset(
    s3, clean_fingerprint, moment
):
    """Each moment on a bucket of its own, so the store starts empty and the kill lands."""
    bucket = digits_in_new_bucket(s3, "kill-drill")

    config = config_for(bucket)
    run_id = f"killed-{moment}"
    collected = collect_manifest(s3, config, run_id)
    (partition,) = plan_preprocessing(s3, config, collected.manifest_uri, run_id, 1)
    module, function, call, after = PREPROCESS_KILLS[moment]
    spec = {
        "module": module,
        "function": function,
        "call": call,
        "after": after,
        "config": {"bucket": bucket, "image_size": IMAGE_SIZE, "class_names": list(DIGIT_CLASS_NAMES)},
        "partition": partition,
        "run_id": run_id,
    }
    run_killed(PREPROCESS_IN_CHILD.replace("{spec}", repr(json.dumps(spec))))
    processed = run_layout(config, run_id).processed_part(Partition.from_xcom(partition).name)
    assert not exists(s3, processed), "a killed partition left a verdict that assemble_dataset would trust"
    assert not exists(s3, run_layout(config, run_id).dataset_ref)

    retried = preprocess_partition(s3, config, Partition.from_xcom(partition), run_id)
    result = finish_dataset(s3, config, collected.manifest_uri, [retried], run_id)
    assert result.fingerprint == clean_fingerprint

    store = example_store(bucket, IMAGE_SIZE, PREPROCESSING_VERSION)
    index = read_index(s3, store)
    assert not index["sha256"].duplicated().any()
    assert set(index["sha256"]) == set(read_manifest(s3, collected.manifest_uri)["sha256"])
    for split, pack in index[["split", "pack"]].drop_duplicates().itertuples(index=False):
        assert exists(s3, store.pack(split, pack)), f"index names a pack that was never written: {pack}"

    later = collect_and_build(s3, config, f"later-{moment}")
    assert (later.images_decoded, later.dataset_id) == (0, result.dataset_id)

    # Packs the killed try wrote but never indexed hold nothing a run reads; retention removes them.
    indexed = {
        str(store.pack(split, pack)) for split, pack in index[["split", "pack"]].itertuples(index=False)
    }
    orphans = stored_packs(s3, store) - indexed
    remove_old_runs(s3, bucket, current_run_id=f"later-{moment}", keep_runs=5)
    assert stored_packs(s3, store) == indexed
    record(
        f"kill-preprocess-{moment}",
        f"SIGKILL of preprocess {moment.replace('-', ' ')}",
        3,
        "retry finished the partition; same fingerprint as a clean run; every image indexed once; "
        "the next run decoded 0 images",
        f"nothing; {len(orphans)} unindexed pack(s) from the killed try, removed by retention",
    )


DEPLOY_IN_CHILD = """
import json
from kill_switch import kill_on_call
from tasks.config import PipelineConfig
from tasks.deploy import publish_version
from tasks.records import Candidate
from tasks.registry import Registry
from tasks.storage import make_client

spec = json.loads({spec})
kill_on_call(Registry, "promote", 1, after=spec["after"])
config = PipelineConfig(bucket=spec["bucket"])
publish_version(make_client(), config, Candidate(**spec["candidate"]), run_id="run-2")
"""


@pytest.mark.parametrize(
    "after_pointer", [False, True], ids=["before-the-pointer-moves", "after-the-pointer-moved"]
)
def test_deploy_killed_then_retried_publishes_one_complete_version(s3, bucket, candidate, after_pointer):
    config = PipelineConfig(bucket=bucket)
    registry = Registry(s3, bucket, config.model_name)
    judge_and_publish(s3, config, candidate, "run-1")  # production before the drill: version 1
    judged = replace(candidate, production_etag=registry.production()[1])  # as run-2's evaluate read it

    spec = {"bucket": bucket, "after": after_pointer, "candidate": asdict(judged)}
    run_killed(DEPLOY_IN_CHILD.replace("{spec}", repr(json.dumps(spec))))
    pointer = registry.pointer()
    assert pointer is not None and pointer.version == (2 if after_pointer else 1)
    assert exists(s3, S3Uri.parse(pointer.version_uri).join("_COMPLETE"))
    assert registry.version_numbers() == [1, 2]

    retried = publish_version(s3, config, judged, run_id="run-2")
    assert retried.version == 2
    assert registry.version_numbers() == [1, 2]
    assert [(v.version, v.complete, v.in_production) for v in registry.versions()] == [
        (1, True, False),
        (2, True, True),
    ]
    claims = [get_json(s3, model_layout(config).version(n).deployment)["run_id"] for n in (1, 2)]
    assert claims == ["run-1", "run-2"]

    assert judge_and_publish(s3, config, candidate, "run-3").version == 3
    moment = "after the pointer moved" if after_pointer else "after the version's files, before the pointer"
    record(
        f"kill-deploy-{'after' if after_pointer else 'before'}-pointer",
        f"SIGKILL of deploy {moment}",
        3,
        "retry completed the same version 2; pointer always named a complete version; "
        "no duplicate version numbers; the next run got version 3",
    )
