"""Admission control: predictions that waited longer than QUEUE_TIMEOUT get a fast 503."""

import io
import time

import pytest
from prometheus_client import REGISTRY

from service import create_app
from service.admission import PREDICTION_ENDPOINTS, waited

from conftest import DIGIT_PNG, derive

V2_BODY = {"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 784], "data": [0] * 784}]}


def requests_for(route: str, stamp: str | None) -> dict:
    """Return test-client kwargs for one prediction route with an X-Request-Start header."""
    headers = {"X-Request-Start": stamp} if stamp is not None else {}
    if route == "predict":
        return {"path": "/v1/predict", "data": DIGIT_PNG, "content_type": "image/png", "headers": headers}
    if route == "batch":
        return {"path": "/v1/predict/batch", "data": {"images": [(io.BytesIO(DIGIT_PNG), "a.png")]},
                "content_type": "multipart/form-data", "headers": headers}
    return {"path": "/v2/models/mnist/infer", "json": V2_BODY, "headers": headers}


@pytest.mark.parametrize("header, expected", [
    ("t=1700000000.250", 10.0), ("1700000000.25", 10.0),  # seconds (nginx's $msec)
    ("t=1700000000250", 10.0),  # milliseconds
    ("t=1700000000250000", 10.0),  # microseconds
    (None, None), ("", None), ("t=soon", None), ("t=1e400", None),
])
def test_the_wait_is_read_in_any_unit(header, expected):
    result = waited(header, 1700000010.25)
    assert result == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize("cors", ["", "https://example.test"])
@pytest.mark.parametrize("route", ["predict", "batch", "v2"])
def test_a_prediction_that_waited_too_long_is_shed(settings, route, cors):
    app = create_app(derive(settings, queue_timeout=0.5, cors_origins=cors), poll=False)
    client = app.test_client()
    kwargs = requests_for(route, f"t={time.time() - 2:.3f}")
    if cors:
        kwargs["headers"]["Origin"] = cors
    shed_before = REGISTRY.get_sample_value("mnist_shed_requests_total") or 0.0
    r = client.post(**kwargs)
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.json["code"] == "overloaded" and "waited 2." in r.json["error"]
    assert r.headers["X-Request-ID"] == r.json["request_id"]  # the usual bookkeeping ran
    assert "X-Model-Version" not in r.headers  # no model answered
    if cors:
        assert r.headers["Access-Control-Allow-Origin"] == cors
    assert REGISTRY.get_sample_value("mnist_shed_requests_total") == shed_before + 1


@pytest.mark.parametrize("route", ["predict", "batch", "v2"])
def test_fresh_unstamped_and_unreadable_requests_are_admitted(settings, route):
    client = create_app(derive(settings, queue_timeout=0.5), poll=False).test_client()
    for stamp in (f"t={time.time():.3f}", None, "garbage"):
        r = client.post(**requests_for(route, stamp))
        assert r.status_code == 200, (stamp, r.json)


def test_only_prediction_routes_are_shed_and_zero_turns_it_off(settings):
    stale = {"X-Request-Start": f"t={time.time() - 60:.3f}"}
    client = create_app(derive(settings, queue_timeout=0.5), poll=False).test_client()
    for path in ("/healthz", "/readyz", "/v2/health/ready", "/v1/models", "/"):
        assert client.get(path, headers=stale).status_code == 200, path
    off = create_app(derive(settings, queue_timeout=0), poll=False).test_client()
    assert off.post("/v1/predict", data=DIGIT_PNG, content_type="image/png", headers=stale).status_code == 200


def test_the_prediction_endpoints_are_the_routes_that_classify(app):
    classifying = {rule.endpoint for rule in app.url_map.iter_rules()
                   if "POST" in rule.methods and rule.endpoint.startswith(("v1.predict", "v1.read", "v2.infer"))}
    assert classifying == PREDICTION_ENDPOINTS
