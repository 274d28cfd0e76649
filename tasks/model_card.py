"""The model card published with every version: where the model came from and how good it is,
as JSON for programs and Markdown for people."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tasks.records import DatasetRecord


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
    evaluation: dict[str, Any],
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
        "metrics": {
            key: evaluation[key]
            for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1", "macro_roc_auc_ovr")
        }
        | {"test_images": evaluation["test_images"], "per_class": evaluation["per_class"]},
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


def card_markdown(card: dict[str, Any]) -> str:
    metrics = card["metrics"]
    champion = card["champion"]
    lines = [
        f"# {card['model_name']} version {card['version']}",
        "",
        f"Reference CNN trained by run `{card['run_id']}`, attempt {card['attempt']}, "
        f"code {card['code_version']}.",
        "",
        "## Data",
        f"- dataset fingerprint `{card['dataset']['fingerprint']}`",
        f"- manifest `{card['dataset']['manifest_uri']}`",
        f"- images per split: {card['dataset']['split_counts']}; input "
        f"{card['dataset']['image_size']}x{card['dataset']['image_size']} RGB in [0, 1]",
        f"- classes (output order): {', '.join(card['dataset']['class_names'])}",
        "",
        "## Training",
        f"- {card['training']['epochs_trained']} epochs in {card['training']['train_seconds']} s "
        f"({card['training']['images_per_second']} images/s); published weights: epoch "
        f"{card['training']['kept_epoch']} "
        f"(validation accuracy {card['training']['final_val_accuracy']:.4f})",
        f"- started {started_from(card)}",
        f"- recipe: {card['training']['recipe']}",
        f"- hyperparameters: {card['training']['hyperparameters']}",
        "",
        "![training curves](training_curves.png)",
        "",
        "## Test metrics",
        "| metric | value |",
        "|---|---|",
        *[f"| {name} | {value:.4f} |" for name, value in metrics.items() if isinstance(value, float)],
        f"| test images | {metrics['test_images']} |",
        "",
        "![confusion matrix](confusion_matrix.png)",
        "",
        "## Blessing",
        f"- {'blessed' if card['blessing']['blessed'] else 'NOT blessed'}: {card['blessing']['reason']}",
        f"- champion: version {champion['version']}, accuracy {champion['accuracy']:.4f}"
        if champion
        else "- champion: none (first model)",
        "",
    ]
    return "\n".join(lines)
