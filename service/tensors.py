"""The Open Inference Protocol's tensors: decoding an infer request, encoding its answer.

A codec, as in MLServer's ``codecs``: bytes and JSON in, arrays out, and back;
it knows nothing of HTTP or the model. ``v2.py`` (the endpoints) calls it and
``digits.infer`` (the data plane) between the two halves.

Tensors travel as JSON ``data`` or with the binary tensor extension: the JSON
header is followed by raw little-endian bytes, its length given by the
``Inference-Header-Content-Length`` header, each binary tensor marked with
``parameters.binary_data_size``. Outputs are binary when the request asks
(``parameters.binary_data_output`` or per-output ``binary_data``), which is
what ``tritonclient`` does by default.

    decode_request(raw, header_length, encoding, max_batch) -> (header, float32 (N, 784), outputs wanted)
    encode_response(header, wanted, name, version, tensors) -> (payload, content type, headers)
"""

from __future__ import annotations

import numpy as np
import orjson

from model.data import INPUT_SIZE, scale_pixels

from .errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

__all__ = ["DATATYPES", "HEADER_LENGTH", "INPUT_NAME", "OUTPUTS", "decode_request", "encode_response",
           "requested_outputs"]

INPUT_NAME = "images"
# The outputs a request may ask for: name -> datatype.
OUTPUTS = {"probabilities": "FP32", "predicted_class": "INT64", "digit_score": "FP32"}
DATATYPES = {"FP32": np.dtype("<f4"), "UINT8": np.dtype("u1")}
HEADER_LENGTH = "Inference-Header-Content-Length"


def decode_request(raw: bytes, header_length: str | None, encoding: str | None,
                   max_batch: int) -> tuple[dict, np.ndarray, list[tuple[str, bool]]]:
    """Return (the JSON header, float32 (N, 784) pixels in [0, 1], the outputs wanted as
    (name, binary) pairs) of an infer request body; anything wrong is a 4xx ``ServiceError``."""
    header, binary = split_body(raw, header_length, encoding)
    body = parse_header(header)
    X = read_input(body, binary, max_batch)
    return body, X, requested_outputs(body)


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


def requested_outputs(body: dict) -> list[tuple[str, bool]]:
    """Return the (name, binary) outputs a request asks for (all of them by default)."""
    requested = body.get("outputs")
    default_binary = bool((body.get("parameters") or {}).get("binary_data_output", False))
    if requested is None:
        return [(name, default_binary) for name in OUTPUTS]
    if not isinstance(requested, list) or not all(isinstance(o, dict) for o in requested):
        raise BadRequest("'outputs' must be a list of objects")
    wanted = []
    for output in requested:
        if output.get("name") not in OUTPUTS:
            raise BadRequest(f"unknown output {output.get('name')!r}; outputs are {list(OUTPUTS)}")
        parameters = output.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise BadRequest("output 'parameters' must be an object")
        wanted.append((output["name"], bool(parameters.get("binary_data", default_binary))))
    return wanted


def encode_response(body: dict, wanted: list[tuple[str, bool]], model_name: str, model_version: str,
                    tensors: dict[str, np.ndarray]) -> tuple[bytes, str, dict]:
    """Return (payload, content type, extra headers) of the inference response: the
    ``wanted`` outputs (see ``requested_outputs``) taken from ``tensors`` by name."""
    outputs, chunks = [], []
    for name, binary in wanted:
        array = tensors[name]
        entry = {"name": name, "datatype": OUTPUTS[name], "shape": list(array.shape)}
        if binary:
            raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = array.ravel()
        outputs.append(entry)
    result = {"model_name": model_name, "model_version": model_version, "outputs": outputs}
    if "id" in body:
        result["id"] = body["id"]
    header = orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, "application/json", {}
    return header + b"".join(chunks), "application/octet-stream", {HEADER_LENGTH: str(len(header))}
