"""The records that cross task boundaries: JSON round trips, nested records, and documents that
are not the record they should be."""

from __future__ import annotations

import json

import pytest

from tasks.errors import PermanentError
from tasks.records import Candidate, ChampionScore, DatasetRecord, Evaluation, RecordError
from tasks.storage import S3Uri, put_json

EVALUATION = Evaluation(
    attempt=2,
    attempt_uri="s3://b/runs/r/attempt-2",
    model_uri="s3://b/runs/r/attempt-2/model.keras",
    evaluation_uri="s3://b/runs/r/attempt-2/evaluation.json",
    test_images=180,
    accuracy=0.95,
    macro_f1=0.94,
    champion=ChampionScore(
        version=3, model_uri="s3://b/models/m/3/model.keras", accuracy=0.93, macro_f1=0.92
    ),
    production_etag='"3c1f"',
)


def test_a_record_survives_json_as_xcom_carries_it():
    carried = json.loads(json.dumps(EVALUATION.to_json()))
    assert Evaluation.from_json(carried) == EVALUATION
    assert isinstance(Evaluation.from_json(carried).champion, ChampionScore)
    assert Evaluation.from_json({**carried, "champion": None}).champion is None


def test_keys_a_record_does_not_declare_are_ignored():
    assert Evaluation.from_json({**EVALUATION.to_json(), "added_later": 1}) == EVALUATION


def test_a_candidate_is_the_evaluation_and_the_data_it_was_trained_on():
    candidate = Candidate.accepted(EVALUATION, "s3://b/datasets/d/dataset.json", "9f1c")
    assert (candidate.attempt, candidate.accuracy, candidate.dataset_fingerprint) == (2, 0.95, "9f1c")
    assert Candidate.from_json(candidate.to_json()) == candidate


def test_a_document_that_is_not_the_record_names_what_it_lacks(s3, bucket):
    uri = S3Uri(bucket, "datasets/old/dataset.json")
    put_json(s3, uri, {"dataset_id": "old", "fingerprint": "ab"})
    with pytest.raises(RecordError) as raised:
        DatasetRecord.read(s3, uri)
    assert str(raised.value).startswith(f"{uri}: not a DatasetRecord record: no image_size, class_names")
    assert isinstance(raised.value, PermanentError)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("test_images", "180", "test_images is str '180', not int"),
        ("test_images", True, "test_images is bool True, not int"),
        ("accuracy", "0.95", "accuracy is str '0.95', not float or int"),
        ("attempt_uri", 7, "attempt_uri is int 7, not str"),
        ("champion", [1], "champion is list [1], not Mapping or NoneType"),
    ],
)
def test_a_value_of_another_json_type_names_the_document_and_the_field(s3, bucket, field, value, message):
    uri = S3Uri(bucket, "runs/r/attempt-2/evaluation-record.json")
    put_json(s3, uri, {**EVALUATION.to_json(), field: value})
    with pytest.raises(RecordError) as raised:
        Evaluation.read(s3, uri)
    assert str(raised.value) == f"{uri}: not a Evaluation record: {message}"


def test_a_whole_number_is_a_float_and_null_an_optional_value():
    read = Evaluation.from_json({**EVALUATION.to_json(), "accuracy": 1, "champion": None})
    assert (read.accuracy, read.champion) == (1, None)


def test_a_list_of_records_reads_back_as_records():
    from tasks.run_documents import QuarantinedObject, QuarantineList

    listed = QuarantineList(
        manifest_uri="s3://b/runs/r/manifest.csv",
        quarantined=[QuarantinedObject("raw/one/bad.png", ["not decodable: truncated"])],
        duplicates_dropped=[],
        rows_checked=3,
        rows_carried=0,
        gated_by_run="r",
    )
    assert QuarantineList.from_json(json.loads(json.dumps(listed.to_json()))) == listed
    with pytest.raises(RecordError, match="quarantined holds a non-object"):
        QuarantineList.from_json({**listed.to_json(), "quarantined": ["raw/one/bad.png"]})
