"""What the README promises about a second night, read from the shared chain of nights
(tests/nights.py: `champion_nights`): the candidate is compared with the real production
model (the champion) on the same test split, a regression is refused (and with
`fail_on_give_up` false the run still ends green), a comparable candidate is deployed, and a
champion with another input size is not compared with. Also what the first deploy hands to
consumers: the Asset event's extra and a SavedModel whose `serving_default` signature
predicts as the Keras model does."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tasks.config import PipelineConfig
from tasks.demo.data import DIGIT_CLASS_NAMES
from tasks.layout import run_layout
from tasks.registry import Registry
from tasks.storage import S3Uri, download_tree, get_json

pytestmark = pytest.mark.slow


def attempt_file(client, night, name: str) -> dict:
    attempt = run_layout(PipelineConfig(bucket=night.bucket), night.run_id).attempt(1)
    return get_json(client, attempt.file(name))


def asset_event_extra(run_id: str) -> dict:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        (event,) = session.query(AssetEvent).filter(AssetEvent.source_run_id == run_id).all()
        return dict(event.extra)


def serving_predictions(client, version_uri: str, version: int, images: np.ndarray, scratch) -> np.ndarray:
    """Loads the exported SavedModel as TF Serving would and calls `serving_default`."""
    import tensorflow as tf

    download_tree(client, S3Uri.parse(version_uri).join("serving", str(version)), scratch / "serving")
    loaded = tf.saved_model.load(str(scratch / "serving"))
    serve = loaded.signatures["serving_default"]
    (outputs,) = serve(tf.constant(images)).values()
    return outputs.numpy()


def test_the_first_deploy_tells_consumers_and_serves_as_keras_predicts(champion_nights, s3, tmp_path):
    first = champion_nights.first
    registry = Registry(s3, first.bucket, first.model_name)
    assert attempt_file(s3, first, "evaluation.json")["champion"] is None
    pointer = json.loads(first.pointer or b"null")
    assert asset_event_extra(first.run_id) == {
        "version": 1,
        "version_uri": pointer["version_uri"],
        "accuracy": pointer["metrics"]["accuracy"],
        "bucket": first.bucket,
    }
    model, _ = registry.load(1)
    images = np.random.default_rng(0).uniform(0, 1, (5, 32, 32, 3)).astype("float32")
    served = serving_predictions(s3, pointer["version_uri"], 1, images, tmp_path)
    assert served.shape == (5, len(DIGIT_CLASS_NAMES))
    np.testing.assert_allclose(served, model.predict(images, verbose=0), atol=1e-5)


def test_a_regression_against_the_champion_is_refused_and_the_run_stays_green(champion_nights, s3):
    # One epoch scores far below three: a regression against v1, refused; the run ends green.
    refused = champion_nights.refused
    assert refused.state == "success", refused.states
    assert refused.states["attempt_1.give_up"] == "success" and refused.states["deploy"] == "skipped"
    evaluation = attempt_file(s3, refused, "evaluation.json")
    assert evaluation["champion"]["version"] == 1
    blessing = attempt_file(s3, refused, "blessing.json")
    assert not blessing["blessed"] and "champion minus margin" in blessing["reason"], blessing["reason"]
    assert json.loads(refused.pointer or b"null")["version"] == 1
    # The night report names the champion the attempt was compared with.
    champion = f"<td>champion</td><td>v1: {evaluation['champion']['accuracy']:.4f}</td>"
    assert champion in refused.report(s3).decode()


def test_a_candidate_within_the_margin_is_deployed_over_a_real_comparison(champion_nights, s3):
    passed = champion_nights.passed
    assert passed.state == "success" and passed.states["deploy"] == "success", passed.states
    blessing = attempt_file(s3, passed, "blessing.json")
    assert blessing["blessed"] and blessing["baseline"]["version"] == 1, blessing
    assert json.loads(passed.pointer or b"null")["version"] == 2


def test_a_champion_of_another_input_size_is_not_compared_with(champion_nights, s3):
    other_size = champion_nights.other_size
    assert other_size.state == "success" and other_size.states["deploy"] == "success", other_size.states
    assert attempt_file(s3, other_size, "evaluation.json")["champion"] is None
    blessing = attempt_file(s3, other_size, "blessing.json")
    assert "no champion" in blessing["reason"], blessing["reason"]
    assert "production v2 has other classes or input size" in other_size.log
    pointer = json.loads(other_size.pointer or b"null")
    assert (pointer["version"], pointer["image_size"]) == (3, 24)
