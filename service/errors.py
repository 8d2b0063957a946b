"""Errors as JSON: ``ServiceError`` and its subclasses, and the handlers.

Every error body has one shape, ``ErrorResponse``:
``{"error": "<message>", "code": "<machine code>", "status": <int>, "request_id": "..."}``.
``error`` is a plain string, which is also what the Open Inference Protocol
asks for, so V1 and V2 clients read errors the same way. Werkzeug's HTTP
errors (404, 405, 413, ...) and unexpected exceptions (500, logged with the
traceback, never shown) are rendered in the same shape.
"""

from __future__ import annotations

from flask import Flask, g, jsonify
from werkzeug.exceptions import HTTPException

from imaging.decode import ImageError
from model.artifact import InvalidArtifact
from model.feedback import FeedbackFull, FeedbackReadOnly
from model.store import StoreReadOnly, VersionNotFound


__all__ = [
    "BadRequest",
    "Forbidden",
    "InvalidModel",
    "ModelNotFound",
    "NoModelReady",
    "PayloadTooLarge",
    "ServiceError",
    "Unauthorized",
    "ReadOnly",
    "StorageFull",
    "UnsupportedMediaType",
    "DOMAIN_ERRORS",
    "error_body",
    "error_response",
    "init_app",
]

class ServiceError(Exception):
    """An error with an HTTP status, a stable code and a message for the client."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, status_code: int | None = None, headers: dict | None = None):
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        self.headers = headers or {}


class BadRequest(ServiceError):
    status_code = 400
    code = "bad_request"


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str = "a valid bearer token is required"):
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="mnist-service"'})


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"


class ModelNotFound(ServiceError):
    status_code = 404
    code = "model_not_found"


class PayloadTooLarge(ServiceError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status_code = 415
    code = "unsupported_media_type"


class InvalidModel(ServiceError):
    status_code = 422
    code = "invalid_artifact"


class ReadOnly(ServiceError):
    status_code = 409
    code = "read_only"


class StorageFull(ServiceError):
    status_code = 507
    code = "feedback_store_full"


class NoModelReady(ServiceError):
    status_code = 503
    code = "model_not_ready"

    def __init__(self, message: str = "no validated model is loaded yet"):
        super().__init__(message, headers={"Retry-After": "1"})


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def error_body(message: str, status: int, code: str, request_id: str | None) -> dict:
    """Return the standard error body (``ErrorResponse``)."""
    return {"error": message, "code": code, "status": status, "request_id": request_id}


def error_response(message: str, status: int, code: str, headers: dict | None = None):
    """Return a Flask response with the standard error body."""
    response = jsonify(error_body(message, status, code, g.get("request_id")))
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _service_error(exc: ServiceError):
    return error_response(exc.message, exc.status_code, exc.code, exc.headers)


# The exceptions of the layers below the views, and the HTTP errors they become. Views
# let them propagate; this table is the one place that translates them.
DOMAIN_ERRORS: dict[type[Exception], type[ServiceError]] = {
    VersionNotFound: ModelNotFound,  # 404: no such model version
    InvalidArtifact: InvalidModel,  # 422: the version exists but fails validation
    StoreReadOnly: ReadOnly,  # 409: pins and rollouts cannot be written (read-only artifacts)
    FeedbackFull: StorageFull,  # 507: the feedback store is at its bound
    FeedbackReadOnly: ReadOnly,  # 409: feedback cannot be written here
}


def _domain_error(exc: Exception):
    error = next(error for cls, error in DOMAIN_ERRORS.items() if isinstance(exc, cls))
    message = f"the model failed validation and is not served: {exc}" if error is InvalidModel else str(exc)
    return error_response(message, error.status_code, error.code)


def _image_error(exc: ImageError):
    from . import metrics

    metrics.IMAGES.labels(code=exc.code).inc()
    return error_response(str(exc), exc.status, exc.code)


def _http_error(exc: HTTPException):
    status = exc.code or 500
    if status >= 500:
        # Flask has already logged the traceback (app.logger is the "service" logger).
        message = "internal server error" if status == 500 else exc.description
    else:
        message = exc.description or exc.name
    headers = {k: v for k, v in exc.get_headers() if k.lower() in ("allow", "retry-after")}
    code = _HTTP_CODES.get(status) or _snake(type(exc).__name__)
    return error_response(message, status, code, headers)


_HTTP_CODES = {413: "payload_too_large", 500: "internal_error"}


def init_app(app: Flask) -> None:
    app.register_error_handler(ServiceError, _service_error)
    app.register_error_handler(ImageError, _image_error)
    for exception in DOMAIN_ERRORS:
        app.register_error_handler(exception, _domain_error)
    app.register_error_handler(HTTPException, _http_error)
