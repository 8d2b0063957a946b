"""``/v2``: the Open Inference Protocol (KServe V2) REST surface.

Health, server and model metadata, and ``infer`` for one input tensor named
``images``: ``FP32`` pixels in [0, 1] or ``UINT8`` 0..255, shaped ``[N, 784]``,
``[N, 28, 28]`` or ``[N, 1, 28, 28]`` (already MNIST-like: no image
preprocessing beyond scaling). Outputs are ``probabilities`` (``FP32``,
``[N, K]``) and ``predicted_class`` (``INT64``, ``[N]``).

Tensors travel as JSON ``data`` or with the binary tensor extension: the JSON
header is followed by raw little-endian bytes, its length given by the
``Inference-Header-Content-Length`` header, each binary tensor marked with
``parameters.binary_data_size``. Outputs are binary when the request asks
(``parameters.binary_data_output`` or per-output ``binary_data``), which is
what ``tritonclient`` does by default. Errors are ``{"error": "..."}`` (plus
the service's usual ``code``/``status`` fields).
"""

from __future__ import annotations

import numpy as np
import orjson
from flask import Blueprint, Response, current_app, g, jsonify, request

from model.artifact import InvalidArtifact
from model.data import INPUT_SIZE, scale_pixels
from model.store import VersionNotFound

from . import __version__, metrics
from .errors import BadRequest, InvalidModel, ModelNotFound, NoModelReady, PayloadTooLarge, UnsupportedMediaType
from .registry import ServedModel, get_registry

bp = Blueprint("v2", __name__, url_prefix="/v2")

INPUT_NAME = "images"
OUTPUTS = ("probabilities", "predicted_class")
DATATYPES = {"FP32": np.dtype("<f4"), "UINT8": np.dtype("u1")}
HEADER_LENGTH = "Inference-Header-Content-Length"


def _served(name: str, version: str | None = None) -> ServedModel:
    registry = get_registry()
    if name != registry.store.name:
        raise ModelNotFound(f"unknown model {name!r}; this server serves {registry.store.name!r}")
    if version is None:
        served = registry.current()
        if served is None:
            raise NoModelReady()
        return served
    try:
        return registry.get(version)
    except VersionNotFound as exc:
        raise ModelNotFound(str(exc)) from None
    except InvalidArtifact as exc:
        raise InvalidModel(f"version {version} failed validation: {exc}") from None


@bp.get("")
def server_metadata():
    return jsonify({"name": "mnist-service", "version": __version__,
                    "extensions": ["binary_tensor_data"]})


@bp.get("/health/live")
def live():
    return jsonify({"live": True})


@bp.get("/health/ready")
def ready():
    is_ready = get_registry().current() is not None
    response = jsonify({"ready": is_ready})
    response.status_code = 200 if is_ready else 503
    return response


@bp.get("/models/<name>")
@bp.get("/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None):
    served = _served(name, version)
    k = len(served.labels)
    return jsonify({
        "name": served.name,
        "versions": [e.version for e in get_registry().store.versions()],
        "platform": f"numpy_{served.loaded.net.arch}",  # numpy_cnn or numpy_mlp
        "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, INPUT_SIZE]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, k]},
                    {"name": "predicted_class", "datatype": "INT64", "shape": [-1]}],
    })


@bp.get("/models/<name>/ready")
@bp.get("/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None):
    registry = get_registry()
    if name != registry.store.name:
        raise ModelNotFound(f"unknown model {name!r}; this server serves {registry.store.name!r}")
    if version is None:
        is_ready = registry.current() is not None
        response = jsonify({"name": name, "ready": is_ready})
        response.status_code = 200 if is_ready else 503
        return response
    # A specific version is ready when it exists and passes validation (it is then
    # served by the versioned infer route, active or not).
    try:
        registry.get(version)
        is_ready = True
    except VersionNotFound as exc:
        raise ModelNotFound(str(exc)) from None
    except InvalidArtifact:
        is_ready = False
    return jsonify({"name": name, "version": version, "ready": is_ready})


@bp.post("/models/<name>/infer")
@bp.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None = None):
    """Run the network on an MNIST-shaped tensor."""
    served = _served(name, version)
    payload, content_type, headers = run_infer(
        served, request.get_data(cache=False), request.headers.get(HEADER_LENGTH),
        request.headers.get("Content-Encoding"), current_app.config["SETTINGS"].max_tensor_batch)
    g.model_version = served.version
    return Response(payload, content_type=content_type, headers=headers)


def run_infer(served, raw: bytes, header_length: str | None, encoding: str | None,
              max_batch: int) -> tuple[bytes, str, dict]:
    """Answer one infer request body: (payload, content type, extra headers).

    The view's and the fast path's one implementation.
    """
    header, binary = split_body(raw, header_length, encoding)
    body = parse_header(header)
    X = read_input(body, binary, max_batch)
    probs = served.predict_proba(X)
    answer = encode_response(body, served, probs)  # may still refuse (e.g. an unknown output)
    metrics.predictions_done(served.version, len(probs))  # counted once, for an answer given
    return answer


# -- request parsing ------------------------------------------------------------


def split_body(raw: bytes, header_length: str | None, encoding: str | None
               ) -> tuple[bytes, memoryview]:
    """Return (JSON header, binary tensor data) of an inference request body."""
    if (encoding or "identity").lower() != "identity":
        raise UnsupportedMediaType("compressed request bodies are not supported")
    if header_length is None:
        return raw, memoryview(b"")
    if not header_length.isdigit() or int(header_length) > len(raw):
        raise BadRequest(f"{HEADER_LENGTH} must be an integer <= the body length ({len(raw)})")
    view = memoryview(raw)
    return bytes(view[: int(header_length)]), view[int(header_length):]


def parse_header(header: bytes) -> dict:
    """Return the inference request's JSON header, checked for shape."""
    try:
        body = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the inference request is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("the inference request must be a JSON object")
    if "id" in body and not isinstance(body["id"], str):
        raise BadRequest("'id' must be a string")
    for key in ("parameters",):
        if key in body and not isinstance(body[key], dict):
            raise BadRequest(f"'{key}' must be an object")
    return body


def read_input(body: dict, binary: memoryview, max_batch: int) -> np.ndarray:
    """Return float32 (N, 784) pixels in [0, 1] from the request's one input tensor."""
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise BadRequest(f"'inputs' must be a list with one tensor named {INPUT_NAME!r}")
    tensor = inputs[0]
    if tensor.get("name") != INPUT_NAME:
        raise BadRequest(f"unknown input {tensor.get('name')!r}; this model takes {INPUT_NAME!r}")
    datatype = tensor.get("datatype")
    if datatype not in DATATYPES:
        raise BadRequest(f"datatype {datatype!r} is not supported; use FP32 (0..1) or UINT8 (0..255)")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int for d in shape):
        raise BadRequest("'shape' must be a list of integers")
    if shape[1:] not in ([INPUT_SIZE], [28, 28], [1, 28, 28]) or len(shape) < 2:
        raise BadRequest(f"shape {shape} is not supported; use [N,784], [N,28,28] or [N,1,28,28]")
    n = shape[0]
    if n < 1:
        raise BadRequest(f"the batch size N must be >= 1, got {n}")
    if n > max_batch:
        raise PayloadTooLarge(f"batch of {n} images; the limit is {max_batch}")
    dtype = DATATYPES[datatype]
    parameters = tensor.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequest("tensor 'parameters' must be an object")
    size = parameters.get("binary_data_size")
    if size is not None:
        expected = n * INPUT_SIZE * dtype.itemsize
        if type(size) is not int or size != expected or len(binary) != size:
            raise BadRequest(f"binary_data_size must be {expected} for {datatype} {shape} and match "
                             f"the {len(binary)} bytes after the JSON header")
        array = np.frombuffer(binary, dtype=dtype).reshape(n, INPUT_SIZE)
    else:
        if len(binary):
            raise BadRequest("binary data follows the header but no tensor declares binary_data_size")
        array = _from_json(tensor.get("data"), datatype, n)
    if datatype == "UINT8":
        return scale_pixels(array)
    with np.errstate(over="ignore", invalid="ignore"):
        X = array.astype(np.float32)  # a copy (frombuffer views are read-only); 1e300 -> inf
    if not np.isfinite(X).all():
        raise BadRequest("FP32 pixels must be finite (no NaN or infinity)")
    if X.min() < -1e-6 or X.max() > 1.0 + 1e-6:
        raise BadRequest("FP32 pixels must be in [0, 1]; send UINT8 for 0..255 values")
    return np.clip(X, 0.0, 1.0, out=X)


def _from_json(data: object, datatype: str, n: int) -> np.ndarray:
    if not isinstance(data, list):
        raise BadRequest("the input tensor needs 'data' (a list) or binary data")
    try:
        array = np.asarray(data)
    except (ValueError, TypeError):
        raise BadRequest("'data' must be a (possibly nested) list of numbers of regular shape") from None
    if array.dtype.kind not in "iuf" or array.dtype == np.bool_:
        raise BadRequest("'data' must hold only numbers")
    if array.size != n * INPUT_SIZE:
        raise BadRequest(f"'data' has {array.size} values; shape [{n}, ...] needs {n * INPUT_SIZE}")
    array = array.reshape(n, INPUT_SIZE)
    if datatype == "UINT8":
        if array.dtype.kind == "f" or array.min() < 0 or array.max() > 255:
            raise BadRequest("UINT8 data must be integers in 0..255")
        return array.astype(np.uint8)
    return array


# -- response -----------------------------------------------------------------------


def encode_response(body: dict, served: ServedModel, probs: np.ndarray) -> tuple[bytes, str, dict]:
    """Return (payload, content type, extra headers) of the inference response."""
    requested = body.get("outputs")
    default_binary = bool((body.get("parameters") or {}).get("binary_data_output", False))
    if requested is None:
        wanted = [(name, default_binary) for name in OUTPUTS]
    else:
        if not isinstance(requested, list) or not all(isinstance(o, dict) for o in requested):
            raise BadRequest("'outputs' must be a list of objects")
        wanted = []
        for output in requested:
            if output.get("name") not in OUTPUTS:
                raise BadRequest(f"unknown output {output.get('name')!r}; outputs are {list(OUTPUTS)}")
            parameters = output.get("parameters") or {}
            wanted.append((output["name"], bool(parameters.get("binary_data", default_binary))))
    tensors = {"probabilities": probs, "predicted_class": probs.argmax(axis=1).astype("<i8")}
    outputs, chunks = [], []
    for name, binary in wanted:
        array = tensors[name]
        entry = {"name": name, "datatype": "FP32" if name == "probabilities" else "INT64",
                 "shape": list(array.shape)}
        if binary:
            raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = array.ravel()
        outputs.append(entry)
    result = {"model_name": served.name, "model_version": served.version, "outputs": outputs}
    if "id" in body:
        result["id"] = body["id"]
    header = orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, "application/json", {}
    return header + b"".join(chunks), "application/octet-stream", {HEADER_LENGTH: str(len(header))}
