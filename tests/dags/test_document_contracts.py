"""One contract per S3 document: every document a real night wrote reads back through the
record its readers use, with the values the night's other documents agree on. The night is
the shared chain's forced night that was compared with version 1 and deployed version 2
(tests/nights.py); the gate-failure night's documents are read in
test_image_classifier_retrain.py."""

from __future__ import annotations

import json

from tasks.checkpoints import TrainingHistory
from tasks.config import PipelineConfig
from tasks.layout import model_layout, run_layout
from tasks.model_card import Deployment, ModelCard
from tasks.night_report import NightOutcome
from tasks.preprocess import PartReport
from tasks.records import DatasetRecord, GateResults, Pointer
from tasks.run_documents import (
    BlessingDocument,
    DatasetRef,
    EvaluationDocument,
    ManifestSummary,
    QuarantineList,
)
from tasks.storage import S3Uri, iter_objects
from tasks.train import TrainResult


def test_every_document_of_a_deploy_night_reads_through_its_record(champion_nights, s3):
    night = champion_nights.passed
    config = PipelineConfig(bucket=night.bucket, model_name=night.model_name)
    layout = run_layout(config, night.run_id)

    collected = ManifestSummary.read(s3, layout.manifest_summary)
    quarantine = QuarantineList.read(s3, layout.quarantine)
    assert quarantine.manifest_uri == collected.manifest_uri
    assert quarantine.rows_checked + quarantine.rows_carried == collected.objects
    for stage in ("raw", "processed"):
        gate = GateResults.read(s3, layout.validation_results(stage))
        assert gate.success and gate.failures == [] and gate.suites, stage

    reference = DatasetRef.read(s3, layout.dataset_ref)
    dataset = DatasetRecord.read(s3, reference.dataset_uri)
    assert dataset.dataset_id == reference.dataset_id
    assert sum(dataset.split_counts.values()) == collected.objects - len(quarantine.quarantined)
    parts = [
        PartReport.read(s3, S3Uri(night.bucket, item["Key"]))
        for item in iter_objects(s3, layout.root.join("processed/"))
    ]
    assert parts and all(part.failure is None for part in parts)
    assert sum(count.images for part in parts for count in part.counts) == sum(dataset.split_counts.values())

    attempt = layout.attempt(1)
    trained = TrainResult.read(s3, attempt.train_result)
    blessing = BlessingDocument.read(s3, attempt.blessing)
    evaluation = EvaluationDocument.read(s3, attempt.evaluation)
    assert blessing.blessed and blessing.training is not None
    assert blessing.training.epochs_trained == trained.epochs_trained
    assert blessing.baseline is not None and evaluation.champion is not None
    assert (evaluation.champion.version, blessing.baseline.accuracy) == (1, evaluation.champion.accuracy)
    assert (
        evaluation.test_images == dataset.split_counts["test"] and evaluation.model_uri == trained.model_uri
    )
    history = TrainingHistory.read(s3, attempt.history)
    assert (len(history.epochs), history.kept_epoch) == (trained.epochs_trained, trained.kept_epoch)
    assert history.kept("val_accuracy") == trained.final_val_accuracy

    outcome = NightOutcome.read(s3, layout.night_outcome)
    # The pointer as this night left it (a later night of the chain moved it on).
    pointer = Pointer.from_json(json.loads(night.pointer or b"null"), str(model_layout(config).pointer))
    assert (outcome.ended, outcome.version, pointer.version) == ("deployed", 2, 2)
    assert pointer.run_id == night.run_id and pointer.dataset_id == dataset.dataset_id
    version = model_layout(config).version(2)
    card = ModelCard.read(s3, version.model_card)
    claim = Deployment.read(s3, version.deployment)
    assert card.lineage() == claim.lineage() == pointer.lineage() and card.training_signature
    assert (card.champion, card.blessing.checks) == (blessing.baseline, blessing.checks)
    assert (claim.run_id, claim.version, card.metrics.accuracy) == (night.run_id, 2, evaluation.accuracy)
