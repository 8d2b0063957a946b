"""digit_score and the verdict through the API: from the artifact, overridden by settings, counted,
and what the bundled model says to real digits and to things that are not digits."""

import io
import re
import math

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from model.ood import CONFIDENCE_THRESHOLDS
from service import create_app
from service.schemas import BatchResponse, ModelsResponse, PredictionResponse
from service.settings import Settings

from conftest import BUNDLED_ARTIFACTS, DIGIT_PNG, RESOURCES, derive, publish_constant

# A constant model (class 3 at 0.91) whose digit score is sigmoid(2 * msp - 1) = sigmoid(0.82) = 0.694.
SCORED = {"method": "msp", "platt": [2.0, -1.0],
          "thresholds": {"not_a_digit_below": 0.5, "uncertain_below": 0.95}}
SCORE = 1 / (1 + math.exp(-(2 * 0.91 - 1)))


@pytest.fixture
def scored_settings(tmp_path):
    root = tmp_path / "artifacts"
    publish_constant(root, hot=3, ood=SCORED)
    return Settings(artifacts_dir=root, access_log=False)


def predict(settings, data=DIGIT_PNG):
    client = create_app(settings, poll=False).test_client()
    r = client.post("/v1/predict", data=data, content_type="image/png")
    assert r.status_code == 200, r.json
    PredictionResponse.model_validate(r.json)
    return r.json, client


def test_a_model_without_a_score_reports_its_confidence_and_never_rejects(client):
    body = client.post("/v1/predict", data=DIGIT_PNG, content_type="image/png").json
    assert body["digit_score"] == pytest.approx(0.91, rel=1e-5) and body["verdict"] == "digit"
    assert body["runner_up"]["probability"] == pytest.approx(0.01, rel=1e-4)
    info = client.get("/v1/models").json["digit_score"]
    assert info["method"] == "confidence" and info["model_thresholds"] is None
    assert info["not_a_digit_below"] == CONFIDENCE_THRESHOLDS.not_a_digit_below


def test_the_artifacts_score_and_thresholds_decide_the_verdict(scored_settings):
    body, client = predict(scored_settings)
    assert body["digit_score"] == pytest.approx(SCORE, rel=1e-5)
    assert body["verdict"] == "uncertain"  # a digit (0.694 >= 0.5), but 0.91 < 0.95
    assert body["runner_up"]["label"] != body["label"]
    models = ModelsResponse.model_validate(client.get("/v1/models").json).model_dump()
    assert models["digit_score"] == {"method": "msp", "not_a_digit_below": 0.5, "uncertain_below": 0.95,
                                     "model_thresholds": SCORED["thresholds"]}


@pytest.mark.parametrize("changes, verdict", [
    ({"not_a_digit_below": 0.7}, "not_a_digit"),
    ({"uncertain_below": 0.9}, "digit"),
    ({"not_a_digit_below": 0.0, "uncertain_below": 0.0}, "digit"),
])
def test_settings_override_the_models_thresholds(scored_settings, changes, verdict):
    body, client = predict(derive(scored_settings, **changes))
    assert body["verdict"] == verdict
    assert body["digit_score"] == pytest.approx(SCORE, rel=1e-5)  # the score itself never changes
    info = client.get("/v1/models").json["digit_score"]
    assert {k: info[k] for k in changes} == changes and info["model_thresholds"] == SCORED["thresholds"]


def test_thresholds_out_of_range_are_refused_at_startup():
    for bad in ({"NOT_A_DIGIT_BELOW": "1.5"}, {"UNCERTAIN_BELOW": "-0.1"}, {"UNCERTAIN_BELOW": "often"}):
        with pytest.raises(ValueError):
            Settings(**{k.lower(): v for k, v in bad.items()})


def verdict_count(client, verdict: str) -> float:
    """Return the /metrics count of answers with ``verdict``, over versions and classes (the
    registry is per process)."""
    pattern = re.compile(r'^mnist_answers_total\{[^}]*verdict="' + verdict + r'"[^}]*\} (\S+)$', re.M)
    return sum(float(v) for v in pattern.findall(client.get("/metrics").get_data(as_text=True)))


def test_batch_items_and_metrics_carry_verdicts(scored_settings):
    client = create_app(derive(scored_settings, not_a_digit_below=0.7), poll=False).test_client()
    before = verdict_count(client, "not_a_digit")
    files = [(io.BytesIO(DIGIT_PNG), f"d{i}.png") for i in range(3)] + [(io.BytesIO(b"junk"), "bad.png")]
    r = client.post("/v1/predict/batch", data={"images": files})
    body = BatchResponse.model_validate(r.json).model_dump()
    assert [p.get("verdict") for p in body["predictions"]] == ["not_a_digit"] * 3 + [None]
    assert verdict_count(client, "not_a_digit") == before + 3


def test_v2_returns_and_lists_the_digit_score(scored_settings):
    client = create_app(scored_settings, poll=False).test_client()
    meta = client.get("/v2/models/mnist").json
    assert {"name": "digit_score", "datatype": "FP32", "shape": [-1]} in meta["outputs"]
    X = np.zeros((2, 784), np.float32)
    r = client.post("/v2/models/mnist/infer", json={
        "inputs": [{"name": "images", "datatype": "FP32", "shape": [2, 784], "data": X.ravel().tolist()}],
        "outputs": [{"name": "digit_score"}]})
    assert r.status_code == 200, r.json
    (out,) = r.json["outputs"]
    assert out["name"] == "digit_score" and out["shape"] == [2]
    np.testing.assert_allclose(out["data"], [SCORE] * 2, rtol=1e-5)


# -- the bundled model on real digits and on things that are not digits -----------------


def drawing(draw_fn, size=280, width=18) -> bytes:
    """A canvas-like PNG: dark strokes on white, as the page sends."""
    img = Image.new("L", (size, size), 255)
    draw_fn(ImageDraw.Draw(img), width)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def letter(text):
    def draw(d, width):
        font = ImageFont.truetype("DejaVuSans.ttf", 200)
        d.text((50, 20), text, fill=0, font=font)
    return draw


NOT_DIGITS = {
    "A": letter("A"),
    "X": lambda d, w: (d.line([60, 60, 220, 220], fill=0, width=w), d.line([220, 60, 60, 220], fill=0, width=w)),
    "smiley": lambda d, w: (d.ellipse([40, 40, 240, 240], outline=0, width=w),
                            d.ellipse([95, 100, 115, 120], fill=0), d.ellipse([165, 100, 185, 120], fill=0),
                            d.arc([90, 110, 190, 200], 20, 160, fill=0, width=w)),
    "star": lambda d, w: d.line([(140 + 100 * math.cos(math.radians(-90 + 144 * k)),
                                  140 + 100 * math.sin(math.radians(-90 + 144 * k))) for k in range(6)],
                                fill=0, width=w, joint="curve"),
}


@pytest.fixture(scope="module")
def bundled():
    return create_app(Settings(artifacts_dir=BUNDLED_ARTIFACTS, access_log=False), poll=False).test_client()


@pytest.mark.parametrize("name", sorted(NOT_DIGITS))
def test_the_bundled_model_says_not_a_digit_to_drawings_that_are_not_digits(bundled, name):
    r = bundled.post("/v1/predict", data=drawing(NOT_DIGITS[name]), content_type="image/png")
    assert r.status_code == 200 and r.json["verdict"] == "not_a_digit", (name, r.json)
    assert len(r.json["probabilities"]) == 10  # still answered in full


def test_the_bundled_model_says_digit_to_mnist_digits(bundled):
    for path in sorted(RESOURCES.glob("mnist_test_*_label*.png")):
        body = bundled.post("/v1/predict", data=path.read_bytes(), content_type="image/png").json
        assert body["verdict"] == "digit" and body["label"] == path.stem.rsplit("label", 1)[1], (path.name, body)
        assert body["digit_score"] > 0.5


def test_a_blank_image_is_still_a_422(bundled):
    white = io.BytesIO()
    Image.new("L", (100, 100), 255).save(white, format="PNG")
    r = bundled.post("/v1/predict", data=white.getvalue(), content_type="image/png")
    assert r.status_code == 422 and r.json["code"] == "blank_image"
