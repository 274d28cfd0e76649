"""The `retrain` command: what people do outside Airflow (demo data, training, the demo)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from tasks.config import PipelineConfig


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)  # where it found credentials: noise
    cli = argparse.ArgumentParser(prog="retrain", description=__doc__)
    commands = cli.add_subparsers(dest="command", required=True)

    demo_data = commands.add_parser("demo-data", help="upload the digits demo set to a bucket")
    demo_data.add_argument("--bucket", default=PipelineConfig().bucket)
    demo_data.add_argument("--raw-prefix", default="raw/")
    demo_data.add_argument("--endpoint-url", default=None, help="default: AWS_ENDPOINT_URL or AWS")
    demo_data.add_argument("--image-size", type=int, default=128)
    demo_data.add_argument("--limit", type=int, default=None, help="upload only the first N")

    commands.add_parser("train", help="train one attempt (same as python -m tasks.train)", add_help=False)

    demo = commands.add_parser("demo", help="run the whole pipeline once on a local S3")
    demo.add_argument("--output", type=Path, default=Path("demo-output"))
    demo.add_argument("--airflow-home", type=Path, default=Path(".airflow"))
    demo.add_argument("--conf", default="{}", help="JSON Params for the run")

    ui = commands.add_parser("ui", help="the Airflow UI with a local S3 holding the demo data")
    ui.add_argument("--airflow-home", type=Path, default=Path(".airflow-ui"))
    ui.add_argument("--port", type=int, default=8080)

    def add_model_options(command: argparse.ArgumentParser) -> None:
        defaults = PipelineConfig()
        command.add_argument(
            "--bucket", default=defaults.bucket, help=f"the registry's bucket (default: {defaults.bucket})"
        )
        command.add_argument(
            "--model-name",
            default=defaults.model_name,
            help=f"the model under models/ (default: {defaults.model_name})",
        )
        command.add_argument("--endpoint-url", default=None, help="default: AWS_ENDPOINT_URL or AWS")

    models = commands.add_parser("models", help="the published versions and the production pointer")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    add_model_options(model_commands.add_parser("list", help="every version; * marks production"))
    show = model_commands.add_parser("show", help="a version's model card (production by default)")
    show.add_argument("version", nargs="?", type=int)
    add_model_options(show)
    rollback = model_commands.add_parser("rollback", help="point production at an earlier version")
    rollback.add_argument("version", type=int)
    add_model_options(rollback)
    predict = commands.add_parser("predict", help="classify images with the production model")
    predict.add_argument("images", nargs="+", type=Path)
    add_model_options(predict)

    options, rest = cli.parse_known_args(argv)
    if options.command == "train":
        from tasks.train import main as train_main

        return train_main(rest)
    if rest:
        cli.error(f"unrecognized arguments: {' '.join(rest)}")
    return reporting_user_errors(options)


def reporting_user_errors(options: argparse.Namespace) -> int:
    """Runs a command; a problem the user can fix (no or wrong credentials, an unreachable
    endpoint, no such bucket, model or version, an unreadable image) is one line on stderr
    naming the fix, and exit status 1, never a traceback."""
    from tasks.errors import PermanentError
    from tasks.layout import bucket_root
    from tasks.storage import S3_ERRORS, StorageError, explain

    try:
        return run_command(options)
    except S3_ERRORS as error:
        bucket = getattr(options, "bucket", None)
        where = str(bucket_root(bucket)).rstrip("/") if bucket else "S3"
        print(f"retrain: error: {one_line_error(explain(error, where))}", file=sys.stderr)
    except (PermanentError, StorageError, OSError) as error:
        print(f"retrain: error: {one_line_error(error)}", file=sys.stderr)
    return 1


def run_command(options: argparse.Namespace) -> int:
    if options.command == "demo-data":
        from tasks.demo.data import upload_digits
        from tasks.storage import make_client

        upload_digits(
            make_client(options.endpoint_url),
            options.bucket,
            options.raw_prefix,
            options.image_size,
            options.limit,
        )
        return 0
    if options.command in ("models", "predict"):
        return registry_command(options)
    if options.command == "ui":
        from tasks.demo.ui import run_ui

        return run_ui(options.airflow_home.resolve(), options.port)
    from tasks.demo.run import run_demo

    return run_demo(options.output.resolve(), options.airflow_home.resolve(), json.loads(options.conf))


def one_line_error(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    if isinstance(error, OSError) and getattr(error, "filename", None):
        return f"{error.filename}: {error.strerror or text[0]}"
    return text[0] if text else type(error).__name__


def registry_command(options: argparse.Namespace) -> int:
    from tasks.errors import PermanentError
    from tasks.registry import Registry, predict
    from tasks.storage import make_client

    registry = Registry(make_client(options.endpoint_url), options.bucket, options.model_name)
    if options.command == "predict":
        model, card = registry.load()
        bodies = [path.read_bytes() for path in options.images]
        for path, (name, probability) in zip(
            options.images, predict(model, card, bodies, [str(p) for p in options.images]), strict=True
        ):
            print(f"{path}\t{name}\t{probability:.4f}")
        return 0
    if options.models_command == "list":
        versions = registry.versions()
        if not versions:
            raise PermanentError(
                f"{registry.layout.root}/: no versions of model "
                f"{options.model_name!r}; check --model-name and --bucket"
            )
        for info in versions:
            accuracy = f"{info.accuracy:.4f}" if info.accuracy is not None else "-"
            state = "complete" if info.complete else "INCOMPLETE"
            marker = "*" if info.in_production else " "
            print(f"{marker} {info.version:>4}  {state:<10}  {accuracy}  {info.run_id or ''}")
        return 0
    if options.models_command == "show":
        print(json.dumps(registry.card(options.version).to_json(), indent=2))
        return 0
    pointer = registry.rollback(options.version)
    print(f"production is now version {pointer.version} ({pointer.version_uri})")
    print(
        "consumers scheduled on the production Asset were not told: trigger the "
        "rollback_production DAG instead to emit its event"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
