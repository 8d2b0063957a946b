"""``/v1``: predict one image, predict a batch, read a whole number, list models, pin a version,
run a shadow or a canary version, take feedback.

Each view reads the request (``uploads``), calls the data plane
(``digits``) and returns its body; errors propagate to ``errors``' handlers.
"""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request

from . import digits, metrics
from .auth import require_admin, require_reader
from .errors import BadRequest
from .registry import current_model, get_registry
from .uploads import parse_json, read_batch, read_image, read_image_with_fields

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


def _one_upload(answer):
    """Return the JSON response ``answer(served, data, settings, with_input)`` gives for the
    request's one uploaded image."""
    with_input = _include_input()
    data, _ = read_image(request)
    served = current_model()
    body = answer(served, data, current_app.config["SETTINGS"], with_input)
    g.model_version = served.version  # only an answer names the version, not a refused image
    return jsonify(body)


@bp.post("/predict")
def predict():
    """Classify one uploaded image."""
    return _one_upload(digits.classify)


@bp.post("/predict/batch")
def predict_batch():
    """Classify many images; a bad image fails alone, in its slot."""
    settings = current_app.config["SETTINGS"]
    with_input = _include_input()
    uploads = read_batch(request, settings.max_batch_images)
    served = current_model()
    items = digits.classify_batch(served, uploads, settings, with_input)
    g.model_version = served.version
    return jsonify({"predictions": items, "model": served.ref})


@bp.post("/read")
def read_number():
    """Read a whole number (several digits in one line) from one uploaded image."""
    return _one_upload(digits.read_number)


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
        "digit_score": served.scoring() if served else None,
        **_rollout(registry),
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


# -- rollouts: shadow and canary --------------------------------------------------------------


def _rollout(registry) -> dict:
    """Return the rollout part of /v1/models: policy, shadow (with its comparisons), canary."""
    shadow, canary = registry.shadow(), registry.canary()
    return {"rollout_policy": registry.policy,
            "shadow": metrics.shadow_stats(shadow.version) if shadow else None,
            "canary": {"version": canary[0].version, "percent": canary[1]} if canary else None}


def _version_field(body: object, allowed: set[str], how: str) -> str | None:
    """Return the body's "version" (None to stop), checking the body's shape (400 otherwise)."""
    if not isinstance(body, dict) or "version" not in body or not set(body) <= allowed:
        raise BadRequest(f"send JSON {how}")
    version = body["version"]
    if version is not None and (not isinstance(version, str) or not 0 < len(version) <= 32):
        raise BadRequest(f"'version' must be a version string or null; send JSON {how}")
    return version


@bp.put("/models/shadow")
def set_shadow():
    """Run a version as the shadow (admin token); {"version": null} stops it."""
    require_admin()
    version = _version_field(parse_json(request), {"version"}, '{"version": "<version>"} or {"version": null}')
    registry = get_registry()
    registry.set_shadow(version)  # VersionNotFound: 404, InvalidArtifact: 422, read-only: 409
    return jsonify(_rollout(registry))


@bp.put("/models/canary")
def set_canary():
    """Let a version answer a share of clients (admin token); {"version": null} stops it."""
    require_admin()
    how = '{"version": "<version>", "percent": 0-100} or {"version": null}'
    body = parse_json(request)
    version = _version_field(body, {"version", "percent"}, how)
    percent = body.get("percent", 0)
    if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 <= percent <= 100:
        raise BadRequest(f"'percent' must be a number from 0 to 100; send JSON {how}")
    registry = get_registry()
    registry.set_canary(version, float(percent) if version is not None else 0.0)
    return jsonify(_rollout(registry))


# -- feedback ----------------------------------------------------------------------------------


@bp.post("/feedback")
def post_feedback():
    """Store the right label for an image (the same uploads as /v1/predict, plus 'label')."""
    data, _, fields = read_image_with_fields(request)
    served = current_model()
    label = _int_field(fields, "label", len(served.labels), required=True)
    answered = _int_field(fields, "predicted", len(served.labels), required=False)
    request_id = fields.get("request_id")
    if request_id is not None and (not isinstance(request_id, str) or not 0 < len(request_id) <= 128):
        raise BadRequest("'request_id' must be a string of 1 to 128 characters")
    entry = digits.record_feedback(served, data, label, answered, request_id, current_app.config["SETTINGS"],
                                   current_app.extensions["feedback"])
    g.model_version = served.version
    return jsonify(entry), 202


def _int_field(fields: dict, name: str, k: int, required: bool) -> int | None:
    """Return the class index in field ``name`` (a number or its text; 400 if not in [0, k))."""
    value = fields.get(name)
    if value is None:
        if required:
            raise BadRequest(f"'{name}' is required: the right class, 0 to {k - 1}")
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < k:
        raise BadRequest(f"'{name}' must be a class index from 0 to {k - 1}, got {str(value)[:20]!r}")
    return value


@bp.get("/feedback")
def feedback_summary():
    """Summarise the stored feedback (read token where one is set)."""
    require_reader()
    served = current_model()
    return jsonify(digits.feedback_summary(served, current_app.extensions["feedback"]))
