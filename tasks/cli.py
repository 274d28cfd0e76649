"""The `retrain` command: what people do outside Airflow (demo data, training, the demo)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from tasks.config import PipelineConfig


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
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

    options, rest = cli.parse_known_args(argv)
    if options.command == "train":
        from tasks.train import main as train_main

        return train_main(rest)
    if rest:
        cli.error(f"unrecognized arguments: {' '.join(rest)}")
    if options.command == "demo-data":
        from tasks.demo_data import upload_digits
        from tasks.storage import make_client

        upload_digits(
            make_client(options.endpoint_url),
            options.bucket,
            options.raw_prefix,
            options.image_size,
            options.limit,
        )
        return 0
    from tasks.demo import run_demo

    return run_demo(options.output.resolve(), options.airflow_home.resolve(), json.loads(options.conf))


if __name__ == "__main__":
    raise SystemExit(main())
