"""``/v1``: predict one image, predict a batch, list models, pin a version.

Each view reads the request, calls preprocessing and the model, and returns
a body built by ``schemas``; the steps themselves live elsewhere.
"""

from __future__ import annotations

import numpy as np
from flask import Blueprint, current_app, g, jsonify, request

from model.artifact import InvalidArtifact
from model.data import scale_pixels
from model.store import VersionNotFound

from . import metrics
from .auth import require_admin, require_reader
from .errors import BadRequest, InvalidModel, ModelNotFound
from .preprocessing import ImageError, preprocess
from .registry import ServedModel, current_model, get_registry
from .schemas import batch_error_item, prediction_body
from .uploads import parse_json, read_batch, read_image

bp = Blueprint("v1", __name__, url_prefix="/v1")


def model_ref(served: ServedModel) -> dict:
    """Return the ``{"name", "version"}`` a prediction names its model by."""
    return {"name": served.name, "version": served.version}


def _model_ref(served: ServedModel) -> dict:
    """``model_ref``, also recorded for the response's X-Model-Version and the access log."""
    g.model_version = served.version
    return model_ref(served)


INCLUDE_OPTIONS = {"input"}


def _include_input() -> bool:
    """Return whether ?include= asks for the input image (400 for unknown options)."""
    if "include" not in request.args:
        return False
    wanted = set(request.args.get("include").split(","))
    unknown = wanted - INCLUDE_OPTIONS
    if unknown:
        raise BadRequest(f"unknown include option(s) {sorted(unknown)}; known: {sorted(INCLUDE_OPTIONS)}")
    return "input" in wanted


def classify(served: ServedModel, data: bytes, max_pixels: int, with_input: bool) -> dict:
    """Return the prediction body for one encoded image (the view's and the fast path's)."""
    digit = preprocess(data, max_pixels)
    probs = served.predict_proba(scale_pixels(digit[None]))
    body = prediction_body(probs[0], served.labels, model_ref(served), digit if with_input else None)
    metrics.predictions_done(served.version)
    return body


@bp.post("/predict")
def predict():
    """Classify one uploaded image."""
    with_input = _include_input()
    data, _ = read_image(request)
    served = current_model()
    body = classify(served, data, current_app.config["SETTINGS"].max_image_pixels, with_input)
    g.model_version = served.version  # only an answer names the version, not a refused image
    return jsonify(body)


@bp.post("/predict/batch")
def predict_batch():
    """Classify many images; a bad image fails alone, in its slot."""
    settings = current_app.config["SETTINGS"]
    with_input = _include_input()
    uploads = read_batch(request, settings.max_batch_images)
    served = current_model()
    items: list[dict | None] = [None] * len(uploads)
    good, digits = [], []
    for i, (data, filename) in enumerate(uploads):
        try:
            digits.append(preprocess(data, settings.max_image_pixels))
            good.append(i)
        except ImageError as exc:
            metrics.IMAGES.labels(code=exc.code).inc()
            items[i] = batch_error_item(i, filename, str(exc), exc.code, exc.status)
    ref = _model_ref(served)
    if digits:
        probs = served.predict_proba(scale_pixels(np.stack(digits)))
        for row, i, digit in zip(probs, good, digits):
            items[i] = prediction_body(row, served.labels, ref, digit if with_input else None)
        metrics.predictions_done(served.version, len(digits))
    return jsonify({"predictions": items, "model": ref})


@bp.get("/models")
def list_models():
    """Describe the active model, every available version, and load errors."""
    require_reader()
    registry = get_registry()
    served = registry.current()
    errors = [vars(e) for e in registry.errors]
    return jsonify({
        "name": registry.store.name,
        "version": served.version if served else None,
        "pinned": registry.store.pinned(),
        "architecture": served.architecture if served else None,
        "metadata": served.metadata.model_dump(mode="json") if served else None,
        "metrics": served.metadata.metrics.model_dump(mode="json") if served else None,
        "versions": registry.versions(),
        "last_load_error": errors[-1] if errors else None,
        "load_errors": errors,
    })


@bp.put("/models/active")
def activate_model():
    """Pin the served version (admin token required); "latest" unpins."""
    require_admin()
    body = parse_json(request)
    if not isinstance(body, dict) or set(body) != {"version"} or not isinstance(body["version"], str):
        raise BadRequest('send JSON {"version": "<version>"} or {"version": "latest"}')
    version = body["version"]
    if not 0 < len(version) <= 32:
        raise BadRequest("'version' must be 1 to 32 characters")
    registry = get_registry()
    try:
        served = registry.activate(version)
    except VersionNotFound as exc:
        raise ModelNotFound(str(exc)) from None
    except InvalidArtifact as exc:
        raise InvalidModel(f"version {version} failed validation and was not activated: {exc}") from None
    _model_ref(served)
    return jsonify({"name": served.name, "version": served.version, "pinned": registry.store.pinned()})
