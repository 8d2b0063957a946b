"""``/v1``: predict one image, predict a batch, list models, pin a version.

Each view reads the request (``uploads``), calls the data plane
(``digits``) and returns its body; errors propagate to ``errors``' handlers.
"""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request

from . import digits
from .auth import require_admin, require_reader
from .errors import BadRequest
from .registry import current_model, get_registry
from .uploads import parse_json, read_batch, read_image

bp = Blueprint("v1", __name__, url_prefix="/v1")

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


@bp.post("/predict")
def predict():
    """Classify one uploaded image."""
    with_input = _include_input()
    data, _ = read_image(request)
    served = current_model()
    body = digits.classify(served, data, current_app.config["SETTINGS"].max_image_pixels, with_input)
    g.model_version = served.version  # only an answer names the version, not a refused image
    return jsonify(body)


@bp.post("/predict/batch")
def predict_batch():
    """Classify many images; a bad image fails alone, in its slot."""
    settings = current_app.config["SETTINGS"]
    with_input = _include_input()
    uploads = read_batch(request, settings.max_batch_images)
    served = current_model()
    items = digits.classify_batch(served, uploads, settings.max_image_pixels, with_input)
    g.model_version = served.version
    return jsonify({"predictions": items, "model": digits.model_ref(served)})


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
    served = registry.activate(version)  # VersionNotFound: 404, InvalidArtifact: 422
    g.model_version = served.version
    return jsonify({"name": served.name, "version": served.version, "pinned": registry.store.pinned()})
