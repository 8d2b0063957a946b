"""Operational endpoints: liveness, readiness, Prometheus metrics, OpenAPI."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from . import metrics
from .auth import require_reader
from .openapi import openapi_document
from .registry import get_registry

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    """The process is alive and answering."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """A validated model is loaded and its warm-up prediction succeeded."""
    served = get_registry().current()
    if served is None:
        response = jsonify({"status": "unavailable", "reason": "no validated model is loaded"})
        response.status_code = 503
        response.headers["Retry-After"] = "1"
        return response
    return jsonify({"status": "ok", "model": {"name": served.name, "version": served.version}})


@bp.get("/metrics")
def prometheus_metrics():
    """Prometheus text exposition, merged across gunicorn workers."""
    require_reader()
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3 description of this API."""
    return jsonify(openapi_document(current_app.config["SETTINGS"].model_name))
