"""``/v2``: the Open Inference Protocol (KServe V2) REST surface.

Health, server and model metadata, and ``infer`` for one input tensor named
``images``: ``FP32`` pixels in [0, 1] or ``UINT8`` 0..255, shaped ``[N, 784]``,
``[N, 28, 28]`` or ``[N, 1, 28, 28]`` (already MNIST-like: no image
preprocessing beyond scaling). Outputs are ``probabilities`` (``FP32``,
``[N, K]``), ``predicted_class`` (``INT64``, ``[N]``) and ``digit_score``
(``FP32``, ``[N]``: how much each input looks like a digit the model knows). The wire format
(JSON or binary tensors) is ``tensors``', the inference ``digits.infer``.
Errors are ``{"error": "..."}`` (plus the service's usual ``code``/``status``
fields).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g, jsonify, request

from model.artifact import InvalidArtifact
from model.data import INPUT_SIZE

from . import __version__, digits, tensors
from .errors import ModelNotFound, NoModelReady
from .registry import ServedModel, get_registry

bp = Blueprint("v2", __name__, url_prefix="/v2")


def _served(name: str, version: str | None = None) -> ServedModel:
    """Return the model the route names (VersionNotFound and InvalidArtifact map to 404/422)."""
    registry = get_registry()
    if name != registry.store.name:
        raise ModelNotFound(f"unknown model {name!r}; this server serves {registry.store.name!r}")
    if version is None:
        served = registry.current()
        if served is None:
            raise NoModelReady()
        return served
    return registry.get(version)


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
        "inputs": [{"name": tensors.INPUT_NAME, "datatype": "FP32", "shape": [-1, INPUT_SIZE]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, k]},
                    {"name": "predicted_class", "datatype": "INT64", "shape": [-1]},
                    {"name": "digit_score", "datatype": "FP32", "shape": [-1]}],
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
        registry.get(version)  # VersionNotFound: 404
        is_ready = True
    except InvalidArtifact:
        is_ready = False
    return jsonify({"name": name, "version": version, "ready": is_ready})


@bp.post("/models/<name>/infer")
@bp.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None = None):
    """Run the network on an MNIST-shaped tensor."""
    served = _served(name, version)
    body, X, wanted = tensors.decode_request(
        request.get_data(cache=False), request.headers.get(tensors.HEADER_LENGTH),
        request.headers.get("Content-Encoding"), current_app.config["SETTINGS"].max_tensor_batch)
    outputs = digits.infer(served, X)
    g.model_version = served.version
    payload, content_type, headers = tensors.encode_response(body, wanted, served.name, served.version, outputs)
    return Response(payload, content_type=content_type, headers=headers)
