"""Retention: older runs' intermediates go; model versions and what kept runs use stay."""

from __future__ import annotations

from images_factory import digit_like, encode
from steps import collect_and_build

from tasks.config import PipelineConfig
from tasks.examples import PREPROCESSING_VERSION, read_index
from tasks.layout import ModelLayout, example_store, run_layout
from tasks.model_card import CardBlessing, CardDataset, CardMetrics, CardTraining, Deployment, ModelCard
from tasks.records import DatasetRecord
from tasks.retention import remove_old_runs
from tasks.storage import S3Uri, exists, get_json, iter_objects, put_bytes, put_json


def version_claim(run_id: str) -> Deployment:
    return Deployment(run_id, 1, "fp", f"s3://b/runs/{run_id}/attempt-1", 0.9, 0.9, version=1)


def version_card(run_id: str, s3, dataset_uri: str) -> ModelCard:
    """A version's card as deploy builds it from its documents (their figures do not matter
    here: retention reads the dataset the version was trained on)."""
    dataset = DatasetRecord.read(s3, dataset_uri)
    scores = {"accuracy": 0.9, "macro_precision": 0.9, "macro_recall": 0.9, "macro_f1": 0.9}
    return ModelCard(
        model_name="kept-model",
        version=1,
        run_id=run_id,
        attempt=1,
        code_version="0+test",
        dataset=CardDataset(
            dataset.fingerprint,
            dataset.manifest_uri,
            dataset.split_counts,
            dataset.class_names,
            dataset.image_size,
            dataset.dataset_id,
        ),
        params={},
        training=CardTraining(1, 1, 0.9, 1.0, 100.0, 0, {}, "reference recipe"),
        metrics=CardMetrics(**scores, macro_roc_auc_ovr=None, test_images=1, per_class={}),
        blessing=CardBlessing(True, "meets every threshold", []),
        champion=None,
    )


def keys(s3, bucket: str, prefix: str) -> set[str]:
    return {item["Key"] for item in iter_objects(s3, S3Uri(bucket, prefix))}


def test_old_runs_go_and_what_versions_and_kept_runs_use_stays(s3, small_digits):
    config = PipelineConfig(bucket=small_digits, image_size=32, split_tolerance=0.2)
    results = {}
    for night in range(1, 6):
        # Each night adds an image, so each refers to a dataset of its own.
        put_bytes(s3, S3Uri(small_digits, f"raw/four/night-{night}.png"), encode(digit_like(800 + night)))
        if night == 3:  # night 2's image is withdrawn: only night 2's dataset holds it
            s3.delete_object(Bucket=small_digits, Key="raw/four/night-2.png")
        results[night] = collect_and_build(s3, config, f"night-{night}")
    # Version 1 of a model came from night 1: its run and dataset are its lineage.
    version = ModelLayout.of(small_digits, "kept-model").version(1)
    put_json(s3, version.deployment, version_claim("night-1").to_json())
    put_json(s3, version.model_card, version_card("night-1", s3, results[1].dataset_uri).to_json())
    put_bytes(s3, version.marker, b"")
    models_before = keys(s3, small_digits, "models/")

    report = remove_old_runs(s3, small_digits, current_run_id="night-5", keep_runs=2)

    assert (report.runs_kept, report.runs_removed, report.datasets_removed) == (3, 2, 2)
    assert report.packs_removed == 1  # the pack holding night 2's image alone
    for night, kept in {1: True, 2: False, 3: False, 4: True, 5: True}.items():
        run = run_layout(config, f"night-{night}")
        assert exists(s3, run.manifest) is kept, night
        assert bool(keys(s3, small_digits, run.reports.key + "/")) is kept, night
        assert exists(s3, S3Uri.parse(results[night].dataset_uri)) is kept, night
    assert keys(s3, small_digits, "models/") == models_before
    assert len(keys(s3, small_digits, "raw/")) == 204
    # Every pack a kept dataset refers to is there, and the index lists only packs that exist.
    store = example_store(small_digits, 32, PREPROCESSING_VERSION)
    for night in (1, 4, 5):
        dataset = get_json(s3, S3Uri.parse(results[night].dataset_uri))
        for uris in dataset["packs"].values():
            assert all(exists(s3, S3Uri.parse(uri)) for uri in uris)
    packs_left = {
        key.rsplit("/", 1)[-1].removesuffix(".tfrecord") for key in keys(s3, small_digits, "examples/")
    }
    assert set(read_index(s3, store)["pack"]) <= packs_left

    # The next night still builds its dataset, decoding again what left with removed packs.
    again = collect_and_build(s3, config, "night-6")
    assert again.dataset_id == results[5].dataset_id
