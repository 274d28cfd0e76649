"""validate as one step: merge the manifest parts, gate, split the clean rows for preprocess;
or, on a night whose manifest is one the gate has passed already, take that night's results.

What the gate makes of a manifest depends only on the manifest and the row rules
(tasks/row_outcomes.py: rules_digest); the dataset-level expectations and the quarantine bound
are judged again every night, on per-class counts. So validate keeps the last manifest it
passed with what it made of it: the merged and the clean manifest, the clean
rows of each preprocess partition, and in `gated.json` the quarantine list, the per-class counts
and the dataset fingerprint. A night whose manifest parts are byte-identical to the kept ones
(same partition count, same rules) copies those files into its run on the S3 side and judges
the stored counts, instead of reading, merging, gating and splitting every row again: its work
and memory no longer grow with the catalogue, only with the quarantine list. The kept night is
a cache: without it the night is gated in full, with the same result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tasks.collect import (
    MANIFEST_COLUMNS,
    PartCollected,
    merge_manifest,
    merged_manifest,
    parse_manifest,
    summarize_manifest,
)
from tasks.config import PipelineConfig
from tasks.expectations import Validator
from tasks.layout import GatedNightLayout, gate_memory, gate_rules_root, gated_night, run_layout
from tasks.partitions import Partition, part_name
from tasks.preprocess import dataset_fingerprint, labels_of, split_by_content
from tasks.records import JsonRecord, RecordJson
from tasks.row_outcomes import rules_digest
from tasks.storage import (
    PermanentStorageError,
    S3Client,
    S3Uri,
    copy_object,
    delete_keys,
    iter_objects,
    parallel_map,
    put_json,
    upload_tree,
)
from tasks.validate import (
    DataValidationError,
    GateResult,
    Verdict,
    dataset_verdict,
    gate_and_write,
    gate_result,
    report_gate,
    row_expectations,
    with_derived_columns,
)

log = logging.getLogger(__name__)

# Part of the manifest digest: bump it when what a kept night holds changes.
KEPT_NIGHT_VERSION = 1


class KeptNightGoneError(Exception):
    """A kept night lacks one of its files (removed by hand): the night is gated in full."""


@dataclass(frozen=True)
class GatedNight(JsonRecord):
    """`gated.json`: what the gate made of a manifest, beside its copies of the files."""

    objects: int
    objects_per_folder: dict[str, int]
    undecodable: int
    clean_per_class: dict[str, int]
    quarantine: dict[str, list[str]]  # key -> reasons
    duplicates: list[str]
    fingerprint: str  # the clean rows' labelled content (tasks/preprocess.py)
    gated_by_run: str


@dataclass(frozen=True)
class Validated:
    """validate's result: the gate's, and the preprocess partitions, each naming its clean rows."""

    gate: GateResult
    partitions: list[RecordJson]  # Partition.to_xcom()
    fingerprint: str
    taken_from_run: str  # the run whose gated manifest this night took; "" when gated tonight

    def mapped(self) -> list[RecordJson]:
        """One XCom value per mapped preprocess instance: its partition and the gate's data
        (read back as a Partition and as GatedData)."""
        gated = GatedData(self.gate.class_names, self.gate.clean_manifest_uri, self.fingerprint).to_json()
        return [{**partition, **gated} for partition in self.partitions]


@dataclass(frozen=True)
class GatedData(JsonRecord):
    """What the gate hands to preprocess and assemble_dataset with every partition."""

    class_names: list[str]
    clean_manifest_uri: str
    fingerprint: str


def manifest_digest(config: PipelineConfig, parts: list[PartCollected]) -> str | None:
    """Names a night's manifest: the bytes of its parts, in order, and the row rules. None
    when a part does not say its digest."""
    if not parts or not all(part.sha256 for part in parts):
        return None
    document = [KEPT_NIGHT_VERSION, rules_digest(config), [part.sha256 for part in parts]]
    return hashlib.sha256(json.dumps(document).encode()).hexdigest()[:24]


def validate_night(
    client: S3Client,
    config: PipelineConfig,
    run_id: str,
    parts: list[PartCollected],
    class_names_from: str,
    skipped: dict[str, int] | None = None,
) -> Validated:
    """The DAG's validate task. `config.class_names` are the run's resolved classes."""
    digest = manifest_digest(config, parts)
    night = gated_night(config, rules_digest(config), digest) if digest else None
    kept = GatedNight.read_cached(client, night.record, "gating the manifest in full") if night else None
    if night and kept:
        try:
            return take_kept(client, config, run_id, parts, class_names_from, skipped, night, kept)
        except KeptNightGoneError as error:
            log.warning("%s: gating the manifest in full", error)
    manifest = merged_manifest(client, parts)
    collected = merge_manifest(client, config, run_id, parts, class_names_from, skipped, manifest)
    gate, findings = gate_and_write(client, config, collected.manifest_uri, run_id, manifest)
    clean = findings.clean
    partitions = split_by_content(client, config, clean, run_id, len(parts))
    fingerprint = dataset_fingerprint(
        list(clean["sha256"]), labels_of(clean["class_name"], config.class_names)
    )
    if night:
        counts = clean["class_name"].value_counts()
        record = GatedNight(
            objects=collected.object_count,
            objects_per_folder=collected.images_per_class,
            undecodable=collected.objects_undecodable,
            clean_per_class={str(name): int(count) for name, count in counts.items()},
            quarantine=findings.quarantine,
            duplicates=findings.duplicates,
            fingerprint=fingerprint,
            gated_by_run=run_id,
        )
        keep(client, config, run_id, night, record, len(parts))
    return Validated(gate, partitions, fingerprint, "")


def copies(
    config: PipelineConfig, run_id: str, night: GatedNightLayout, count: int
) -> list[tuple[S3Uri, S3Uri]]:
    """(the run's file, the kept night's) for every file a night keeps."""
    layout = run_layout(config, run_id)
    names = [part_name(number, count) for number in range(count)]
    return [
        (layout.manifest, night.manifest),
        (layout.clean_manifest, night.clean_manifest),
        *((layout.clean_part(name), night.clean_part(name)) for name in names),
    ]


def keep(
    client: S3Client,
    config: PipelineConfig,
    run_id: str,
    night: GatedNightLayout,
    record: GatedNight,
    count: int,
) -> None:
    """Copies the run's gated files into the kept night, then writes its gated.json, then
    drops every other kept night of the raw prefix (under these rules or earlier ones), and
    the row outcomes reached under earlier rules: one night is kept, so the cache holds one
    copy of the manifest, and one set of outcomes per raw object."""
    parallel_map(lambda pair: copy_object(client, *pair), copies(config, run_id, night, count))
    put_json(client, night.record, record.to_json())
    mine = night.root.folder().key
    these_rules = gate_rules_root(config, rules_digest(config)).key
    stale = [
        item["Key"]
        for item in iter_objects(client, gate_memory(config))
        if not item["Key"].startswith(mine)
        and ("/nights/" in item["Key"] or not item["Key"].startswith(these_rules))
    ]
    delete_keys(client, config.bucket, stale)
    log.info("kept the gated manifest as %s", night.root)


def take_kept(
    client: S3Client,
    config: PipelineConfig,
    run_id: str,
    parts: list[PartCollected],
    class_names_from: str,
    skipped: dict[str, int] | None,
    night: GatedNightLayout,
    kept: GatedNight,
) -> Validated:
    """A night whose manifest was gated already: copies the kept files into the run, judges
    the kept counts against tonight's settings and writes the gate's reports."""
    count = len(parts)
    pairs = copies(config, run_id, night, count)
    try:
        parallel_map(lambda pair: copy_object(client, pair[1], pair[0]), pairs)
    except PermanentStorageError as error:
        raise KeptNightGoneError(f"{night.root} is incomplete ({error})") from error
    log.info("manifest identical to the one run %s gated: taking its results", kept.gated_by_run)
    collected = summarize_manifest(
        client, config, run_id, parts, class_names_from, skipped, kept.objects_per_folder, kept.undecodable
    )
    layout = run_layout(config, run_id)
    with tempfile.TemporaryDirectory(prefix="data-docs-") as scratch:
        validator = Validator(Path(scratch))
        no_rows = with_derived_columns(parse_manifest((",".join(MANIFEST_COLUMNS) + "\n").encode()))
        row_outcomes = validator.run("raw_manifest_rows", no_rows, row_expectations(config), key_column="key")
        outcomes, failure = dataset_verdict(
            validator, config, row_outcomes, pd.Series(kept.clean_per_class), kept.quarantine, kept.objects
        )
        upload_tree(client, Path(scratch), layout.data_docs("raw"))
    verdict = Verdict(kept.quarantine, kept.duplicates, outcomes, failure)
    try:
        manifest_uri, by = collected.manifest_uri, kept.gated_by_run
        report_gate(client, config, run_id, manifest_uri, validator, verdict, kept.objects, 0, by)
    except DataValidationError:
        # As after a full gate: an unfit night leaves no clean rows behind.
        delete_keys(client, config.bucket, [run_file.key for run_file, _ in pairs[1:]])
        raise
    gate = gate_result(config, run_id, verdict, sum(kept.clean_per_class.values()), 0, kept.objects)
    partitions = [
        Partition(number, count, str(layout.clean_part(part_name(number, count)))).to_xcom()
        for number in range(count)
    ]
    return Validated(gate, partitions, kept.fingerprint, kept.gated_by_run)
