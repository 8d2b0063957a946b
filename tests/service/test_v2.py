"""The Open Inference Protocol surface: test client for the details, tritonclient for real."""

import numpy as np
import orjson
import pytest

from service.schemas import ErrorResponse, V2InferResponse, V2ModelMetadata, V2ServerMetadata

from conftest import derive, one_hot_probs, publish_constant
from live import live_server

EXPECTED = np.array(one_hot_probs(10, 3), np.float32)


def infer_body(array, datatype="FP32", shape=None, **extra):
    return {"id": "req-1", "inputs": [{"name": "images", "datatype": datatype,
                                       "shape": list(shape or array.shape),
                                       "data": array.ravel().tolist()}], **extra}


@pytest.mark.parametrize("shape", [(2, 784), (2, 28, 28), (2, 1, 28, 28)])
@pytest.mark.parametrize("datatype", ["FP32", "UINT8"])
def test_infer_json_shapes_and_datatypes(client, shape, datatype):
    rng = np.random.default_rng(0)
    X = rng.random(shape) if datatype == "FP32" else rng.integers(0, 256, shape)
    r = client.post("/v2/models/mnist/infer", json=infer_body(X, datatype))
    assert r.status_code == 200, r.json
    body = V2InferResponse.model_validate(r.json)
    assert body.id == "req-1" and body.model_name == "mnist" and body.model_version == "1"
    probs, classes, scores = body.outputs
    assert (probs.name, probs.datatype, probs.shape) == ("probabilities", "FP32", [2, 10])
    assert (classes.name, classes.datatype, classes.shape, classes.data) == \
        ("predicted_class", "INT64", [2], [3, 3])
    np.testing.assert_allclose(np.reshape(probs.data, (2, 10)), [EXPECTED, EXPECTED], rtol=1e-5)
    # A model without an ood block scores digit-ness by its confidence.
    assert (scores.name, scores.datatype, scores.shape) == ("digit_score", "FP32", [2])
    np.testing.assert_allclose(scores.data, [max(EXPECTED)] * 2, rtol=1e-5)


def test_infer_nested_json_data_and_selected_output(client):
    X = np.zeros((1, 28, 28))
    body = {"inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 28, 28],
                        "data": X.tolist()}], "outputs": [{"name": "predicted_class"}]}
    r = client.post("/v2/models/mnist/versions/1/infer", json=body)
    assert r.status_code == 200
    assert [o["name"] for o in r.json["outputs"]] == ["predicted_class"]
    assert "id" not in r.json


def test_infer_binary_tensors_in_and_out(client):
    X = np.random.default_rng(1).random((3, 784)).astype("<f4")
    header = orjson.dumps({"inputs": [{"name": "images", "datatype": "FP32", "shape": [3, 784],
                                       "parameters": {"binary_data_size": X.nbytes}}],
                           "parameters": {"binary_data_output": True}})
    r = client.post("/v2/models/mnist/infer", data=header + X.tobytes(),
                    headers={"Inference-Header-Content-Length": str(len(header)),
                             "Content-Type": "application/octet-stream"})
    assert r.status_code == 200
    n = int(r.headers["Inference-Header-Content-Length"])
    meta = orjson.loads(r.data[:n])
    sizes = [o["parameters"]["binary_data_size"] for o in meta["outputs"]]
    assert sizes == [3 * 10 * 4, 3 * 8, 3 * 4]
    raw = r.data[n:]
    probs = np.frombuffer(raw[:sizes[0]], "<f4").reshape(3, 10)
    classes = np.frombuffer(raw[sizes[0]:sizes[0] + sizes[1]], "<i8")
    scores = np.frombuffer(raw[sizes[0] + sizes[1]:], "<f4")
    np.testing.assert_allclose(probs, [EXPECTED] * 3, rtol=1e-5)
    assert classes.tolist() == [3, 3, 3] and scores.shape == (3,) and ((scores >= 0) & (scores <= 1)).all()


def _binary(header: dict, payload: bytes, declared=None):
    h = orjson.dumps(header)
    return dict(data=h + payload, headers={"Inference-Header-Content-Length": str(
        len(h) if declared is None else declared)})


UINT8_ONE = {"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 784],
                         "parameters": {"binary_data_size": 784}}]}

BAD_INFER = [
    ("not json", dict(data=b"{", content_type="application/json"), 400),
    ("not an object", dict(json=[1]), 400),
    ("no inputs", dict(json={"id": "x"}), 400),
    ("two inputs", dict(json={"inputs": [infer_body(np.zeros((1, 784)))["inputs"][0]] * 2}), 400),
    ("wrong name", dict(json={"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 784],
                                          "data": [0] * 784}]}), 400),
    ("wrong datatype", dict(json=infer_body(np.zeros((1, 784)), "INT32")), 400),
    ("wrong shape", dict(json=infer_body(np.zeros((1, 100)))), 400),
    ("shape/data mismatch", dict(json=infer_body(np.zeros((1, 784)), shape=[2, 784])), 400),
    ("zero batch", dict(json=infer_body(np.zeros((0, 784)))), 400),
    ("negative batch", dict(json=infer_body(np.zeros((1, 784)), shape=[-1, 784])), 400),
    ("absurd batch", dict(json=infer_body(np.zeros((1, 784)), shape=[10**9, 784])), 413),
    ("float shape", dict(json=infer_body(np.zeros((1, 784)), shape=[1.0, 784])), 400),
    ("out of range FP32", dict(json=infer_body(np.full((1, 784), 255.0))), 400),
    ("FP32 huge", dict(json=infer_body(np.full((1, 784), 1e300))), 400),
    ("UINT8 negative", dict(json=infer_body(np.full((1, 784), -1), "UINT8")), 400),
    ("UINT8 float", dict(json=infer_body(np.full((1, 784), 0.5), "UINT8")), 400),
    ("strings", dict(json={"inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 784],
                                       "data": ["a"] * 784}]}), 400),
    ("ragged", dict(json={"inputs": [{"name": "images", "datatype": "FP32", "shape": [2, 784],
                                      "data": [[0] * 784, [0] * 10]}]}), 400),
    ("bools", dict(json={"inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 784],
                                     "data": [True] * 784}]}), 400),
    ("no data", dict(json={"inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 784]}]}), 400),
    ("unknown output", dict(json={**infer_body(np.zeros((1, 784))), "outputs": [{"name": "x"}]}), 400),
    ("id not string", dict(json={**infer_body(np.zeros((1, 784))), "id": 5}), 400),
    ("binary size mismatch", _binary({"inputs": [{**UINT8_ONE["inputs"][0],
                                                   "parameters": {"binary_data_size": 10}}]},
                                     bytes(784)), 400),
    ("binary short", _binary(UINT8_ONE, bytes(700)), 400),
    ("binary extra bytes", _binary(UINT8_ONE, bytes(800)), 400),
    ("header length lies", _binary(UINT8_ONE, bytes(784), declared=10**6), 400),
    ("header length junk", _binary(UINT8_ONE, bytes(784), declared="abc"), 400),
    ("compressed", dict(json=infer_body(np.zeros((1, 784))), headers={"Content-Encoding": "gzip"}), 415),
]


@pytest.mark.parametrize("case", BAD_INFER, ids=[c[0] for c in BAD_INFER])
def test_bad_infer_requests(client, case):
    _, kwargs, status = case
    r = client.post("/v2/models/mnist/infer", **kwargs)
    assert r.status_code == status, r.get_data(as_text=True)[:300]
    ErrorResponse.model_validate(r.json)
    assert isinstance(r.json["error"], str) and r.json["error"]


def test_unknown_model_and_version(client):
    assert client.post("/v2/models/other/infer", json=infer_body(np.zeros((1, 784)))).status_code == 404
    r = client.post("/v2/models/mnist/versions/7/infer", json=infer_body(np.zeros((1, 784))))
    assert r.status_code == 404 and "does not exist" in r.json["error"]
    assert client.get("/v2/models/other").status_code == 404


def test_versioned_infer_reaches_an_inactive_version(client, artifacts_dir):
    publish_constant(artifacts_dir, hot=6)  # version 2, not yet active in this worker
    r = client.post("/v2/models/mnist/versions/2/infer", json=infer_body(np.zeros((1, 784))))
    assert r.json["model_version"] == "2" and r.json["outputs"][1]["data"] == [6]
    r = client.post("/v2/models/mnist/infer", json=infer_body(np.zeros((1, 784))))
    assert r.json["model_version"] == "1"


def test_metadata_health_and_readiness(client):
    V2ServerMetadata.model_validate(client.get("/v2").json)
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").json == {"ready": True}
    meta = V2ModelMetadata.model_validate(client.get("/v2/models/mnist").json)
    assert meta.versions == ["1"] and meta.inputs[0].name == "images"
    assert meta.outputs[0].shape == [-1, 10]
    assert client.get("/v2/models/mnist/ready").json == {"name": "mnist", "ready": True}
    assert client.get("/v2/models/mnist/versions/1/ready").json["ready"] is True
    assert client.get("/v2/models/mnist/versions/2/ready").status_code == 404


def test_batch_bound_is_configurable(settings):
    from service import create_app

    client = create_app(derive(settings, max_tensor_batch=2), poll=False).test_client()
    r = client.post("/v2/models/mnist/infer", json=infer_body(np.zeros((3, 784))))
    assert r.status_code == 413 and "limit is 2" in r.json["error"]


# -- the real client against the real server ----------------------------------------


@pytest.fixture(scope="module")
def triton_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("v2-live")
    publish_constant(root / "artifacts", hot=3)
    with live_server({"ARTIFACTS_DIR": root / "artifacts"}, root) as server:
        yield server


@pytest.mark.system
@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("datatype, shape", [("FP32", (5, 784)), ("UINT8", (4, 28, 28)),
                                             ("FP32", (2, 1, 28, 28))])
def test_tritonclient_infer(triton_server, binary, datatype, shape):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(triton_server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("mnist")
    meta = client.get_model_metadata("mnist")
    assert meta["inputs"][0]["name"] == "images"
    rng = np.random.default_rng(0)
    X = rng.random(shape).astype(np.float32) if datatype == "FP32" else \
        rng.integers(0, 256, shape).astype(np.uint8)
    tensor = httpclient.InferInput("images", list(shape), datatype)
    tensor.set_data_from_numpy(X, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput("probabilities", binary_data=binary),
               httpclient.InferRequestedOutput("predicted_class", binary_data=binary),
               httpclient.InferRequestedOutput("digit_score", binary_data=binary)]
    result = client.infer("mnist", [tensor], outputs=outputs, request_id="triton-1")
    probs = result.as_numpy("probabilities")
    assert probs.shape == (shape[0], 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, np.tile(EXPECTED, (shape[0], 1)), rtol=1e-5)
    assert result.as_numpy("predicted_class").tolist() == [3] * shape[0]
    scores = result.as_numpy("digit_score")  # a model without a fitted score: its confidence
    assert scores.shape == (shape[0],) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, probs.max(axis=1), rtol=1e-6)
    assert result.get_response()["id"] == "triton-1"
    # Default outputs: tritonclient then asks for everything in binary.
    default = client.infer("mnist", [tensor], model_version="1")
    assert default.as_numpy("predicted_class").tolist() == [3] * shape[0]
    assert default.as_numpy("digit_score").shape == (shape[0],)


@pytest.mark.system
def test_tritonclient_sees_errors(triton_server):
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    client = httpclient.InferenceServerClient(triton_server.url.removeprefix("http://"))
    tensor = httpclient.InferInput("images", [1, 100], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 100), np.float32))
    with pytest.raises(InferenceServerException, match="not supported"):
        client.infer("mnist", [tensor])
