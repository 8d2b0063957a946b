"""The demo page at ``/``: draw, drop or paste a digit and see the probabilities.

The page is one template (``templates/index.html``) and two static files
(``static/app.js``, ``static/app.css``). It is a plain client of the public
API: it posts the drawing or file to ``/v1/predict?include=input`` and reads
the model's name, version and accuracy from ``/v1/models``, so nothing here
knows about the model or preprocessing. Everything is served from this app
(no CDN, no external fonts), under a Content-Security-Policy that allows only
same-origin scripts and styles.

Static files are linked with a content hash (``?v=``); a request carrying the
current hash may be cached for a year, any other is revalidated (ETag).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from flask import Blueprint, current_app, make_response, render_template, request, url_for

__all__ = ["CONTENT_SECURITY_POLICY", "bp"]

bp = Blueprint("ui", __name__)

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    # data: for the 28x28 input image the API returns; blob: for the preview of a chosen file
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
IMMUTABLE = "public, max-age=31536000, immutable"


@lru_cache(maxsize=32)
def _content_hash(path: Path, mtime_ns: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _static_hash(filename: str) -> str | None:
    path = Path(current_app.static_folder, filename)
    try:
        return _content_hash(path, path.stat().st_mtime_ns)
    except OSError:
        return None


@bp.app_template_global()
def asset_url(filename: str) -> str:
    """Return the URL of a static file, with its content hash for caching."""
    return url_for("static", filename=filename, v=_static_hash(filename))


@bp.get("/")
def index():
    """The demo page."""
    response = make_response(render_template("index.html"))
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


@bp.after_app_request
def _cache_static(response):
    # Runs before requestlog's hook (Flask calls after_request hooks in reverse
    # order of registration), whose setdefault then keeps this value.
    if request.endpoint == "static" and response.status_code in (200, 304):
        filename = (request.view_args or {}).get("filename", "")
        version = request.args.get("v")
        if version and version == _static_hash(filename):
            response.headers["Cache-Control"] = IMMUTABLE
    return response
