"""The OpenAPI 3.1 document of the HTTP API, served at ``/openapi.json``.

Component schemas come from the pydantic models in ``schemas.py`` (so field
names and types follow the code); paths are listed here, and a test checks
that every Flask route appears, so a new route without documentation fails.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic.json_schema import models_json_schema

from . import __version__, schemas

__all__ = ["openapi_document"]

_MODELS = [
    schemas.PredictionResponse, schemas.BatchResponse, schemas.ReadResponse, schemas.ErrorResponse,
    schemas.RolloutResponse, schemas.ShadowRequest, schemas.CanaryRequest, schemas.FeedbackResponse,
    schemas.FeedbackSummary,
    schemas.ActivateRequest, schemas.ActivateResponse, schemas.ModelsResponse, schemas.Health,
    schemas.V2InferRequest, schemas.V2InferResponse, schemas.V2ModelMetadata,
    schemas.V2ServerMetadata,
]


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    text = {400: "Bad request", 401: "Missing or invalid token", 403: "Management disabled",
            404: "Not found", 405: "Method not allowed", 413: "Too large", 415: "Unsupported media type",
            409: "The artifacts directory is read-only", 422: "Valid but unusable",
            503: "No model ready", 507: "The feedback store is full"}
    return {str(c): _json(_ref("ErrorResponse"), text[c]) for c in codes}


_IMAGE_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {"type": "object", "required": ["image"],
                       "properties": {"image": {"type": "string", "format": "binary"}}},
        },
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {
            "schema": {"type": "object", "required": ["image"],
                       "properties": {"image": {"type": "string", "contentEncoding": "base64",
                                                "description": "Base64 bytes or a data: URL"}}},
        },
    },
}

_FEEDBACK_FIELDS = {"label": {"type": "integer", "minimum": 0, "maximum": 9, "description": "The right class."},
                    "request_id": {"type": "string", "maxLength": 128},
                    "predicted": {"type": "integer", "minimum": 0, "maximum": 9,
                                  "description": "What the service had answered."}}
_FEEDBACK_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["image", "label"],
            "properties": {"image": {"type": "string", "format": "binary"}, **_FEEDBACK_FIELDS}}},
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": {
            "type": "object", "required": ["image", "label"],
            "properties": {"image": {"type": "string", "contentEncoding": "base64"}, **_FEEDBACK_FIELDS}}},
    },
}

_INCLUDE = {"name": "include", "in": "query", "required": False,
            "description": "'input' adds the 28x28 image the network saw as a PNG data URL.",
            "schema": {"type": "string", "enum": ["input"]}}
_VERSION = {"name": "version", "in": "path", "required": True,
            "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}}
_BEARER = [{"bearer": []}]


def _admin_put(summary: str, operation: str, request: str, response: str) -> dict:
    """A management call: admin token, a JSON body, 409 when the artifacts are read-only."""
    return {"put": {
        "tags": ["v1"], "summary": summary, "operationId": operation, "security": _BEARER,
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(request)}}},
        "responses": {"200": _json(_ref(response)), **_errors(400, 401, 403, 404, 409, 422)}}}


def _v2_model_paths(suffix: str, params: list) -> dict:
    return {
        f"/v2/models/{{name}}{suffix}": {
            "get": {"tags": ["v2"], "summary": "Model metadata", "operationId": f"v2ModelMetadata{len(params)}",
                    "parameters": params,
                    "responses": {"200": _json(_ref("V2ModelMetadata")), **_errors(404, 422, 503)}},
        },
        f"/v2/models/{{name}}{suffix}/ready": {
            "get": {"tags": ["v2"], "summary": "Model readiness", "operationId": f"v2ModelReady{len(params)}",
                    "parameters": params,
                    "responses": {"200": _json({"type": "object"}),
                                  **({"503": _json({"type": "object"}, "Not ready")} if not params[1:]
                                     else {}),
                                  **_errors(404)}},
        },
        f"/v2/models/{{name}}{suffix}/infer": {
            "post": {
                "tags": ["v2"], "summary": "Inference on MNIST-shaped tensors",
                "operationId": f"v2Infer{len(params)}",
                "description": "JSON tensors, or the binary tensor extension (JSON header of "
                               "Inference-Header-Content-Length bytes followed by raw tensor bytes).",
                "parameters": params + [{
                    "name": "Inference-Header-Content-Length", "in": "header", "required": False,
                    "schema": {"type": "integer", "minimum": 0}}],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("V2InferRequest")},
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                "responses": {"200": {"description": "OK", "content": {
                    "application/json": {"schema": _ref("V2InferResponse")},
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                    **_errors(400, 404, 413, 415, 422, 503)},
            },
        },
    }


@lru_cache(maxsize=4)
def openapi_document(model_name: str = "mnist") -> dict:
    """Return the OpenAPI document for a server of ``model_name`` (built once per process)."""
    name = {"name": "name", "in": "path", "required": True,
            "schema": {"type": "string", "enum": [model_name]}}
    _, defs = models_json_schema([(m, "serialization") for m in _MODELS],
                                 ref_template="#/components/schemas/{model}")
    paths = {
        "/v1/predict": {"post": {
            "tags": ["v1"], "summary": "Classify one image", "operationId": "predict",
            "parameters": [_INCLUDE], "requestBody": _IMAGE_BODY,
            "responses": {"200": _json(_ref("PredictionResponse")),
                          **_errors(400, 413, 415, 422, 503)}}},
        "/v1/predict/batch": {"post": {
            "tags": ["v1"], "summary": "Classify many images (repeated multipart field 'images')",
            "operationId": "predictBatch", "parameters": [_INCLUDE],
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["images"],
                "properties": {"images": {"type": "array",
                                          "items": {"type": "string", "format": "binary"}}}}}}},
            "responses": {"200": _json(_ref("BatchResponse")), **_errors(400, 413, 415, 503)}}},
        "/v1/read": {"post": {
            "tags": ["v1"], "summary": "Read a whole number: several digits in one line, in one image",
            "operationId": "readNumber", "parameters": [_INCLUDE], "requestBody": _IMAGE_BODY,
            "description": "The same uploads and limits as /v1/predict. 422 'blank_image' without ink, "
                           "'no_digits' when nothing reads as a digit, 'too_many_digits' past MAX_READ_DIGITS.",
            "responses": {"200": _json(_ref("ReadResponse")), **_errors(400, 413, 415, 422, 503)}}},
        "/v1/models": {"get": {
            "tags": ["v1"], "summary": "Active model, available versions, load errors",
            "operationId": "listModels", "security": [{}, {"bearer": []}],
            "responses": {"200": _json(_ref("ModelsResponse")), **_errors(401)}}},
        "/v1/models/active": _admin_put("Pin a version ('latest' follows the newest)", "activateModel",
                                        "ActivateRequest", "ActivateResponse"),
        "/v1/models/shadow": _admin_put("Run a version as the shadow (compared, never answering); null stops",
                                        "setShadow", "ShadowRequest", "RolloutResponse"),
        "/v1/models/canary": _admin_put("Let a version answer a share of clients; a null version stops",
                                        "setCanary", "CanaryRequest", "RolloutResponse"),
        "/v1/feedback": {
            "post": {
                "tags": ["v1"], "summary": "Send the right label for an image (stored for training)",
                "operationId": "postFeedback",
                "description": "The image as for /v1/predict, with 'label' (the right class) and optionally "
                               "'request_id' and 'predicted' (what the service answered): form fields beside "
                               "the file, keys of the JSON object, or query arguments of a raw image body.",
                "parameters": [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                               for n in ("label", "request_id", "predicted")],
                "requestBody": _FEEDBACK_BODY,
                "responses": {"202": _json(_ref("FeedbackResponse"), "Stored"),
                              **_errors(400, 413, 415, 422, 503, 507)}},
            "get": {
                "tags": ["v1"], "summary": "Summary of the stored feedback", "operationId": "feedbackSummary",
                "security": [{}, {"bearer": []}],
                "responses": {"200": _json(_ref("FeedbackSummary")), **_errors(401, 503)}}},
        "/healthz": {"get": {"tags": ["ops"], "summary": "Liveness", "operationId": "healthz",
                             "responses": {"200": _json(_ref("Health"))}}},
        "/readyz": {"get": {"tags": ["ops"], "summary": "Readiness", "operationId": "readyz",
                            "responses": {"200": _json(_ref("Health")),
                                          "503": _json(_ref("Health"), "Not ready")}}},
        "/metrics": {"get": {"tags": ["ops"], "summary": "Prometheus metrics", "operationId": "metrics",
                             "security": [{}, {"bearer": []}],
                             "responses": {"200": {"description": "Prometheus text format",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}},
                                           **_errors(401)}}},
        "/": {"get": {"tags": ["ui"], "summary": "Demo page: draw or drop a digit, see the probabilities",
                      "operationId": "demoPage",
                      "responses": {"200": {"description": "The page (it calls /v1/predict and /v1/models)",
                                            "content": {"text/html": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"tags": ["ops"], "summary": "This document", "operationId": "openapi",
                                  "responses": {"200": _json({"type": "object"})}}},
        "/v2": {"get": {"tags": ["v2"], "summary": "Server metadata", "operationId": "v2Server",
                        "responses": {"200": _json(_ref("V2ServerMetadata"))}}},
        "/v2/health/live": {"get": {"tags": ["v2"], "summary": "Server liveness", "operationId": "v2Live",
                                    "responses": {"200": _json({"type": "object"})}}},
        "/v2/health/ready": {"get": {"tags": ["v2"], "summary": "Server readiness",
                                     "operationId": "v2Ready",
                                     "responses": {"200": _json({"type": "object"}),
                                                   "503": _json({"type": "object"}, "Not ready")}}},
        **_v2_model_paths("", [name]),
        **_v2_model_paths("/versions/{version}", [name, _VERSION]),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "mnist-service", "version": __version__,
                 "description": "Handwritten-digit recognition with a from-scratch NumPy network (CNN or MLP). Errors share "
                                "one shape: ErrorResponse."},
        "paths": paths,
        "components": {
            "schemas": defs["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
