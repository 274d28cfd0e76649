"""The typed records that cross task boundaries and live in S3 documents.

Each is a frozen dataclass that writes itself as JSON (`to_json`) and reads itself back
(`from_json`, nested records included), so a step's output and the next step's input are one
contract: the DAG passes `to_json()` through XCom and the receiving task calls `from_json`.
Keys a record does not declare are ignored on reading (documents may grow); a key it needs
and does not find, or a value of another JSON type than its field's, is a `RecordError`
naming the record, the field and where it came from.

This module holds the records several steps share (the dataset record is read by train,
evaluate, deploy, freshness and retention); a step's own result sits beside its step.
"""

from __future__ import annotations

import json
import logging
import threading
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from functools import cache
from typing import TYPE_CHECKING, Any, Self, get_type_hints

from tasks.errors import PermanentError

if TYPE_CHECKING:  # boto3 is imported when a record is read, not when a DAG file is parsed
    from tasks.storage import S3Client, S3Uri

log = logging.getLogger(__name__)


class RecordError(PermanentError, ValueError):
    """A document that is not the record it should be (written by another version, or damaged)."""


# Python 3.11 can fail compiling in two threads at once ("AST constructor recursion depth
# mismatch", fixed in 3.12), as two deploys racing each other do: whatever compiles source at
# run time (a record's first reading of its hints, freshness's trainer-code hash) holds this.
COMPILING = threading.Lock()


@cache
def _type_hints(cls: type) -> dict[str, object]:
    with COMPILING:
        return get_type_hints(cls)


@cache
def _nested_records(cls: type) -> dict[str, tuple[type, bool]]:
    """The fields of `cls` that hold a record (or None), or a list of records, by name: (the
    record's class, whether it is a list). They are read back as records."""
    nested = {}
    for name, hint in _type_hints(cls).items():
        options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        for option in options:
            if isinstance(option, type) and issubclass(option, JsonRecord):
                nested[name] = (option, False)
            elif typing.get_origin(option) is list:
                (item,) = typing.get_args(option) or (Any,)
                if isinstance(item, type) and issubclass(item, JsonRecord):
                    nested[name] = (item, True)
    return nested


@cache
def _field_kinds(cls: type) -> dict[str, tuple[type, ...]]:
    """The JSON value types each field accepts, by name (a field typed Any accepts any)."""
    kinds: dict[str, tuple[type, ...]] = {}
    for name, hint in _type_hints(cls).items():
        options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        accepted: list[type] = []
        for option in options:
            origin = typing.get_origin(option) or option
            if option is Any:
                break
            if option is type(None):
                accepted.append(type(None))
            elif isinstance(origin, type) and issubclass(origin, JsonRecord | Mapping):
                accepted.append(Mapping)
            elif origin in (list, tuple):
                accepted += [list, tuple]
            elif origin is float:
                accepted += [float, int]
            elif isinstance(origin, type):
                accepted.append(origin)
        else:
            kinds[name] = tuple(accepted)
    return kinds


def _kind_problem(value: Any, accepted: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in accepted:
        return True  # JSON's true is not a number
    return not isinstance(value, accepted)


# A record's JSON form (`to_json`), as XCom and S3 carry it between a writer and its readers,
# who read it back with the record's `from_json`.
RecordJson = dict[str, Any]


class JsonRecord:
    """Mixin for frozen dataclasses: `to_json` and `from_json` (which checks each value's
    JSON type against the field's: a number where text belongs is a `RecordError`)."""

    def to_json(self) -> RecordJson:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_json(cls, document: Mapping[str, Any], source: str = "") -> Self:
        declared = fields(cls)  # type: ignore[arg-type]
        missing = [
            option.name
            for option in declared
            if option.name not in document and option.default is MISSING and option.default_factory is MISSING
        ]
        if missing:
            where = f"{source}: " if source else ""
            raise RecordError(f"{where}not a {cls.__name__} record: no {', '.join(missing)}")
        owner: Any = cls
        nested, kinds = _nested_records(owner), _field_kinds(owner)
        values = {}
        for option in declared:
            if option.name not in document:
                continue
            value = document[option.name]
            accepted = kinds.get(option.name)
            if accepted and _kind_problem(value, accepted):
                where = f"{source}: " if source else ""
                expected = " or ".join(sorted({kind.__name__ for kind in accepted}))
                raise RecordError(
                    f"{where}not a {cls.__name__} record: {option.name} is "
                    f"{type(value).__name__} {value!r:.40}, not {expected}"
                )
            if option.name in nested:
                record, is_list = nested[option.name]
                if is_list:
                    if not all(isinstance(item, Mapping) for item in value):
                        where = f"{source}: " if source else ""
                        raise RecordError(
                            f"{where}not a {cls.__name__} record: {option.name} holds a non-object"
                        )
                    value = [record.from_json(item, source) for item in value]  # type: ignore[attr-defined]
                elif isinstance(value, Mapping):
                    value = record.from_json(value, source)  # type: ignore[attr-defined]
            values[option.name] = value
        return cls(**values)

    @classmethod
    def read(cls, client: S3Client, uri: str | S3Uri) -> Self:
        """The record stored as JSON at `uri`."""
        from tasks.storage import S3Uri, get_json

        location = S3Uri.parse(uri) if isinstance(uri, str) else uri
        return cls.from_json(get_json(client, location), str(location))

    @classmethod
    def read_cached(cls, client: S3Client, uri: S3Uri, instead: str) -> Self | None:
        """A cache's record: None when there is none at `uri`, or it is unreadable (logged with
        what is done `instead`)."""
        from tasks.storage import get_bytes_if_exists

        body = get_bytes_if_exists(client, uri)
        if body is None:
            return None
        try:
            return cls.from_json(json.loads(body), str(uri))
        except (ValueError, RecordError) as error:
            log.warning("%s unreadable (%s): %s", uri, error, instead)
            return None


@dataclass(frozen=True)
class DatasetRecord(JsonRecord):
    """`datasets/<dataset_id>/dataset.json`: one preprocessed dataset, immutable once written."""

    dataset_id: str
    fingerprint: str  # the labelled content, independent of object names
    image_size: int
    class_names: list[str]
    split_counts: dict[str, int]
    packs: dict[str, list[str]]  # TFRecord pack URIs per split
    labels_uri: str
    preprocessing_version: str
    manifest_uri: str
    created_by_run: str
    pixel_format: str = "uint8 RGB, scaled to [0, 1] float32 on read"


@dataclass(frozen=True)
class GateResults(JsonRecord):
    """`reports/<run>/data_docs/<stage>/validation_results.json`: one data-quality gate's
    verdict, written by validate (raw) and preprocess (processed), read by the night report."""

    success: bool  # every suite passed
    failures: list[str]  # one line per failed expectation, as the task's failure says it
    suites: dict[str, Any]  # Great Expectations' summary (its JSON) of each suite's run, by suite


@dataclass(frozen=True)
class ChampionScore(JsonRecord):
    """The production model scored on a candidate's test split."""

    version: int
    model_uri: str
    accuracy: float
    macro_f1: float


@dataclass(frozen=True)
class Evaluation(JsonRecord):
    """One attempt scored on the test split (evaluation.json holds the full metrics)."""

    attempt: int
    attempt_uri: str
    model_uri: str
    evaluation_uri: str
    test_images: int
    accuracy: float
    macro_f1: float
    champion: ChampionScore | None  # None: no production model with these classes and input size
    # production.json's ETag as this attempt was judged (None: no production yet): deploy
    # promotes only if production is still that one.
    production_etag: str | None


@dataclass(frozen=True)
class Candidate(JsonRecord):
    """What a blessed attempt hands to deploy: its outputs and the data it was trained on."""

    attempt: int
    attempt_uri: str
    model_uri: str
    evaluation_uri: str
    accuracy: float
    macro_f1: float
    dataset_uri: str
    dataset_fingerprint: str
    production_etag: str | None  # production.json as the attempt was judged (see Evaluation)

    @classmethod
    def accepted(cls, evaluation: Evaluation, dataset_uri: str, dataset_fingerprint: str) -> Candidate:
        return cls(
            attempt=evaluation.attempt,
            attempt_uri=evaluation.attempt_uri,
            model_uri=evaluation.model_uri,
            evaluation_uri=evaluation.evaluation_uri,
            accuracy=evaluation.accuracy,
            macro_f1=evaluation.macro_f1,
            dataset_uri=dataset_uri,
            dataset_fingerprint=dataset_fingerprint,
            production_etag=evaluation.production_etag,
        )


@dataclass(frozen=True)
class Publication(JsonRecord):
    """A published version, as deploy reports it."""

    model_name: str
    version: int
    version_uri: str
    pointer_uri: str
    accuracy: float


@dataclass(frozen=True, kw_only=True)
class Lineage(JsonRecord):
    """Where a model version came from, as freshness and warm starts compare it with a night.
    The pointer, the model card and the version's deployment.json carry these fields at their
    top level (versions published before warm starts lack them: the defaults)."""

    # What the model was trained from and with (tasks/freshness.py): equal means nothing new.
    training_signature: str | None = None
    # What a warm start needs to match (tasks/warm_start.py), and where this version came from:
    # the version it continued from (None: trained from scratch) and how many warm nights deep.
    trainer_code: str | None = None
    settings_digest: str | None = None
    parent_version: int | None = None
    warm_generation: int = 0

    def lineage(self) -> Lineage:
        """Just the lineage of a record that carries one."""
        return Lineage(**{name: getattr(self, name) for name in Lineage.__dataclass_fields__})


@dataclass(frozen=True)
class Pointer(Lineage):
    """`models/<name>/production.json`: the version consumers load, derived from its model card."""

    model_name: str
    version: int
    version_uri: str
    model_uri: str
    evaluation_uri: str
    serving_uri: str
    class_names: list[str]
    image_size: int
    metrics: dict[str, float]  # accuracy and macro_f1 on the version's test split
    run_id: str
    attempt: int
    dataset_fingerprint: str
    published_at: str
    dataset_id: str | None = None
