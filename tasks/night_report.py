"""The night report: one HTML page per run that says what the night did, written next to the
run's reports (`reports/<run>/night_report.html`).

It reads what the run's steps left in S3 (manifest.json, quarantine.json, the gate's
validation results, the dataset record, each attempt's evaluation and blessing) and copies
each attempt's pictures next to itself, so the page and everything it links to lie under
`reports/<run>/` and `models/<model_name>/`: it opens the same from S3, from a local mirror
(`make demo`'s demo-output/) and through the Airflow UI's artifact server. A night that
stopped early gets a report too, saying where it stopped and why; sections whose inputs the
night never wrote say so.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from tasks.config import ATTEMPT_GROUPS, PipelineConfig
from tasks.layout import (
    CONFUSION_MATRIX_FILE,
    TRAINING_CURVES_FILE,
    RunLayout,
    model_layout,
    run_layout,
)
from tasks.records import DatasetRecord, GateResults, JsonRecord
from tasks.run_documents import (
    BlessingDocument,
    DatasetRef,
    EvaluationDocument,
    ManifestSummary,
    QuarantineList,
)
from tasks.storage import (
    S3Client,
    S3Uri,
    copy_object,
    exists,
    iter_objects,
    json_bytes,
    put_bytes,
)

log = logging.getLogger(__name__)

PICTURES = (("Training curves", TRAINING_CURVES_FILE), ("Confusion matrix", CONFUSION_MATRIX_FILE))
QUARANTINE_ROWS_SHOWN = 200


@dataclass(frozen=True)
class NightOutcome(JsonRecord):
    """How the night ended, as the run's task states say."""

    ended: str  # "deployed", "nothing to train", "gave up" or "failed"
    reason: str
    failed_task: str | None = None
    version: int | None = None
    run_id: str | None = None  # the run that wrote it (absent in reports of earlier releases)


@dataclass(frozen=True)
class AttemptFacts:
    """One attempt as its evaluation and blessing describe it, with its pictures' report paths."""

    number: int
    evaluation: EvaluationDocument
    blessing: BlessingDocument | None
    pictures: dict[str, str] = field(default_factory=dict)  # title -> path relative to the report


@dataclass(frozen=True)
class NightFacts:
    """Everything the report shows, read from the run's outputs (None: not written that night)."""

    model_name: str
    run_id: str
    outcome: NightOutcome
    collected: ManifestSummary | None
    quarantine: QuarantineList | None
    gate: dict[str, GateResults | None]  # stage -> the gate's verdict (None: not run)
    result_pages: dict[str, str]  # stage -> its validation-results page, relative to the report
    dataset: DatasetRecord | None
    attempts: list[AttemptFacts]
    model_card_path: str | None  # relative to the report


def gather_night(client: S3Client, config: PipelineConfig, run_id: str, outcome: NightOutcome) -> NightFacts:
    """Reads the night's outputs and copies each attempt's pictures under the run's reports."""
    layout = run_layout(config, run_id)
    gate, result_pages = {}, {}
    for stage in ("raw", "processed"):
        gate[stage] = GateResults.read_cached(
            client, layout.validation_results(stage), instead="the report shows that gate as not run"
        )
        pages = [
            item["Key"]
            for item in iter_objects(client, layout.validation_pages(stage))
            if item["Key"].endswith(".html")
        ]
        if pages:
            result_pages[stage] = pages[0].removeprefix(layout.reports.key.rstrip("/") + "/")
    left_out = "the report leaves it out"
    dataset_ref = DatasetRef.read_cached(client, layout.dataset_ref, instead=left_out)
    dataset = DatasetRecord.read(client, dataset_ref.dataset_uri) if dataset_ref else None
    attempts = [
        facts
        for number in range(1, ATTEMPT_GROUPS + 1)
        if (facts := attempt_facts(client, layout, number)) is not None
    ]
    card_path = None
    if outcome.version is not None:
        card_path = f"../../{model_layout(config).version(outcome.version).model_card_page.key}"
    return NightFacts(
        model_name=config.model_name,
        run_id=run_id,
        outcome=outcome,
        collected=ManifestSummary.read_cached(client, layout.manifest_summary, instead=left_out),
        quarantine=QuarantineList.read_cached(client, layout.quarantine, instead=left_out),
        gate=gate,
        result_pages=result_pages,
        dataset=dataset,
        attempts=attempts,
        model_card_path=card_path,
    )


def attempt_facts(client: S3Client, layout: RunLayout, number: int) -> AttemptFacts | None:
    attempt = layout.attempt(number)
    evaluation = EvaluationDocument.read_cached(
        client, attempt.evaluation, instead="the report leaves it out"
    )
    if evaluation is None:
        return None
    pictures = {}
    for title, name in PICTURES:
        source = attempt.file(name)
        if exists(client, source):
            relative = f"attempt-{number}/{name}"
            copy_object(client, source, layout.report_file(relative))
            pictures[title] = relative
    blessing = BlessingDocument.read_cached(client, attempt.blessing, instead="the report says not decided")
    return AttemptFacts(number, evaluation, blessing, pictures)


def write_night_report(client: S3Client, config: PipelineConfig, run_id: str, outcome: NightOutcome) -> S3Uri:
    """Gathers the night's facts, renders the page and writes it (replacing a retry's)."""
    facts = gather_night(client, config, run_id, outcome)
    page = render_night_report(facts)
    layout = run_layout(config, run_id)
    uri = layout.night_report
    put_bytes(client, uri, page.encode(), content_type="text/html; charset=utf-8")
    put_bytes(
        client,
        layout.night_outcome,
        json_bytes(replace(outcome, run_id=run_id).to_json()),
        content_type="application/json",
    )
    log.info("night report (%d bytes): %s", len(page), uri)
    return uri


def text(value: Any) -> str:
    return html.escape(str(value))


def table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{text(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_night_report(facts: NightFacts) -> str:
    """The report page: self-contained HTML whose links are relative to its own location."""
    sections = [
        decision_section(facts),
        changes_section(facts),
        gate_section(facts),
        dataset_section(facts),
        attempts_section(facts),
    ]
    title = f"Night report: {facts.model_name}, {facts.run_id}"
    written = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{text(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{text(title)}</h1><p class='muted'>written {written}</p>" + "".join(sections) + "</body></html>"
    )


def decision_section(facts: NightFacts) -> str:
    outcome = facts.outcome
    headline = {
        "deployed": f"Deployed version {outcome.version}",
        "nothing to train": "Nothing to train: production kept",
        "gave up": "Gave up: production kept",
        "failed": f"Failed at {outcome.failed_task or 'an unknown task'}: production kept",
    }.get(outcome.ended, outcome.ended)
    return (
        f"<section class='decision {text(outcome.ended.replace(' ', '-'))}'><h2>Decision</h2>"
        f"<p class='headline' id='decision'>{text(headline)}</p><p>{text(outcome.reason)}</p>"
        f"{top_links(facts)}</section>"
    )


def top_links(facts: NightFacts) -> str:
    """The night's model card and Data Docs, first thing on the page."""
    links = (
        [(f"Model card, version {facts.outcome.version}", facts.model_card_path)]
        if facts.model_card_path
        else []
    )
    links += [(f"Data Docs ({stage} gate)", page) for stage, page in facts.result_pages.items()]
    if not links:
        return ""
    anchors = " · ".join(f"<a href='{text(path)}'>{text(title)}</a>" for title, path in links)
    return f"<p class='links'>{anchors}</p>"


def changes_section(facts: NightFacts) -> str:
    collected = facts.collected
    if collected is None:
        return "<section><h2>What changed</h2><p>The night stopped before collecting.</p></section>"
    rows = [
        ["objects listed", collected.objects],
        ["new", collected.objects_new],
        ["changed", collected.objects_changed],
        ["removed since the last night", collected.objects_removed],
        ["unchanged (from the catalog)", collected.objects - collected.objects_read],
        ["skipped as noise", sum(collected.skipped_as_noise.values())],
    ]
    quarantine = facts.quarantine
    quarantined = quarantine.quarantined if quarantine else []
    if quarantine:
        rows.append(["checked by the gate tonight", quarantine.rows_checked])
        rows.append(["gate outcome carried from earlier nights", quarantine.rows_carried])
        if quarantine.gated_by_run != facts.run_id:
            rows.append(["manifest the same as the one gated by run", text(quarantine.gated_by_run)])
    rows.append(["quarantined", len(quarantined)])
    quarantine_rows = [
        [text(item.key), text("; ".join(item.reasons))] for item in quarantined[:QUARANTINE_ROWS_SHOWN]
    ]
    more = len(quarantined) - len(quarantine_rows)
    quarantine_table = (
        "<h3>Quarantined objects</h3>"
        + table(["object", "reasons"], quarantine_rows)
        + (f"<p>... and {more} more in quarantine.json</p>" if more > 0 else "")
        if quarantined
        else ""
    )
    noise = collected.skipped_as_noise
    noise_text = (
        "<p class='muted'>Skipped as noise: "
        + text(", ".join(f"{name} ({count})" for name, count in sorted(noise.items())))
        + "</p>"
        if noise
        else ""
    )
    return (
        "<section><h2>What changed</h2>"
        + table(["objects", "count"], [[text(name), text(value)] for name, value in rows])
        + noise_text
        + quarantine_table
        + "</section>"
    )


def gate_section(facts: NightFacts) -> str:
    rows = []
    for stage, results in facts.gate.items():
        state = "not run" if results is None else ("passed" if results.success else "FAILED")
        docs = f"<a href='data_docs/{stage}/index.html'>Data Docs ({stage})</a>"
        if stage in facts.result_pages:
            docs += f" &middot; <a href='{text(facts.result_pages[stage])}'>expectation results ({stage})</a>"
        if results is not None and results.failures:
            docs = "<br>".join(text(failure) for failure in results.failures) + "<br>" + docs
        link = docs if results is not None else "-"
        rows.append([text(stage), f"<span class='{state.split()[0].lower()}'>{state}</span>", link])
    return "<section><h2>Data-quality gate</h2>" + table(["stage", "outcome", "details"], rows) + "</section>"


def dataset_section(facts: NightFacts) -> str:
    dataset = facts.dataset
    if dataset is None:
        return "<section><h2>Dataset</h2><p>No dataset was assembled this night.</p></section>"
    splits = [[text(split), text(count)] for split, count in dataset.split_counts.items()]
    per_class = facts.collected.objects_per_folder if facts.collected else {}
    classes = [[text(name), text(per_class.get(name, "-"))] for name in dataset.class_names]
    size = dataset.image_size
    return (
        f"<section><h2>Dataset</h2><p>{text(dataset.dataset_id)}: {sum(dataset.split_counts.values())} "
        f"images at {size}x{size}, fingerprint {text(dataset.fingerprint[:12])}</p>"
        + table(["split", "images"], splits)
        + table(["class", "objects collected"], classes)
        + "</section>"
    )


def attempts_section(facts: NightFacts) -> str:
    if not facts.attempts:
        return "<section><h2>Attempts</h2><p>No attempt was trained this night.</p></section>"
    parts = ["<section><h2>Attempts</h2>"]
    for attempt in facts.attempts:
        evaluation = attempt.evaluation
        blessing = attempt.blessing
        champion = evaluation.champion  # evaluate scores the champion; blessing only compares
        training = blessing.training if blessing else None
        epochs = f"{training.epochs_trained} / {training.kept_epoch}" if training else "- / -"
        if blessing is None:
            verdict = "not decided"
        else:
            verdict = text(("blessed: " if blessing.blessed else "not blessed: ") + blessing.reason)
        rows = [
            ["what it trained", text(training.attempt if training else "-")],
            ["epochs trained / kept", text(epochs)],
            ["test accuracy", f"<span class='accuracy'>{evaluation.accuracy:.4f}</span>"],
            ["macro F1", f"{evaluation.macro_f1:.4f}"],
            [
                "champion",
                text(f"v{champion.version}: {champion.accuracy:.4f}") if champion else "none yet",
            ],
            ["blessing", verdict],
        ]
        pictures = "".join(
            f"<figure><img src='{text(path)}' alt='{text(title)}'>"
            f"<figcaption>{text(title)}</figcaption></figure>"
            for title, path in attempt.pictures.items()
        )
        parts.append(
            f"<h3 id='attempt-{attempt.number}'>Attempt {attempt.number}</h3>"
            + table(["", ""], rows)
            + f"<div class='pictures'>{pictures}</div>"
        )
    parts.append("</section>")
    return "".join(parts)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1f2328; max-width: 70rem; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; margin: .5rem 0; }
td, th { border: 1px solid #d0d7de; padding: .25rem .6rem; text-align: left; vertical-align: top; }
.muted { color: #59636e; } .failed { color: #cf222e; font-weight: 600; } .passed { color: #1a7f37; }
.headline { font-size: 1.2rem; font-weight: 600; }
.decision.deployed .headline { color: #1a7f37; } .decision.failed .headline { color: #cf222e; }
.pictures { display: flex; flex-wrap: wrap; gap: 1rem; } figure { margin: 0; }
img { max-width: 32rem; border: 1px solid #d0d7de; }
"""


def outcome_of(
    states: dict[str, str | None],
    failed: list[tuple[str, int]],
    failure_reasons: Mapping[tuple[str, int], str],
    deployed_version: int | None,
) -> NightOutcome:
    """How the night ended, from its task states (`failed` in task order, as
    retrain_alerts.failed_tasks gives them; `failure_reasons` their recorded one-line reasons
    by (task_id, map_index))."""
    if failed:
        task_id, map_index = failed[0]
        reason = failure_reasons.get((task_id, map_index)) or "see the task log"
        if task_id.endswith(".give_up"):
            return NightOutcome("gave up", reason)
        label = task_id if map_index < 0 else f"{task_id} [{map_index}]"
        return NightOutcome("failed", reason, failed_task=label)
    if states.get("deploy") == "success" and deployed_version is not None:
        return NightOutcome(
            "deployed", f"version {deployed_version} is production now", version=deployed_version
        )
    if states.get("nothing_to_train") == "success":
        return NightOutcome(
            "nothing to train",
            "the data, the training settings and the trainer code are those production was trained with",
        )
    if any(task.endswith(".give_up") and state == "success" for task, state in states.items()):
        return NightOutcome("gave up", "no attempt was blessed (fail_on_give_up is off); see each attempt")
    return NightOutcome("stopped", "the night ended without deploying, skipping or giving up")
