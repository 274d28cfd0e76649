"""What the README promises about a second night, through `dag.test()`: the candidate is
compared with the real production model (the champion) on the same test split, a regression
is refused (and with `fail_on_give_up` false the run still ends green), a comparable candidate
is deployed, and a champion with another input size is not compared with. Also what the first
deploy hands to consumers: the Asset event's extra and a SavedModel whose `serving_default`
signature predicts as the Keras model does."""

from __future__ import annotations

import uuid
from dataclasses import asdict

import numpy as np
import pytest

from tasks.config import PipelineConfig
from tasks.demo.data import DIGIT_CLASS_NAMES, DIGIT_PARAMS
from tasks.layout import run_layout
from tasks.recipe import REFERENCE_RECIPE
from tasks.registry import Registry
from tasks.storage import S3Uri, download_tree, get_json

pytestmark = pytest.mark.slow

CONF = {
    "image_size": 32,
    "epochs": 3,
    "batch_size": 32,
    "min_images": 100,
    "min_test_accuracy": 0.5,
    "max_attempts": 1,
    **DIGIT_PARAMS,
}


def attempt_file(client, bucket: str, run_id: str, name: str) -> dict:
    attempt = run_layout(PipelineConfig(bucket=bucket), run_id).attempt(1)
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


def test_second_nights_against_a_real_champion(run_retrain, s3, digits_bucket, tmp_path, caplog):
    model_name = f"champion-{uuid.uuid4().hex[:6]}"
    registry = Registry(s3, digits_bucket, model_name)
    conf = {**CONF, "bucket": digits_bucket, "model_name": model_name}

    first, states = run_retrain(**conf)
    assert first.state == "success" and states["deploy"] == "success", states
    assert attempt_file(s3, digits_bucket, first.run_id, "evaluation.json")["champion"] is None
    pointer = registry.pointer()
    assert asset_event_extra(first.run_id) == {
        "version": 1,
        "version_uri": pointer.version_uri,
        "accuracy": pointer.metrics["accuracy"],
        "bucket": digits_bucket,
    }
    model, _ = registry.load()
    images = np.random.default_rng(0).uniform(0, 1, (5, 32, 32, 3)).astype("float32")
    served = serving_predictions(s3, pointer.version_uri, 1, images, tmp_path)
    assert served.shape == (5, len(DIGIT_CLASS_NAMES))
    np.testing.assert_allclose(served, model.predict(images, verbose=0), atol=1e-5)

    # One epoch scores far below three: a regression against v1, refused; the run ends green.
    refused, states = run_retrain(
        **{**conf, "epochs": 1, "force_retrain": True, "max_regression": 0.0, "fail_on_give_up": False}
    )
    assert refused.state == "success", states
    assert states["attempt_1.give_up"] == "success" and states["deploy"] == "skipped"
    evaluation = attempt_file(s3, digits_bucket, refused.run_id, "evaluation.json")
    assert evaluation["champion"]["version"] == 1
    blessing = attempt_file(s3, digits_bucket, refused.run_id, "blessing.json")
    assert not blessing["blessed"] and "champion minus margin" in blessing["reason"], blessing["reason"]
    assert registry.pointer().version == 1

    # As long a training as v1's, within a 0.2 margin of it: deployed as v2 over a real comparison.
    passed, states = run_retrain(**{**conf, "force_retrain": True, "max_regression": 0.2})
    assert passed.state == "success" and states["deploy"] == "success", states
    blessing = attempt_file(s3, digits_bucket, passed.run_id, "blessing.json")
    assert blessing["blessed"] and blessing["baseline"]["version"] == 1, blessing
    assert registry.pointer().version == 2

    # Another input size: the champion cannot score these images, so only the thresholds apply.
    # The reference recipe passes 0.5 in 2 epochs at 24 px; augmentation needs more epochs.
    other_size, states = run_retrain(
        **{**conf, **asdict(REFERENCE_RECIPE), "image_size": 24, "epochs": 2, "max_regression": 0.0}
    )
    assert other_size.state == "success" and states["deploy"] == "success", states
    assert attempt_file(s3, digits_bucket, other_size.run_id, "evaluation.json")["champion"] is None
    blessing = attempt_file(s3, digits_bucket, other_size.run_id, "blessing.json")
    assert "no champion" in blessing["reason"], blessing["reason"]
    assert "production v2 has other classes or input size" in caplog.text
    assert (registry.pointer().version, registry.pointer().image_size) == (3, 24)
