"""What the Airflow UI's artifact server may show, and the model page it renders.

The server (`plugins/retrain_views.py`) streams files of one run from S3: the run's reports
(`reports/<run>/...`: the night report, its pictures, the Data Docs) and its model's files
(`models/<model_name>/...`: model cards). `artifact_key` is the one gate between a requested
path and an S3 key: anything else, and any path that could climb out of those prefixes, is
refused. `models_page` renders the read-only model history the UI shows in its navigation.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tasks.config import PipelineConfig
from tasks.layout import MODELS_PREFIX, REPORTS_PREFIX, legacy_run_segment, run_layout_of, run_segment
from tasks.registry import Registry

# The only kinds of object served: what the reports, the Data Docs and the model cards are
# made of. Script (the Data Docs' .js) and model weights are not.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".png": "image/png",
    ".json": "application/json",
    ".css": "text/css; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Larger objects are refused rather than streamed into the UI.
MAX_SERVED_BYTES = 20 * 1024 * 1024
# Whatever the bucket holds is served as hostile content: no script runs (the sandbox has no
# allow-scripts and script-src is 'none'), and it keeps the document's own origin only so
# that its pictures and links load with the viewer's login; nothing loads from elsewhere.
SERVED_HEADERS = {
    "Content-Security-Policy": (
        "sandbox allow-same-origin allow-popups allow-popups-to-escape-sandbox "
        "allow-top-navigation-by-user-activation; default-src 'none'; img-src 'self' data:; "
        "style-src 'self' 'unsafe-inline'; font-src 'self' data:; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class RefusedPath(Exception):
    """A requested path outside what the run may show; `status` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def report_segment(client: Any, bucket: str, run_id: str) -> str:
    """The folder of the run's reports: its own (`run_segment`), or, for a run of an earlier
    release that has none, the shared folder that release wrote (`legacy_run_segment`), but
    only if the report there was not written by another run since."""
    from tasks.storage import exists, get_bytes_if_exists

    segment, legacy = run_segment(run_id), legacy_run_segment(run_id)
    if legacy == segment or exists(client, run_layout_of(bucket, segment).night_outcome):
        return segment
    written = get_bytes_if_exists(client, run_layout_of(bucket, legacy).night_outcome)
    if written is None:
        return segment
    try:
        writer = json.loads(written).get("run_id")
    except (ValueError, AttributeError):
        return segment
    return legacy if writer in (None, run_id) else segment


def artifact_key(path: str, run_id: str, model_name: str, segment: str | None = None) -> str:
    """The S3 key for a path requested under a run, if the run may show it: its own reports
    (under `segment`, by default its `run_segment`) or its model's files. Refuses (400)
    absolute paths, backslashes and `.`/`..`/empty segments however they were encoded, and
    (403) every other prefix."""
    if path.startswith("/") or "\\" in path or "\x00" in path:
        raise RefusedPath(400, "absolute or malformed paths are refused")
    segments = path.split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise RefusedPath(400, "paths with empty, '.' or '..' segments are refused")
    allowed = (f"{REPORTS_PREFIX}{segment or run_segment(run_id)}/", f"{MODELS_PREFIX}{model_name}/")
    if not path.startswith(allowed):
        raise RefusedPath(403, f"only {allowed[0]} and {allowed[1]} of this run can be shown")
    return path


def content_type(key: str) -> str:
    """The served type of `key`; a kind outside CONTENT_TYPES is refused (403)."""
    suffix = key[key.rfind(".") :].lower() if "." in key.rsplit("/", 1)[-1] else ""
    if suffix not in CONTENT_TYPES:
        raise RefusedPath(
            403, f"{suffix or 'files without a suffix'}: not served here ({', '.join(CONTENT_TYPES)} are)"
        )
    return CONTENT_TYPES[suffix]


def missing_report_page(run_id: str, report_uri: str) -> str:
    """What the Night report tab shows for a run without a report (yet)."""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>No night report</title>"
        "<style>body { font-family: system-ui, sans-serif; margin: 1.5rem; }</style></head><body>"
        f"<h1>No night report for {html.escape(run_id)}</h1>"
        f"<p id='missing-report'>{html.escape(report_uri)} does not exist. The run's night_report task "
        "writes it when the run ends, whatever its end: this run has not got there yet, or its "
        "bucket could not be written (that task's log says why), or the report was deleted.</p>"
        "</body></html>"
    )


@dataclass(frozen=True)
class VersionRow:
    """One published version as the model page lists it."""

    version: int
    accuracy: float | None
    macro_f1: float | None
    images: int | None
    published_at: str
    run_id: str | None
    production: bool
    started_from: str = "scratch"  # or "v<parent> (warm generation N)"


def version_rows(registry: Registry) -> list[VersionRow]:
    """Every complete version of a model with its card's figures, oldest first: one HEAD of
    its `_COMPLETE` marker (whether it is complete, and when) and one GET of its card each."""
    from tasks.model_card import ModelCard
    from tasks.storage import head_object

    pointer = registry.pointer()
    rows = []
    for number in registry.version_numbers():
        version = registry.layout.version(number)
        marker = head_object(registry.client, version.marker)
        if marker is None:
            continue
        card = ModelCard.read(registry.client, version.model_card)
        rows.append(
            VersionRow(
                version=number,
                accuracy=card.metrics.accuracy,
                macro_f1=card.metrics.macro_f1,
                images=sum(card.dataset.split_counts.values()),
                published_at=marker["LastModified"].strftime("%Y-%m-%d %H:%M"),
                run_id=card.run_id,
                production=pointer is not None and pointer.version == number,
                started_from=(
                    "scratch"
                    if card.parent_version is None
                    else f"v{card.parent_version} (warm generation {card.warm_generation or 1})"
                ),
            )
        )
    return rows


def accuracy_chart(rows: list[VersionRow], width: int = 560, height: int = 180) -> str:
    """Test accuracy over versions as an inline SVG line chart (production marked)."""
    scored = [row for row in rows if row.accuracy is not None]
    if not scored:
        return "<p>No version has a test accuracy yet.</p>"
    low = min(row.accuracy or 0.0 for row in scored)
    high = max(row.accuracy or 0.0 for row in scored)
    low, high = (low - 0.01, high + 0.01) if high - low < 0.02 else (low, high)
    margin = 36

    def x(index: int) -> float:
        return margin + (width - 2 * margin) * (index / max(1, len(scored) - 1))

    def y(value: float) -> float:
        return height - margin - (height - 2 * margin) * (value - low) / (high - low)

    points = " ".join(f"{x(i):.1f},{y(row.accuracy or 0.0):.1f}" for i, row in enumerate(scored))
    dots = "".join(
        f"<circle cx='{x(i):.1f}' cy='{y(row.accuracy or 0.0):.1f}' r='{6 if row.production else 4}' "
        f"fill='{'#1a7f37' if row.production else '#0969da'}'><title>v{row.version}: "
        f"{row.accuracy:.4f}</title></circle>"
        f"<text x='{x(i):.1f}' y='{height - 12}' text-anchor='middle' font-size='11'>v{row.version}</text>"
        for i, row in enumerate(scored)
    )
    axis = (
        f"<text x='4' y='{y(high) + 4:.1f}' font-size='11'>{high:.3f}</text>"
        f"<text x='4' y='{y(low) + 4:.1f}' font-size='11'>{low:.3f}</text>"
    )
    return (
        f"<svg role='img' aria-label='test accuracy over versions' width='{width}' height='{height}' "
        f"xmlns='http://www.w3.org/2000/svg'>{axis}<polyline points='{points}' fill='none' "
        f"stroke='#0969da' stroke-width='2'/>{dots}</svg>"
    )


def report_link(run_id: str, dag_id: str) -> str:
    """The night report of a run, through the artifact server (relative to the model page)."""
    from urllib.parse import quote

    return f"runs/{quote(dag_id, safe='')}/{quote(run_id, safe='')}/report"


def models_page(client: Any, config: PipelineConfig, dag_id: str) -> str:
    """Each model under models/ of the bucket: its versions, which is production, and a chart
    of test accuracy over versions. Read-only: rollback stays a CLI/DAG action."""
    from tasks.storage import S3Uri, list_folders

    names = list_folders(client, S3Uri(config.bucket, MODELS_PREFIX))
    sections = []
    for name in names:
        rows = version_rows(Registry(client, config.bucket, name))
        table_rows = "".join(
            "<tr{cls}><td>{mark}{version}</td><td>{accuracy}</td><td>{f1}</td><td>{images}</td>"
            "<td>{started}</td><td>{date}</td><td>{run}</td></tr>".format(
                cls=" class='production'" if row.production else "",
                mark="&#9733; " if row.production else "",
                version=row.version,
                accuracy="-" if row.accuracy is None else f"{row.accuracy:.4f}",
                f1="-" if row.macro_f1 is None else f"{row.macro_f1:.4f}",
                images="-" if row.images is None else f"{row.images:,}",
                started=html.escape(row.started_from),
                date=html.escape(row.published_at),
                run=(
                    f"<a href='{html.escape(report_link(row.run_id, dag_id))}'>{html.escape(row.run_id)}</a>"
                    if row.run_id
                    else "-"
                ),
            )
            for row in reversed(rows)
        )
        sections.append(
            f"<section><h2>{html.escape(name)}</h2>{accuracy_chart(rows)}"
            "<table><thead><tr><th>version</th><th>test accuracy</th><th>macro F1</th>"
            "<th>images</th><th>trained from</th><th>published (UTC)</th><th>night report</th></tr></thead>"
            f"<tbody>{table_rows}</tbody></table></section>"
        )
    bucket = html.escape(config.bucket)
    body = "".join(sections) or f"<p>No model under s3://{bucket}/{MODELS_PREFIX} yet.</p>"
    written = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Models</title>"
        f"<style>{PAGE_STYLE}</style></head><body><h1>Models in s3://{html.escape(config.bucket)}</h1>"
        f"<p class='muted'>&#9733; production. Read {written}; roll back with the rollback_production "
        f"DAG.</p>{body}</body></html>"
    )


PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1f2328; }
table { border-collapse: collapse; margin: .5rem 0; }
td, th { border: 1px solid #d0d7de; padding: .25rem .6rem; text-align: left; }
tr.production { background: #dafbe1; font-weight: 600; } .muted { color: #59636e; }
"""
