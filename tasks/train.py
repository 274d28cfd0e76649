"""Step 4: train the reference CNN from a dataset's packs; also the trainer's CLI.

`python -m tasks.train --dataset-uri ... --output-uri ...` runs the same code in an Airflow
worker, in a container, or on a laptop. It only talks to S3: it reads `dataset.json` and its
packs and labels, and writes `model.keras`, `history.json` and, last, `train_result.json`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from tasks.config import PipelineConfig
from tasks.errors import InvalidSettingsError, PermanentError
from tasks.layout import AttemptLayout
from tasks.recipe import WARM_PERTURB, WARM_SHRINK, Recipe, steps_per_epoch
from tasks.records import DatasetRecord, JsonRecord, RecordJson
from tasks.settings import same_setting_as
from tasks.storage import (
    S3Client,
    S3Uri,
    download_file,
    get_bytes,
    make_client,
    parallel_map,
    put_json,
    upload_file,
)
from tasks.tensorflow_runtime import load_tensorflow
from tasks.warm_start import StartingPoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainRequest(Recipe, JsonRecord):
    """One attempt: its data and output, its hyperparameters and (inherited) its recipe."""

    dataset_uri: str
    output_uri: str
    # Declared with the pipeline's settings; checked against the same bounds when made.
    epochs: int = same_setting_as(PipelineConfig, "epochs")
    batch_size: int = same_setting_as(PipelineConfig, "batch_size")
    learning_rate: float = same_setting_as(PipelineConfig, "learning_rate")
    seed: int = same_setting_as(PipelineConfig, "seed")
    warm_start_uri: str | None = None
    # Set on a night's warm start from production (tasks/warm_start.py): the version continued
    # and its depth; the trainer then shrinks and perturbs the weights and re-warms the rate.
    parent_version: int | None = None
    warm_generation: int = 0

    @property
    def recipe(self) -> Recipe:
        return Recipe.of(self)

    def to_cli_args(self) -> list[str]:
        """The command line that reproduces this request (the container's command)."""
        args: list[str] = []
        recipe_names = Recipe.names()
        ordered = sorted(fields(self), key=lambda option: option.name in recipe_names)  # recipe last
        for option in ordered:
            value = getattr(self, option.name)
            flag = "--" + option.name.replace("_", "-")
            if isinstance(value, bool):
                args.append(flag if value else "--no-" + flag[2:])
            elif value is not None:
                args += [flag, repr(value) if isinstance(value, float) else str(value)]
        return args


@dataclass(frozen=True)
class TrainResult(JsonRecord):
    model_uri: str
    history_uri: str
    epochs_trained: int
    kept_epoch: int
    final_val_accuracy: float  # of the kept epoch, whose weights are published
    train_seconds: float
    images_per_second: float
    resumed_after_epoch: int
    request: RecordJson  # the TrainRequest it ran


def plan_attempt(
    config: PipelineConfig,
    *,
    dataset_uri: str,
    attempt_uri: str,
    attempt: int,
    start: StartingPoint | None = None,
    previous: TrainResult | None = None,
) -> tuple[TrainRequest, str]:
    """What attempt N trains, and why it may do better than attempt N-1. The first attempt
    starts where `start` says: from production's weights for `warm_epochs` epochs, or from
    scratch. A retry after a warm start trains from scratch (a fresh seed), never from the warm
    model. Otherwise each retry multiplies the learning rate by `retry_learning_rate_factor`
    and, with `retry_warm_start`, continues from the previous attempt's published weights (its
    best epoch, not its last, which may already be memorizing) for `epochs` more epochs;
    without it, it trains a fresh model with a different seed."""
    first = TrainRequest(
        dataset_uri=dataset_uri,
        output_uri=attempt_uri,
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        seed=config.seed,
        **asdict(Recipe.of(config)),
    )
    if attempt == 1 or previous is None:
        if start is not None and start.warm:
            first = replace(
                first,
                epochs=config.warm_epochs,
                warm_start_uri=start.parent_model_uri,
                parent_version=start.parent_version,
                warm_generation=start.warm_generation,
            )
        return first, describe_attempt(first, attempt)
    if TrainRequest.from_json(previous.request).parent_version is not None:
        fresh = replace(first, seed=config.seed + attempt)
        return fresh, describe_attempt(fresh, attempt) + " (the warm start was not blessed)"
    lowered = config.learning_rate * config.retry_learning_rate_factor ** (attempt - 1)
    warm_start_uri = previous.model_uri if config.retry_warm_start else None
    request = replace(first, learning_rate=lowered, seed=config.seed + attempt, warm_start_uri=warm_start_uri)
    return request, describe_attempt(request, attempt)


def plan_night_attempt(
    client: S3Client,
    config: PipelineConfig,
    run_id: str,
    dataset_uri: str,
    attempt: int,
    previous: TrainResult | None,
) -> TrainRequest:
    """What a night's attempt N trains: only the first may continue from the production model
    (as warm_start decides); a retry builds on attempt N-1 (see plan_attempt). Logs why."""
    from tasks.layout import run_layout
    from tasks.warm_start import production_starting_point

    start = production_starting_point(client, config, dataset_uri) if attempt == 1 else None
    if start is not None:
        log.info(start.reason)
    request, change = plan_attempt(
        config,
        dataset_uri=dataset_uri,
        attempt_uri=str(run_layout(config, run_id).attempt(attempt).root),
        attempt=attempt,
        start=start,
        previous=previous,
    )
    log.info(change)
    return request


def describe_attempt(request: TrainRequest, attempt: int) -> str:
    """One line on what an attempt trains: logged by plan and recorded in its blessing."""
    if request.parent_version is not None:
        start = (
            f"warm start from production version {request.parent_version} "
            f"(warm generation {request.warm_generation}), shrunk and perturbed"
        )
    elif request.warm_start_uri:
        start = f"warm start from the kept epoch of {request.warm_start_uri}"
    else:
        start = f"fresh model, seed {request.seed}"
    return (
        f"attempt {attempt}: {start}, {request.epochs} epochs, lr {request.learning_rate:g}; "
        f"{request.recipe.summary()}"
    )


class EpochLogger:
    """Keras callback factory: one log line per epoch with metrics and images/second."""

    @staticmethod
    def create(images_per_epoch: int) -> Any:
        import keras

        class _EpochLogger(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
                self.started = time.perf_counter()

            def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
                logs = logs or {}
                seconds = time.perf_counter() - self.started
                log.info(
                    "epoch %d/%d: loss %.4f accuracy %.4f val_loss %.4f val_accuracy %.4f "
                    "(%.1f s, %.0f images/s)",
                    epoch + 1,
                    self.params["epochs"],
                    logs.get("loss", float("nan")),
                    logs.get("accuracy", float("nan")),
                    logs.get("val_loss", float("nan")),
                    logs.get("val_accuracy", float("nan")),
                    seconds,
                    images_per_epoch / seconds,
                )

        return _EpochLogger()


def download_packs(client: S3Client, uris: list[str], folder: Path) -> list[Path]:
    """Pack files to local disk (streamed from there: memory does not grow with them)."""
    paths = [folder / "/".join(S3Uri.parse(uri).key.rsplit("/", 2)[-2:]) for uri in uris]
    parallel_map(
        lambda pair: download_file(client, S3Uri.parse(pair[0]), pair[1]), list(zip(uris, paths, strict=True))
    )
    return paths


def read_labels(client: S3Client, dataset: DatasetRecord, split: str) -> dict[str, int]:
    """sha256 -> label of the dataset's images in one split (labels.csv: sha256,label,split)."""
    rows = csv.DictReader(io.StringIO(get_bytes(client, S3Uri.parse(dataset.labels_uri)).decode()))
    return {row["sha256"]: int(row["label"]) for row in rows if row["split"] == split}


def open_split(
    client: S3Client,
    dataset: DatasetRecord,
    split: str,
    folder: Path,
    batch_size: int,
    shuffle_seed: int | None = None,
) -> Any:
    """One split of a dataset (dataset.json as a dict) as a batched tf.data pipeline."""
    from tasks.shards import read_split

    return read_split(
        download_packs(client, dataset.packs[split], folder),
        read_labels(client, dataset, split),
        dataset.image_size,
        len(dataset.class_names),
        batch_size,
        shuffle_seed=shuffle_seed,
        image_count=dataset.split_counts[split],
    )


def training_strategy() -> tuple[Any, str]:
    """MirroredStrategy with mixed precision over every visible GPU; the default strategy in
    float32 on CPU. The same code path serves both."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        keras.mixed_precision.set_global_policy("mixed_float16")
        return tf.distribute.MirroredStrategy(), f"{len(gpus)} GPU(s), mixed_float16"
    keras.mixed_precision.set_global_policy("float32")
    return tf.distribute.get_strategy(), "CPU, float32"


def build_model(client: S3Client, request: TrainRequest, dataset: DatasetRecord, folder: Path) -> Any:
    """The reference CNN with the request's recipe; on a warm start, with the weights of the
    model at `warm_start_uri` (its training-only layers may differ from this recipe's). A warm
    start from production shrinks and perturbs those weights and re-warms the learning rate
    over the first epoch: continuing at a decayed model's sharp minimum generalizes worse."""
    import keras

    from tasks.model import build_reference_cnn, copy_weights, shrink_and_perturb

    from_production = request.parent_version is not None
    steps = steps_per_epoch(dataset.split_counts["train"], request.batch_size)
    model = build_reference_cnn(
        dataset.image_size,
        len(dataset.class_names),
        request.learning_rate,
        recipe=request.recipe,
        total_steps=request.epochs * steps,
        warmup_steps=steps if from_production else 0,
    )
    if request.warm_start_uri:
        local_start = download_file(client, S3Uri.parse(request.warm_start_uri), folder / "warm_start.keras")
        source = keras.models.load_model(local_start, compile=False)
        if from_production:
            shrink_and_perturb(source, model, WARM_SHRINK, WARM_PERTURB)
            log.info(
                "warm start from production version %s (warm generation %d): %s, weights x%g plus "
                "a fresh initialization x%g",
                request.parent_version,
                request.warm_generation,
                request.warm_start_uri,
                WARM_SHRINK,
                WARM_PERTURB,
            )
        else:
            copy_weights(source, model)
            log.info("warm start from %s", request.warm_start_uri)
    return model


def run_training(client: S3Client, request: TrainRequest) -> TrainResult:
    """Trains (resuming an interrupted try of the same attempt), keeps the best epoch's weights
    and publishes the attempt's outputs; `train_result.json` is written last."""
    load_tensorflow()
    import keras

    from tasks.checkpoints import ResumableAttempt
    from tasks.model import inference_model

    dataset = DatasetRecord.read(client, request.dataset_uri)
    image_size = dataset.image_size
    counts = dataset.split_counts
    output = AttemptLayout.at(request.output_uri)
    keras.utils.set_random_seed(request.seed)
    strategy, device = training_strategy()
    with tempfile.TemporaryDirectory(prefix="train-") as scratch:
        folder = Path(scratch)
        attempt = ResumableAttempt(
            client, output, folder, request.keep_epoch_by, request.early_stopping_patience
        )
        finished_epochs = attempt.restore()
        train_data = open_split(client, dataset, "train", folder, request.batch_size, request.seed)
        validation_data = open_split(client, dataset, "validation", folder, request.batch_size)
        with strategy.scope():
            model = build_model(client, request, dataset, folder)
        log.info(
            "training on %d images (%d validation), %dx%d, %d parameters, epochs %d..%d, on %s; %s",
            counts["train"],
            counts["validation"],
            image_size,
            image_size,
            model.count_params(),
            finished_epochs + 1,
            request.epochs,
            device,
            request.recipe.summary(),
        )
        started = time.perf_counter()
        if not attempt.patience_ran_out():  # an earlier try may have stopped early already
            model.fit(
                train_data,
                validation_data=validation_data,
                epochs=request.epochs,
                callbacks=[*attempt.callbacks(), EpochLogger.create(counts["train"])],
                shuffle=False,  # tf.data already shuffles each epoch
                verbose=0,
            )
        train_seconds = time.perf_counter() - started
        attempt.keep_best(model)
        model_path = folder / "model.keras"
        with strategy.scope():
            inference_model(model, request.recipe).save(model_path)
        upload_file(client, model_path, output.model)
        history = attempt.history()
        put_json(client, output.history, history.to_json())
        epochs_this_try = len(history.epochs) - finished_epochs
        result = TrainResult(
            model_uri=str(output.model),
            history_uri=str(output.history),
            epochs_trained=len(history.epochs),
            kept_epoch=history.kept_epoch,
            final_val_accuracy=history.kept("val_accuracy"),
            train_seconds=round(train_seconds, 2),
            images_per_second=round(counts["train"] * epochs_this_try / max(train_seconds, 1e-9), 1),
            resumed_after_epoch=finished_epochs,
            request=asdict(request),
        )
        put_json(client, output.train_result, asdict(result))
        attempt.finish()
    log.info(
        "model written to %s: epoch %d of %d kept (val_accuracy %.4f)",
        result.model_uri,
        result.kept_epoch,
        result.epochs_trained,
        result.final_val_accuracy,
    )
    return result


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m tasks.train", description="Train the reference CNN from a dataset in S3."
    )
    cli.add_argument("--dataset-uri", required=True, help="s3://.../dataset.json from preprocess")
    cli.add_argument("--output-uri", required=True, help="s3:// prefix for this attempt's outputs")
    cli.add_argument("--warm-start-uri", default=None, help="s3://.../model.keras to continue")
    cli.add_argument(
        "--parent-version",
        type=int,
        default=None,
        help="the production version --warm-start-uri belongs to: shrink, perturb and re-warm",
    )
    cli.add_argument("--warm-generation", type=int, default=0, help="warm nights since the last from scratch")
    # The request's own declarations (defaults, descriptions), so the container's command line
    # and a TrainRequest agree; making the request checks the values against their bounds.
    recipe_names = Recipe.names()
    hyperparameters = cli.add_argument_group("hyperparameters")
    recipe = cli.add_argument_group("recipe")
    for option in fields(TrainRequest):
        if "schema" not in option.metadata:
            continue
        group = recipe if option.name in recipe_names else hyperparameters
        flag = "--" + option.name.replace("_", "-")
        description = option.metadata["description"]
        if isinstance(option.default, bool):
            group.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=option.default, help=description
            )
        else:
            group.add_argument(flag, type=type(option.default), default=option.default, help=description)
    return cli


def parse_request(argv: list[str]) -> TrainRequest:
    """The inverse of TrainRequest.to_cli_args: every backend goes through this parser. Values
    outside their bounds exit with one line naming each (status 2, as argparse does)."""
    cli = parser()
    try:
        return TrainRequest(**vars(cli.parse_args(argv)))
    except InvalidSettingsError as error:
        cli.error(str(error))


def main(argv: list[str] | None = None) -> int:
    """Trains one attempt; a refusal that retrying cannot help (missing data, refused or expired
    credentials) ends it with one line naming the fix as the last line, and status 1."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    request = parse_request(argv if argv is not None else sys.argv[1:])
    try:
        result = run_training(make_client(), request)
    except PermanentError as error:
        print(f"train: error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
