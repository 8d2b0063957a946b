"""Wire formats: pydantic models of every request and response body.

The models document the API (``openapi.py`` builds the OpenAPI components
from their JSON Schema, so the document follows the code) and the tests
validate real responses against them. Hot paths build plain dicts with the
``*_body`` functions below, which produce exactly these shapes without
per-request model validation; argmax, labels and field names live only here.
"""

from __future__ import annotations

import base64
import io
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ActivateRequest",
    "BatchItemError",
    "BatchResponse",
    "ErrorResponse",
    "ModelsResponse",
    "PredictionResponse",
    "batch_error_item",
    "prediction_body",
]


class ModelRef(BaseModel):
    name: str = Field(examples=["mnist"])
    version: str = Field(examples=["3"])


class PredictionResponse(BaseModel):
    """One classified image."""

    predicted_class: int = Field(ge=0, description="Index of the most probable class.")
    label: str = Field(description="Name of the predicted class, from the artifact's labels.")
    confidence: float = Field(ge=0, le=1, description="Probability of the predicted class.")
    probabilities: list[float] = Field(description="Calibrated probability of each class; sums to 1.")
    model: ModelRef
    input_image: str | None = Field(
        None, description="With ?include=input: the 28x28 image the network saw, as a PNG data URL.")


class BatchItemError(BaseModel):
    """An image of a batch that could not be classified; the others still are."""

    index: int
    filename: str | None = None
    error: str
    code: str
    status: int


class BatchResponse(BaseModel):
    predictions: list[PredictionResponse | BatchItemError]
    model: ModelRef


class ErrorResponse(BaseModel):
    """The body of every error response (V1, V2 and HTTP errors alike)."""

    error: str = Field(description="What went wrong, for people.")
    code: str = Field(description="Stable machine-readable code, e.g. invalid_image.")
    status: int = Field(description="The HTTP status code.")
    request_id: str | None = None


class ActivateRequest(BaseModel):
    """Pin a version, or ``"latest"`` to follow the newest valid version."""

    model_config = ConfigDict(extra="forbid")
    version: str = Field(min_length=1, max_length=32, examples=["2", "latest"])


class VersionInfo(BaseModel):
    version: str
    created_at: str | None
    test_accuracy: float | None
    active: bool
    pinned: bool
    valid: bool


class LoadErrorInfo(BaseModel):
    version: str
    message: str
    at: str


class ModelsResponse(BaseModel):
    name: str
    version: str | None = Field(description="The active version (this worker's).")
    pinned: str | None = Field(description="The pinned version, or null when following the newest.")
    architecture: str | None = Field(description="The active network in one line, e.g. \"CNN: conv5x5x16 "
                                                 "pool2 bn relu ... dense10\" (the layer list is in metadata).")
    metadata: dict[str, Any] | None = Field(description="The active artifact's metadata.")
    metrics: dict[str, Any] | None = Field(description="The active artifact's evaluation metrics.")
    versions: list[VersionInfo]
    last_load_error: LoadErrorInfo | None
    load_errors: list[LoadErrorInfo]


class ActivateResponse(BaseModel):
    name: str
    version: str
    pinned: str | None


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    model: ModelRef | None = None
    reason: str | None = None


def png_data_url(digit: np.ndarray) -> str:
    """Return a uint8 (28, 28) image as a ``data:image/png;base64,...`` URL."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(digit, mode="L").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def prediction_body(probs: np.ndarray, labels: list[str], model_ref: dict,
                    digit: np.ndarray | None = None) -> dict:
    """Return the ``PredictionResponse`` dict for one row of probabilities (k,)."""
    k = int(probs.argmax())
    values = probs.tolist()
    body = {
        "predicted_class": k,
        "label": labels[k],
        "confidence": values[k],
        "probabilities": values,
        "model": model_ref,
    }
    if digit is not None:
        body["input_image"] = png_data_url(digit)
    return body


def batch_error_item(index: int, filename: str | None, message: str, code: str, status: int) -> dict:
    """Return the ``BatchItemError`` dict for a failed image of a batch."""
    return {"index": index, "filename": filename, "error": message, "code": code, "status": status}


# -- Open Inference Protocol (V2) bodies, for the OpenAPI document and tests ------


class V2Tensor(BaseModel):
    """An input tensor: JSON ``data`` or, with the binary extension, ``binary_data_size``."""

    name: str = Field(examples=["images"])
    datatype: Literal["FP32", "UINT8"]
    shape: list[int] = Field(examples=[[1, 784]])
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class V2RequestedOutput(BaseModel):
    name: Literal["probabilities", "predicted_class"]
    parameters: dict[str, Any] | None = None


class V2InferRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[V2Tensor] = Field(min_length=1, max_length=1)
    outputs: list[V2RequestedOutput] | None = None


class V2OutputTensor(BaseModel):
    name: str
    datatype: Literal["FP32", "INT64"]
    shape: list[int]
    parameters: dict[str, Any] | None = None
    data: list[float] | list[int] | None = None


class V2InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[V2OutputTensor]


class V2TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class V2ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[V2TensorMetadata]
    outputs: list[V2TensorMetadata]


class V2ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]
