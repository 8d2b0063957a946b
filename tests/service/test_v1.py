"""The /v1 API through Flask's test client, with constant fake models."""

import base64
import io
import json
import zlib
import struct

import numpy as np
import pytest
from PIL import Image

from model.store import ARTIFACT_FILE
from service import create_app
from service.schemas import BatchResponse, ErrorResponse, ModelsResponse, PredictionResponse

from conftest import DIGIT_PNG, RESOURCES, derive, one_hot_probs, publish_constant

TOKEN = "test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def png_bytes(array: np.ndarray, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (never decoded)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) \
        + chunk(b"IEND", b"")


def assert_prediction(body: dict, hot: int = 3, version: str = "1"):
    PredictionResponse.model_validate(body)
    assert body["predicted_class"] == hot and body["label"] == str(hot)
    assert body["model"] == {"name": "mnist", "version": version}
    assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(body["probabilities"], one_hot_probs(10, hot), rtol=1e-5)
    assert body["confidence"] == max(body["probabilities"])


def test_predict_multipart(client):
    r = client.post("/v1/predict", data={"image": (io.BytesIO(DIGIT_PNG), "seven.png")})
    assert r.status_code == 200, r.json
    assert_prediction(r.json)
    assert r.headers["X-Model-Version"] == "1"


def test_predict_raw_body(client):
    r = client.post("/v1/predict", data=DIGIT_PNG, content_type="image/png")
    assert r.status_code == 200
    assert_prediction(r.json)


@pytest.mark.parametrize("prefix", ["", "data:image/png;base64,"])
def test_predict_json_base64(client, prefix):
    encoded = prefix + base64.b64encode(DIGIT_PNG).decode()
    r = client.post("/v1/predict", json={"image": encoded})
    assert r.status_code == 200
    assert_prediction(r.json)


def test_predict_can_return_the_input_image(client):
    r = client.post("/v1/predict?include=input", data=DIGIT_PNG, content_type="image/png")
    url = r.json["input_image"]
    assert url.startswith("data:image/png;base64,")
    seen = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert seen.size == (28, 28) and seen.mode == "L"
    assert "input_image" not in client.post("/v1/predict", data=DIGIT_PNG,
                                            content_type="image/png").json


def test_request_id_is_echoed_or_created(client):
    r = client.post("/v1/predict", data=DIGIT_PNG, content_type="image/png",
                    headers={"X-Request-ID": "abc-123"})
    assert r.headers["X-Request-ID"] == "abc-123"
    r = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert r.headers["X-Request-ID"] != "bad id with spaces" and len(r.headers["X-Request-ID"]) == 32


def test_api_security_headers(client):
    r = client.get("/v1/models")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "Access-Control-Allow-Origin" not in r.headers  # CORS is off by default


def _multipart(field, payload, name="x.png"):
    return {field: (io.BytesIO(payload), name)}


def _raw_multipart(field, payload, name="x.png"):
    """A multipart body as curl and browsers send it (Werkzeug's test encoder leaves out the line
    break before the closing boundary when a file is empty)."""
    body = (b"--b0undary\r\nContent-Disposition: form-data; name=\"" + field.encode() + b"\"; filename=\""
            + name.encode() + b"\"\r\nContent-Type: image/png\r\n\r\n" + payload + b"\r\n--b0undary--\r\n")
    return dict(data=body, content_type="multipart/form-data; boundary=b0undary")


BAD_UPLOADS = [
    # (id, kwargs for client.post, status, code)
    ("empty raw body", dict(data=b"", content_type="image/png"), 400, "invalid_image"),
    ("not an image", dict(data=(RESOURCES / "not_an_image.txt").read_bytes(), content_type="image/png"),
     400, "invalid_image"),
    ("truncated png", dict(data=DIGIT_PNG[:60], content_type="image/png"), 400, "invalid_image"),
    ("wrong field", dict(data=_multipart("file", DIGIT_PNG)), 400, "bad_request"),
    ("empty multipart file", _raw_multipart("image", b""), 400, "invalid_image"),
    ("malformed multipart body", dict(data=b"--b0undary\r\nnot a header\r\n",
                                      content_type="multipart/form-data; boundary=b0undary"), 400, "bad_request"),
    ("multipart without a boundary", dict(data=b"x", content_type="multipart/form-data"), 400, "bad_request"),
    ("text/plain", dict(data=b"hello", content_type="text/plain"), 415, "unsupported_media_type"),
    ("no content type", dict(data=b"hello"), 400, "bad_request"),
    ("json without image", dict(json={"picture": "x"}), 400, "bad_request"),
    ("json not object", dict(json=[1, 2]), 400, "bad_request"),
    ("invalid json", dict(data=b"{nope", content_type="application/json"), 400, "bad_request"),
    ("bad base64", dict(json={"image": "***"}), 400, "bad_request"),
    ("base64 not string", dict(json={"image": 12}), 400, "bad_request"),
    ("decompression bomb", dict(data=bomb_png(100_000, 100_000), content_type="image/png"),
     413, "image_too_large"),
    ("blank white", dict(data=png_bytes(np.full((50, 50), 255, np.uint8)), content_type="image/png"),
     422, "blank_image"),
    ("blank black", dict(data=png_bytes(np.zeros((28, 28), np.uint8)), content_type="image/png"),
     422, "blank_image"),
    ("svg is not accepted", dict(data=b"<svg xmlns='http://www.w3.org/2000/svg'/>",
                                 content_type="image/svg+xml"), 400, "invalid_image"),
]


@pytest.mark.parametrize("case", BAD_UPLOADS, ids=[c[0] for c in BAD_UPLOADS])
def test_bad_uploads_get_clear_json_errors(client, case):
    _, kwargs, status, code = case
    r = client.post("/v1/predict", **kwargs)
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.is_json
    ErrorResponse.model_validate(r.json)
    assert r.json["code"] == code and r.json["status"] == status and r.json["error"]
    assert r.json["request_id"] == r.headers["X-Request-ID"]


def test_too_large_body_is_refused_before_reading(settings, artifacts_dir):
    app = create_app(derive(settings, max_upload_bytes=2048), poll=False)
    r = app.test_client().post("/v1/predict", data=b"\x89PNG" + bytes(5000), content_type="image/png")
    assert r.status_code == 413 and r.json["code"] == "payload_too_large"


def test_pixel_limit_is_configurable(settings):
    app = create_app(derive(settings, max_image_pixels=1000), poll=False)
    r = app.test_client().post("/v1/predict", data=png_bytes(np.zeros((40, 40), np.uint8)),
                               content_type="image/png")
    assert r.status_code == 413 and "1,600" in r.json["error"]


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_wrong_method_is_json_405(client, method):
    r = getattr(client, method)("/v1/predict")
    assert r.status_code == 405 and r.json["code"] == "method_not_allowed"
    assert "POST" in r.headers["Allow"]


def test_unknown_route_is_json_404(client):
    r = client.get("/v1/nothing")
    assert r.status_code == 404 and r.json["code"] == "not_found"


# -- batch --------------------------------------------------------------------------


def test_batch_keeps_order_and_isolates_failures(client):
    files = [(io.BytesIO(DIGIT_PNG), "a.png"), (io.BytesIO(b"garbage"), "b.png"),
             (io.BytesIO(png_bytes(np.zeros((28, 28), np.uint8))), "blank.png"),
             (io.BytesIO(DIGIT_PNG), "d.png")]
    r = client.post("/v1/predict/batch", data={"images": files})
    assert r.status_code == 200
    BatchResponse.model_validate(r.json)
    items = r.json["predictions"]
    assert len(items) == 4
    assert_prediction(items[0])
    assert items[1]["index"] == 1 and items[1]["filename"] == "b.png" and items[1]["status"] == 400
    assert items[2]["code"] == "blank_image" and items[2]["status"] == 422
    assert_prediction(items[3])
    assert r.json["model"] == {"name": "mnist", "version": "1"}


def test_batch_limits_and_errors(settings):
    app = create_app(derive(settings, max_batch_images=3), poll=False)
    client = app.test_client()
    files = [(io.BytesIO(DIGIT_PNG), f"{i}.png") for i in range(4)]
    r = client.post("/v1/predict/batch", data={"images": files})
    assert r.status_code == 413 and "limit is 3" in r.json["error"]
    r = client.post("/v1/predict/batch", data={"image": (io.BytesIO(DIGIT_PNG), "x.png")})
    assert r.status_code == 400 and "images" in r.json["error"]
    r = client.post("/v1/predict/batch", data=DIGIT_PNG, content_type="image/png")
    assert r.status_code == 415


# -- models and pinning -------------------------------------------------------------


def test_models_lists_active_metadata_and_versions(client, artifacts_dir):
    publish_constant(artifacts_dir, hot=5)
    r = client.get("/v1/models")
    body = ModelsResponse.model_validate(r.json)
    assert (body.name, body.version, body.pinned) == ("mnist", "1", None)  # no refresh yet
    assert [v.version for v in body.versions] == ["2", "1"]
    assert body.versions[1].active and body.versions[0].test_accuracy == 0.9
    assert body.metadata["architecture"]["input_shape"] == [784]
    assert [layer["kind"] for layer in body.metadata["architecture"]["layers"]] == ["dense", "relu", "dense"]
    assert body.architecture == "MLP: dense4 relu dense10"
    assert body.metrics["test_accuracy"] == 0.9
    assert body.last_load_error is None


def test_pin_requires_a_valid_token(client):
    assert client.put("/v1/models/active", json={"version": "1"}).status_code == 401
    r = client.put("/v1/models/active", json={"version": "1"},
                   headers={"Authorization": "Bearer wrong-token-wrong-token"})
    assert r.status_code == 401 and r.json["code"] == "unauthorized"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = client.put("/v1/models/active", json={"version": "1"}, headers={"Authorization": TOKEN})
    assert r.status_code == 401  # no "Bearer" scheme


def test_management_is_disabled_without_admin_token(settings):
    app = create_app(derive(settings, admin_token=None), poll=False)
    r = app.test_client().put("/v1/models/active", json={"version": "1"}, headers=AUTH)
    assert r.status_code == 403 and "ADMIN_TOKEN" in r.json["error"]


def test_pin_rollback_roll_forward_and_latest(client, app, artifacts_dir):
    publish_constant(artifacts_dir, hot=5)  # version 2
    registry = app.extensions["registry"]
    registry.refresh()
    predict = lambda: client.post("/v1/predict", data=DIGIT_PNG, content_type="image/png").json
    assert predict()["model"]["version"] == "2"
    r = client.put("/v1/models/active", json={"version": "1"}, headers=AUTH)
    assert r.status_code == 200 and r.json == {"name": "mnist", "version": "1", "pinned": "1"}
    assert_prediction(predict(), hot=3, version="1")
    publish_constant(artifacts_dir, hot=7)  # version 3 appears, but the pin holds
    registry.refresh()
    assert predict()["model"]["version"] == "1"
    assert (artifacts_dir / "mnist" / "pin.json").is_file()
    r = client.put("/v1/models/active", json={"version": "latest"}, headers=AUTH)
    assert r.json == {"name": "mnist", "version": "3", "pinned": None}
    assert_prediction(predict(), hot=7, version="3")


@pytest.mark.parametrize("body, status", [
    ({"version": "9"}, 404), ({"version": "../1"}, 404), ({"version": ""}, 400),
    ({"version": 1}, 400), ({"ver": "1"}, 400), ({"version": "1", "x": 1}, 400), ([], 400),
    ({"version": "1" * 40}, 400),
])
def test_pin_rejects_bad_requests(client, body, status):
    r = client.put("/v1/models/active", json=body, headers=AUTH)
    assert r.status_code == status, r.json
    ErrorResponse.model_validate(r.json)


def test_pinning_an_invalid_version_is_422_and_keeps_serving(client, artifacts_dir):
    bad = artifacts_dir / "mnist" / "2"
    bad.mkdir()
    (bad / ARTIFACT_FILE).write_bytes(b"PK\x03\x04 not really a zip")
    r = client.put("/v1/models/active", json={"version": "2"}, headers=AUTH)
    assert r.status_code == 422 and r.json["code"] == "invalid_artifact"
    assert not (artifacts_dir / "mnist" / "pin.json").exists()
    r = client.post("/v1/predict", data=DIGIT_PNG, content_type="image/png")
    assert r.json["model"]["version"] == "1"
    listing = client.get("/v1/models").json
    assert listing["last_load_error"]["version"] == "2"
    assert [v["valid"] for v in listing["versions"]] == [False, True]


def test_read_token_protects_listing_and_metrics(settings):
    app = create_app(derive(settings, read_token="reader-token-0123456789"), poll=False)
    client = app.test_client()
    for path in ("/v1/models", "/metrics"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer reader-token-0123456789"}).status_code == 200
        assert client.get(path, headers=AUTH).status_code == 200
    assert client.post("/v1/predict", data=DIGIT_PNG, content_type="image/png").status_code == 200


# -- health, readiness, metrics, openapi ----------------------------------------------


def test_health_and_readiness(client, settings, tmp_path):
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json["model"] == {"name": "mnist", "version": "1"}
    empty = create_app(derive(settings, artifacts_dir=tmp_path / "none"), poll=False)
    c = empty.test_client()
    r = c.get("/readyz")
    assert r.status_code == 503 and r.headers["Retry-After"]
    r = c.post("/v1/predict", data=DIGIT_PNG, content_type="image/png")
    assert r.status_code == 503 and r.json["code"] == "model_not_ready"
    assert c.get("/healthz").status_code == 200


def test_metrics_count_requests_and_predictions(client):
    client.post("/v1/predict", data=DIGIT_PNG, content_type="image/png")
    client.post("/v1/predict", data=b"junk", content_type="image/png")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'mnist_http_request_duration_seconds_count{endpoint="v1.predict",method="POST",status="200"}' in text
    assert 'mnist_http_request_duration_seconds_count{endpoint="v1.predict",method="POST",status="400"}' in text
    assert 'mnist_answers_total{predicted="3",verdict="digit",version="1"}' in text
    assert 'mnist_model_loads_total{result="success"}' in text
    assert 'mnist_image_errors_total{code="invalid_image"}' in text
    assert "mnist_http_request_duration_seconds_bucket" in text


def test_openapi_describes_every_route(app, client):
    doc = client.get("/openapi.json").json
    assert doc["openapi"].startswith("3.")
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented, f"{method} {path} is not in openapi.json"
    refs = json.dumps(doc)
    for name in doc["components"]["schemas"]:
        assert f"#/components/schemas/{name}" in refs or name in ("ModelRef",)


@pytest.mark.parametrize("path", ["/v1/predict", "/v1/predict/batch"])
def test_nameless_multipart_fields_are_a_400(client, path):
    # Found by schemathesis: a part without a name made the field listing crash.
    body = (b"--b\r\nContent-Disposition: form-data; filename=\"x.png\"\r\n\r\nabc\r\n"
            b"--b\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--b--\r\n")
    r = client.post(path, data=body, content_type="multipart/form-data; boundary=b")
    assert r.status_code == 400 and r.json["code"] == "bad_request"


def test_unknown_include_option_is_a_400(client):
    for query in ("include=other", "include=", "include=input,other"):
        r = client.post(f"/v1/predict?{query}", data=DIGIT_PNG, content_type="image/png")
        assert r.status_code == 400, query
