"""Every answer is judged once and recorded in one metrics call, whatever the route."""

import io

import numpy as np
import pytest

from service import metrics

from conftest import BUNDLED_ARTIFACTS, DIGIT_PNG, derive


@pytest.fixture
def recorded(monkeypatch):
    """The calls to metrics.answered: (version, images answered)."""
    calls = []
    real = metrics.answered

    def answered(version, X, classes, probs, scores, verdicts):
        calls.append((version, len(classes)))
        return real(version, X, classes, probs, scores, verdicts)

    monkeypatch.setattr(metrics, "answered", answered)
    return calls


def _number_png() -> bytes:
    from PIL import Image

    digit = np.asarray(Image.open(io.BytesIO(DIGIT_PNG)))
    line = np.concatenate([digit, np.zeros((28, 8), np.uint8), digit], axis=1)
    buffer = io.BytesIO()
    Image.fromarray(255 - line).resize((line.shape[1] * 4, 112)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_each_route_that_answers_records_its_answers_in_one_metrics_call(settings, recorded):
    from service import create_app

    client = create_app(derive(settings, artifacts_dir=BUNDLED_ARTIFACTS), poll=False).test_client()
    assert client.post("/v1/predict", data=DIGIT_PNG, content_type="image/png").status_code == 200
    assert recorded[-1][1] == 1 and len(recorded) == 1
    files = [(io.BytesIO(DIGIT_PNG), f"{i}.png") for i in range(3)] + [(io.BytesIO(b"junk"), "bad.png")]
    assert client.post("/v1/predict/batch", data={"images": files}).status_code == 200
    assert len(recorded) == 2 and recorded[-1][1] == 3  # the bad image is not an answer
    X = np.zeros((5, 784), np.float32)
    r = client.post("/v2/models/mnist/infer", json={"inputs": [
        {"name": "images", "datatype": "FP32", "shape": [5, 784], "data": X.ravel().tolist()}]})
    assert r.status_code == 200 and len(recorded) == 3 and recorded[-1][1] == 5
    r = client.post("/v1/read", data=_number_png(), content_type="image/png")
    assert r.status_code == 200 and len(recorded) == 4
    assert recorded[-1][1] == len(r.json["digits"])  # the digits answered, not every candidate tried
    assert client.post("/v1/predict", data=b"junk", content_type="image/png").status_code == 400
    assert len(recorded) == 4  # a refused upload is no answer
