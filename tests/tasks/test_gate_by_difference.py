"""A night gated by difference, or one that takes the results of a manifest gated already,
gives exactly what a full gate gives over the same objects: random sequences of adds,
deletes, overwrites, corruptions and copies (the same content under another class, or twice in
one) on a small bucket, against the moto server."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest
from images_factory import digit_like, encode
from steps import collect_and_validate

from tasks.collect import parse_manifest, read_manifest
from tasks.config import PipelineConfig
from tasks.expectations import Validator
from tasks.layout import gated_nights, run_layout
from tasks.preprocess import dataset_fingerprint, dataset_id_for
from tasks.row_outcomes import rules_digest
from tasks.storage import S3Uri, delete_keys, get_bytes, get_json, iter_objects, put_bytes
from tasks.validate import gate_manifest

CLASSES = ("zero", "one", "two")
CONFIG = PipelineConfig(
    class_names=CLASSES,
    min_images=1,
    min_images_per_class=1,
    max_class_imbalance=100.0,
    max_quarantine_fraction=1.0,
    image_size=32,
)
NIGHTS = 7
NO_CHANGE = (3, 4)


def apply_random_changes(s3, bucket: str, rng: random.Random, keys: list[str], fresh: list[int]) -> str:
    """One night's worth of changes; returns what was done, for the failure message."""
    done = []
    for _ in range(rng.randint(1, 4)):
        action = rng.choice(["add", "delete", "overwrite", "corrupt", "copy-across", "copy-within"])
        victim = rng.choice(keys)
        if action == "add":
            key = f"raw/{rng.choice(CLASSES)}/new-{fresh[0]}.png"
            put_bytes(s3, S3Uri(bucket, key), encode(digit_like(fresh[0])))
            keys.append(key)
            fresh[0] += 1
        elif action == "delete" and len(keys) > 6:
            delete_keys(s3, bucket, [victim])
            keys.remove(victim)
        elif action == "overwrite":
            put_bytes(s3, S3Uri(bucket, victim), encode(digit_like(fresh[0])))
            fresh[0] += 1
        elif action == "corrupt":
            put_bytes(s3, S3Uri(bucket, victim), b"not an image " + victim.encode())
        elif action.startswith("copy"):
            folder = victim.split("/")[1]
            if action == "copy-across":
                folder = rng.choice([name for name in CLASSES if name != folder])
            key = f"raw/{folder}/copy-{fresh[0]}.png"
            put_bytes(s3, S3Uri(bucket, key), get_bytes(s3, S3Uri(bucket, victim)))
            keys.append(key)
            fresh[0] += 1
        done.append(f"{action} {victim}")
    return ", ".join(done)


def fingerprint_and_id(clean) -> tuple[str, str]:
    labels = [CLASSES.index(name) for name in clean["class_name"]]
    fingerprint = dataset_fingerprint(list(clean["sha256"]), labels)
    return fingerprint, dataset_id_for(fingerprint, CONFIG.image_size, list(CLASSES))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_gating_by_difference_matches_a_full_gate_night_after_night(s3, bucket, seed, tmp_path: Path):
    rng = random.Random(seed)
    keys = []
    for index in range(24):
        key = f"raw/{CLASSES[index % 3]}/img-{index:02d}.png"
        put_bytes(s3, S3Uri(bucket, key), encode(digit_like(index)))
        keys.append(key)
    fresh = [100]
    config = replace(CONFIG, bucket=bucket)
    history = "first night"
    for night in range(NIGHTS):
        if night:
            changed = night not in NO_CHANGE
            history = apply_random_changes(s3, bucket, rng, keys, fresh) if changed else "no change"
        run_id = f"night-{night}"
        validated = collect_and_validate(s3, config, run_id)
        gated = validated.gate
        manifest = read_manifest(s3, str(run_layout(config, run_id).manifest))
        full = gate_manifest(manifest, config, Validator(tmp_path / run_id))

        document = get_json(s3, S3Uri(bucket, f"runs/{run_id}/quarantine.json"))
        quarantine = {entry["key"]: entry["reasons"] for entry in document["quarantined"]}
        clean = parse_manifest(get_bytes(s3, S3Uri.parse(gated.clean_manifest_uri)))
        where = f"seed {seed}, night {night} ({history})"
        assert quarantine == full.quarantine, where
        assert document["duplicates_dropped"] == full.duplicates, where
        assert clean.equals(parse_manifest(full.clean.to_csv(index=False).encode())), where
        assert fingerprint_and_id(clean) == fingerprint_and_id(full.clean), where
        assert validated.fingerprint == fingerprint_and_id(full.clean)[0], where
        assert (gated.images, gated.quarantined) == (len(full.clean), len(full.quarantine)), where
        objects = len(manifest)
        if night == 0:
            assert gated.rows_checked == objects
        elif night in NO_CHANGE:
            assert gated.rows_checked == 0, where  # nothing changed: nothing checked
            assert validated.taken_from_run == "night-2", where  # the manifest gated last
        else:
            assert gated.rows_checked < objects, where
            assert validated.taken_from_run == "", where
        assert gated.rows_checked + gated.rows_carried == objects
        folder = gated_nights(config, rules_digest(config))
        kept = {item["Key"].split("/nights/")[1].split("/")[0] for item in iter_objects(s3, folder)}
        assert len(kept) == 1, where  # only the last manifest passed is kept
