"""The WSGI fast path: same answers as the Flask views, and Flask for everything else."""

import io

import numpy as np
import orjson
import pytest
from werkzeug.test import Client, EnvironBuilder

from service.fastpath import FastPath, multipart_field

from conftest import DIGIT_PNG



def form(*parts: tuple[str, bytes], boundary: str = "b0undary", preamble: bytes = b"") -> bytes:
    body = preamble
    for name, data in parts:
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                 f"filename=\"x.png\"\r\nContent-Type: image/png\r\n\r\n").encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


@pytest.mark.parametrize("body, expected", [
    (form(("image", DIGIT_PNG)), DIGIT_PNG),
    (form(("other", b"abc"), ("image", DIGIT_PNG), ("more", b"x")), DIGIT_PNG),
    (form(("image", b"")), b""),
    (form(("image", DIGIT_PNG), preamble=b"\r\n"), DIGIT_PNG),
    (form(("image", DIGIT_PNG), preamble=b"ignored preamble\r\n"), DIGIT_PNG),
    (form(("image", b"a\r\n--b0undar")), b"a\r\n--b0undar"),  # almost a delimiter
    (form(("image", DIGIT_PNG), ("image", DIGIT_PNG)), None),  # duplicate: Werkzeug decides
    (form(("other", DIGIT_PNG)), None),
    (form(("image", DIGIT_PNG))[:-20], None),  # truncated
    (b"garbage", None),
    (b"--b0undary\r\nContent-Disposition: form-data; name*=UTF-8''image\r\n\r\nx\r\n--b0undary--", None),
    (b"--b0undary\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nx\r\n--b0undary--\r\n", b"x"),
])
def test_multipart_field(body, expected):
    assert multipart_field(body, b"b0undary", b"image") == expected


def test_multipart_field_agrees_with_werkzeug():
    from werkzeug.wrappers import Request

    rng = np.random.default_rng(0)
    for _ in range(50):
        data = rng.integers(0, 256, rng.integers(0, 3000), dtype=np.uint8).tobytes()
        env = EnvironBuilder(method="POST", data={"image": (io.BytesIO(data), "a.bin"),
                                                  "note": "hello"}).get_environ()
        body = env["wsgi.input"].read()
        boundary = env["CONTENT_TYPE"].split("boundary=")[1].strip('"').encode()
        env["wsgi.input"] = io.BytesIO(body)
        assert multipart_field(body, boundary, b"image") == Request(env).files["image"].read() == data


def both(app):
    """Return (fast-path client, Flask-only client) for the same app."""
    fast = Client(app.wsgi_app)
    assert isinstance(app.wsgi_app, FastPath)
    return fast, Client(app.wsgi_app.flask)


STRIP = {"X-Request-ID", "Content-Length", "Date"}


def same(fast_response, flask_response):
    assert fast_response.status_code == flask_response.status_code
    assert fast_response.get_data() == flask_response.get_data()
    a = {k: v for k, v in fast_response.headers.items() if k not in STRIP}
    b = {k: v for k, v in flask_response.headers.items() if k not in STRIP}
    assert a == b


@pytest.mark.parametrize("make", [
    lambda: dict(data={"image": (io.BytesIO(DIGIT_PNG), "seven.png")}),
    lambda: dict(data=DIGIT_PNG, content_type="image/png"),
    lambda: dict(data=DIGIT_PNG, content_type="image/png", query_string="include=input"),
], ids=["multipart", "raw", "include-input"])
def test_predict_answers_match_flask(app, make):
    fast, flask_only = both(app)
    same(fast.post("/v1/predict", **make()), flask_only.post("/v1/predict", **make()))


def test_infer_answers_match_flask(app):
    fast, flask_only = both(app)
    X = np.random.default_rng(0).random((3, 784)).astype(np.float32)
    body = {"id": "x", "inputs": [{"name": "images", "datatype": "FP32", "shape": [3, 784],
                                   "data": X.ravel().tolist()}]}
    same(fast.post("/v2/models/mnist/infer", json=body), flask_only.post("/v2/models/mnist/infer", json=body))
    header = orjson.dumps({"inputs": [{"name": "images", "datatype": "FP32", "shape": [3, 784],
                                       "parameters": {"binary_data_size": X.nbytes}}],
                           "parameters": {"binary_data_output": True}})
    kwargs = dict(data=header + X.tobytes(), headers={"Inference-Header-Content-Length": str(len(header))})
    same(fast.post("/v2/models/mnist/infer", **kwargs), flask_only.post("/v2/models/mnist/infer", **kwargs))


def test_request_id_and_version_headers_on_the_fast_path(app):
    r = Client(app.wsgi_app).post("/v1/predict", data=DIGIT_PNG, content_type="image/png",
                                  headers={"X-Request-ID": "fast-1"})
    assert r.headers["X-Request-ID"] == "fast-1" and r.headers["X-Model-Version"] == "1"
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_everything_unusual_goes_to_flask(app, monkeypatch):
    calls = []
    flask_wsgi = app.wsgi_app.flask

    def spy(environ, start_response):
        calls.append(environ["PATH_INFO"])
        return flask_wsgi(environ, start_response)

    monkeypatch.setattr(app.wsgi_app, "flask", spy)
    client = Client(app.wsgi_app)
    assert client.post("/v1/predict", data=DIGIT_PNG, content_type="image/png").status_code == 200
    assert calls == []  # served by the fast path
    cases = [
        (dict(data=b"junk", content_type="image/png"), 400),  # bad image: Flask gives the 400
        (dict(data={"file": (io.BytesIO(DIGIT_PNG), "x.png")}), 400),  # wrong field
        (dict(data=DIGIT_PNG, content_type="text/plain"), 415),
        (dict(data=DIGIT_PNG, content_type="image/png", query_string="include=other"), 400),
    ]
    for kwargs, status in cases:
        r = client.post("/v1/predict", **kwargs)
        assert r.status_code == status and r.is_json, kwargs
    assert len(calls) == len(cases)
    r = client.post("/v2/models/other/infer", json={})
    assert r.status_code == 404 and calls[-1] == "/v2/models/other/infer"


def test_chunked_upload_goes_to_flask(app):
    env = EnvironBuilder(method="POST", path="/v1/predict", data=DIGIT_PNG, content_type="image/png").get_environ()
    del env["CONTENT_LENGTH"]
    env["HTTP_TRANSFER_ENCODING"] = "chunked"
    env["wsgi.input_terminated"] = True
    status = []
    body = b"".join(app.wsgi_app(env, lambda s, h, e=None: status.append(s)))
    assert status[0].startswith("200") and orjson.loads(body)["predicted_class"] == 3


def _predictions(client) -> float:
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith('mnist_predictions_total{version="1"}'):
            return float(line.split()[-1])
    return 0.0


def test_refused_requests_are_not_counted_and_name_no_version(client):
    # Both go through the fast path first and are then answered by Flask: the
    # work the fast path did must not count, and a refusal names no model version.
    before = _predictions(client)
    body = {"inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 784], "data": [0.0] * 784}],
            "outputs": [{"name": "nope"}]}
    r = client.post("/v2/models/mnist/infer", json=body)
    assert r.status_code == 400 and "X-Model-Version" not in r.headers
    r = client.post("/v1/predict", data=DIGIT_PNG[:60], content_type="image/png")
    assert r.status_code == 400 and "X-Model-Version" not in r.headers
    assert _predictions(client) == before
    r = client.post("/v1/predict", data=DIGIT_PNG, content_type="image/png")
    assert r.status_code == 200 and r.headers["X-Model-Version"] == "1"
    assert _predictions(client) == before + 1
