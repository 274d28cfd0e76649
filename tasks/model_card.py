"""The model card published with every version: where the model came from and how good it is,
as JSON for programs, and as Markdown and an HTML page for people."""

from __future__ import annotations

import subprocess
from html import escape
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tasks.records import DatasetRecord
    from tasks.run_documents import EvaluationDocument


def code_version() -> str:
    """The package version, plus the git commit when running from a checkout."""
    version = metadata.version("nightly-retrain")
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git as the user's PATH finds it
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{version}+{commit}" if commit else version


def recipe_summary(request: dict[str, Any]) -> str:
    from tasks.recipe import Recipe

    return Recipe.of(request).summary()


def build_card(
    *,
    model_name: str,
    version: int,
    run_id: str,
    attempt: int,
    params: dict[str, Any],
    dataset: DatasetRecord,
    train_result: dict[str, Any],
    evaluation: EvaluationDocument,
    blessing: dict[str, Any],
) -> dict[str, Any]:
    return {
        "model_name": model_name,
        "version": version,
        "run_id": run_id,
        "attempt": attempt,
        "code_version": code_version(),
        "dataset": {
            "fingerprint": dataset.fingerprint,
            "dataset_id": dataset.dataset_id,
            "manifest_uri": dataset.manifest_uri,
            "split_counts": dataset.split_counts,
            "class_names": dataset.class_names,
            "image_size": dataset.image_size,
        },
        "params": params,
        "training": {
            key: train_result.get(key)
            for key in (
                "epochs_trained",
                "kept_epoch",
                "final_val_accuracy",
                "train_seconds",
                "images_per_second",
                "resumed_after_epoch",
            )
        }
        | {"hyperparameters": train_result["request"], "recipe": recipe_summary(train_result["request"])},
        "metrics": evaluation.summary_metrics()
        | {"test_images": evaluation.test_images, "per_class": evaluation.per_class},
        "blessing": {
            "blessed": blessing["blessed"],
            "reason": blessing["reason"],
            "checks": blessing["checks"],
        },
        "champion": blessing["baseline"],
    }


def started_from(card: dict[str, Any]) -> str:
    """Where a version's training started, for people: its parent version or random weights."""
    parent = card.get("parent_version")
    if parent is None:
        return "from scratch (random weights)"
    return f"from version {parent}'s weights (warm generation {card.get('warm_generation', 1)})"


def card_sections(card: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """The card's facts for people, as (heading, items) in plain text: the one source of the
    Markdown and the HTML card."""
    data, training, champion = card["dataset"], card["training"], card["champion"]
    verdict = "blessed" if card["blessing"]["blessed"] else "NOT blessed"
    return [
        (
            "Data",
            [
                f"dataset fingerprint {data['fingerprint']}",
                f"manifest {data['manifest_uri']}",
                f"images per split: {data['split_counts']}; input "
                f"{data['image_size']}x{data['image_size']} RGB in [0, 1]",
                f"classes (output order): {', '.join(data['class_names'])}",
            ],
        ),
        (
            "Training",
            [
                f"{training['epochs_trained']} epochs in {training['train_seconds']} s "
                f"({training['images_per_second']} images/s); published weights: epoch "
                f"{training['kept_epoch']} (validation accuracy {training['final_val_accuracy']:.4f})",
                f"started {started_from(card)}",
                f"recipe: {training['recipe']}",
                f"hyperparameters: {training['hyperparameters']}",
            ],
        ),
        (
            "Blessing",
            [
                f"{verdict}: {card['blessing']['reason']}",
                f"champion: version {champion['version']}, accuracy {champion['accuracy']:.4f}"
                if champion
                else "champion: none (first model)",
            ],
        ),
    ]


def card_title(card: dict[str, Any]) -> tuple[str, str]:
    return (
        f"{card['model_name']} version {card['version']}",
        f"Reference CNN trained by run {card['run_id']}, attempt {card['attempt']}, "
        f"code {card['code_version']}.",
    )


def metric_rows(card: dict[str, Any]) -> list[tuple[str, str]]:
    metrics = card["metrics"]
    return [
        *[(name, f"{value:.4f}") for name, value in metrics.items() if isinstance(value, float)],
        ("test images", str(metrics["test_images"])),
    ]


def card_markdown(card: dict[str, Any]) -> str:
    title, summary = card_title(card)
    data, training, blessing = card_sections(card)
    lines = [f"# {title}", "", summary, ""]
    for heading, items in (data, training):
        lines += [f"## {heading}", *[f"- {item}" for item in items], ""]
    lines += [
        "![training curves](training_curves.png)",
        "",
        "## Test metrics",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value} |" for name, value in metric_rows(card)]
    lines += ["", "![confusion matrix](confusion_matrix.png)", ""]
    lines += [f"## {blessing[0]}", *[f"- {item}" for item in blessing[1]], ""]
    return "\n".join(lines)


CARD_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1f2328; max-width: 60rem; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; } td, th { border: 1px solid #d0d7de; padding: .25rem .6rem; }
img { max-width: 32rem; border: 1px solid #d0d7de; } li { overflow-wrap: anywhere; }
"""


def card_html(card: dict[str, Any]) -> str:
    """The card as a self-contained page beside its pictures (every value escaped: the card
    holds Params and S3 names, which anyone who may trigger a run or write the bucket chose)."""
    title, summary = card_title(card)
    body = [f"<h1>{escape(title)}</h1><p>{escape(summary)}</p>"]
    for heading, items in card_sections(card):
        body.append(
            f"<h2>{escape(heading)}</h2><ul>"
            + "".join(f"<li>{escape(item)}</li>" for item in items)
            + "</ul>"
        )
    rows = "".join(
        f"<tr><th>{escape(name)}</th><td>{escape(value)}</td></tr>" for name, value in metric_rows(card)
    )
    body.append(
        f"<h2>Test metrics</h2><table>{rows}</table>"
        "<p><img src='training_curves.png' alt='Training curves'> "
        "<img src='confusion_matrix.png' alt='Confusion matrix'></p>"
        "<p><a href='model_card.json'>model_card.json</a> · <a href='model_card.md'>model_card.md</a></p>"
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Model card: {escape(title)}</title><style>{CARD_STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>"
    )
