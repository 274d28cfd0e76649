"""`make bench-accuracy ARGS=--two-nights`: what a warm-started night saves and costs.

Per disjoint sample (the same images as the one-night bench): night 1 trains from scratch on
the sample without a tenth of its training-set images and deploys; night 2 adds those images
and trains twice on the same dataset, (a) warm from night 1's model (`warm_start: auto`) and
(b) from scratch (`warm_start: never`, `force_retrain`), one attempt each. Both night-2
models are scored on the same test split; the report gives both accuracies and both training
times, and the ratios the warm-start defaults are chosen by. Each night is the whole DAG
under `airflow dags test`, trainer in-process. Results in build/bench-accuracy/two-nights/.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from collections.abc import Iterable

from bench.accuracy import CLASS_NAMES, OUTPUT, run_dag, stratified_sample, upload_sample
from tasks.demo.local_s3 import LocalS3
from tasks.demo.run import airflow_command
from tasks.storage import S3Client, S3Uri, get_json, iter_objects, list_folders, make_client

FOLDER = OUTPUT / "two-nights"
# Night 2's new images: this share of each class's official training-set images.
NEW_SHARE = 0.1
# One attempt a night, whatever it scores: the bench compares starts, not blessings.
NIGHT = {"max_attempts": 1, "min_test_accuracy": 0.0, "max_regression": None, "fail_on_give_up": False}


def split_nights(sample: list, per_class: int) -> tuple[list, list]:
    """(night 1's images, night 2's additions): the additions are the last tenth of each class's
    training-set images in the sample."""
    new_per_class = round(per_class * NEW_SHARE)
    additions = []
    for label in range(len(CLASS_NAMES)):
        train_images = [item for item in sample if item[1] == label and item[0].startswith("train-")]
        additions += train_images[-new_per_class:]
    added = {item[0] for item in additions}
    return [item for item in sample if item[0] not in added], additions


def newest_attempt(client: S3Client, bucket: str, runs_before: set[str]) -> dict:
    """Attempt 1 of the one run folder that appeared since `runs_before`: its accuracy, training
    time and where it started."""
    (run,) = set(list_folders(client, S3Uri(bucket, "runs/"))) - runs_before
    attempt = S3Uri(bucket, f"runs/{run}/attempt-1")
    evaluation = get_json(client, attempt.join("evaluation.json"))
    trained = get_json(client, attempt.join("train_result.json"))
    return {
        "run": run,
        "dataset_uri": evaluation["dataset_uri"],
        "test_accuracy": round(evaluation["accuracy"], 4),
        "test_images": evaluation["test_images"],
        "epochs": trained["epochs_trained"],
        "kept_epoch": trained["kept_epoch"],
        "train_minutes": round(trained["train_seconds"] / 60, 2),
        "parent_version": trained["request"].get("parent_version"),
    }


def measure_sample(number: int, per_class: int, conf: dict) -> dict:
    night_1, additions = split_nights(stratified_sample(number, per_class, per_class // 10), per_class)
    bucket = f"bench-two-nights-{number}"
    folder = FOLDER / f"sample-{number}"
    folder.mkdir(parents=True, exist_ok=True)
    base = {"bucket": bucket, "model_name": "fashion-cnn", "class_names": list(CLASS_NAMES), **NIGHT, **conf}
    started = time.perf_counter()
    with LocalS3() as s3:
        client = make_client(s3.endpoint_url)
        airflow, env = airflow_command(
            FOLDER.resolve() / "airflow", s3, RETRAIN_TRAINER_BACKEND="local", RETRAIN_ALLOWED_BUCKETS=bucket
        )
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        nights = {}
        steps = (
            ("night-1", night_1, {"warm_start": "never"}),
            ("night-2-warm", additions, {"warm_start": "auto"}),
            ("night-2-scratch", [], {"warm_start": "never", "force_retrain": True}),
        )
        for name, new_images, settings in steps:
            upload_sample(client, bucket, new_images)
            runs_before = set(list_folders(client, S3Uri(bucket, "runs/")))
            run_dag(airflow, env, {**base, **settings}, folder / f"{name}.log")
            nights[name] = newest_attempt(client, bucket, runs_before)
            print(f"sample {number} {name}: {json.dumps(nights[name])}", flush=True)
        raw_count = sum(1 for _ in iter_objects(client, S3Uri(bucket, "raw/")))
    warm, scratch = nights["night-2-warm"], nights["night-2-scratch"]
    if warm["dataset_uri"] != scratch["dataset_uri"] or warm["parent_version"] is None:
        raise SystemExit(
            f"sample {number}: night 2 did not compare a warm and a scratch model on one dataset"
        )
    outcome = {
        "sample": number,
        "images": raw_count,
        "nights": nights,
        "time_ratio": round(warm["train_minutes"] / scratch["train_minutes"], 3),
        "accuracy_gap_points": round(100 * (scratch["test_accuracy"] - warm["test_accuracy"]), 2),
        "minutes": round((time.perf_counter() - started) / 60, 1),
    }
    (folder / "outcome.json").write_text(json.dumps(outcome, indent=2))
    return outcome


def report(outcomes: list[dict], conf: dict) -> str:
    lines = [
        f"Params beyond the defaults: {json.dumps(conf) if conf else 'none'}",
        "",
        "| sample | night 1 (scratch) | night 2 warm: accuracy, epochs, train min | night 2 scratch: "
        "accuracy, epochs, train min | warm/scratch time | scratch - warm (points) |",
        "|---|---|---|---|---|---|",
    ]
    for outcome in outcomes:
        nights = outcome["nights"]
        first, warm, scratch = nights["night-1"], nights["night-2-warm"], nights["night-2-scratch"]
        cells = [
            str(outcome["sample"]),
            f"{first['test_accuracy']:.4f}",
            f"{warm['test_accuracy']:.4f}, {warm['epochs']}, {warm['train_minutes']}",
            f"{scratch['test_accuracy']:.4f}, {scratch['epochs']}, {scratch['train_minutes']}",
            f"{outcome['time_ratio']:.2f}x",
            f"{outcome['accuracy_gap_points']:+.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    ratio = statistics.mean(outcome["time_ratio"] for outcome in outcomes)
    gap = statistics.mean(outcome["accuracy_gap_points"] for outcome in outcomes)
    lines += [
        "",
        f"mean over {len(outcomes)} sample(s): warm night-2 training takes {ratio:.2f}x the from-scratch "
        f"time (target <= 0.3x) and scores {gap:+.2f} points below it (target <= 0.5)",
    ]
    return "\n".join(lines)


def measure_two_nights(numbers: Iterable[int], per_class: int, conf: dict) -> int:
    FOLDER.mkdir(parents=True, exist_ok=True)
    outcomes = [measure_sample(number, per_class, conf) for number in numbers]
    text = report(outcomes, conf)
    (FOLDER / "report.md").write_text(text + "\n")
    print("\n" + text)
    return 0
