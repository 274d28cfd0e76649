"""The model card for people: Markdown (`model_card.md`) and a self-contained HTML page
(`model_card.html`, the UI's "Model card" link), both rendered from the same facts of the
`ModelCard` record."""

from __future__ import annotations

from html import escape

from tasks.model_card import ModelCard, started_from


def card_sections(card: ModelCard) -> list[tuple[str, list[str]]]:
    """The card's facts for people, as (heading, items) in plain text: the one source of the
    Markdown and the HTML card."""
    data, training, champion = card.dataset, card.training, card.champion
    verdict = "blessed" if card.blessing.blessed else "NOT blessed"
    return [
        (
            "Data",
            [
                f"dataset fingerprint {data.fingerprint}",
                f"manifest {data.manifest_uri}",
                f"images per split: {data.split_counts}; input "
                f"{data.image_size}x{data.image_size} RGB in [0, 1]",
                f"classes (output order): {', '.join(data.class_names)}",
            ],
        ),
        (
            "Training",
            [
                f"{training.epochs_trained} epochs in {training.train_seconds} s "
                f"({training.images_per_second} images/s); published weights: epoch "
                f"{training.kept_epoch} (validation accuracy {training.final_val_accuracy:.4f})",
                f"started {started_from(card)}",
                f"recipe: {training.recipe}",
                f"hyperparameters: {training.hyperparameters}",
            ],
        ),
        (
            "Blessing",
            [
                f"{verdict}: {card.blessing.reason}",
                f"champion: version {champion.version}, accuracy {champion.accuracy:.4f}"
                if champion
                else "champion: none (first model)",
            ],
        ),
    ]


def card_title(card: ModelCard) -> tuple[str, str]:
    return (
        f"{card.model_name} version {card.version}",
        f"Reference CNN trained by run {card.run_id}, attempt {card.attempt}, code {card.code_version}.",
    )


def metric_rows(card: ModelCard) -> list[tuple[str, str]]:
    metrics = card.metrics
    scores = {
        "accuracy": metrics.accuracy,
        "macro_precision": metrics.macro_precision,
        "macro_recall": metrics.macro_recall,
        "macro_f1": metrics.macro_f1,
        "macro_roc_auc_ovr": metrics.macro_roc_auc_ovr,
    }
    return [
        *[(name, f"{value:.4f}") for name, value in scores.items() if value is not None],
        ("test images", str(metrics.test_images)),
    ]


def card_markdown(card: ModelCard) -> str:
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


def card_html(card: ModelCard) -> str:
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
