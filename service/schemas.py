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
    "RunnerUp",
    "batch_error_item",
    "prediction_body",
]


class ModelRef(BaseModel):
    name: str = Field(examples=["mnist"])
    version: str = Field(examples=["3"])


class RunnerUp(BaseModel):
    predicted_class: int = Field(ge=0, description="Index of the second most probable class.")
    label: str
    probability: float = Field(ge=0, le=1)


class PredictionResponse(BaseModel):
    """One classified image."""

    predicted_class: int = Field(ge=0, description="Index of the most probable class.")
    label: str = Field(description="Name of the predicted class, from the artifact's labels.")
    confidence: float = Field(ge=0, le=1, description="Probability of the predicted class.")
    probabilities: list[float] = Field(description="Calibrated probability of each class; sums to 1.")
    digit_score: float = Field(
        ge=0, le=1, description="How much the input looks like a handwritten digit the model knows, in [0, 1] "
        "(higher: more). It ranks inputs: threshold it to decide what to trust (the verdict's thresholds "
        "are in /v1/models). Models without an out-of-distribution block give the confidence here.")
    verdict: Literal["digit", "uncertain", "not_a_digit"] = Field(
        description="'digit': the answer can be used; 'uncertain': a digit, but the model is torn between "
        "the predicted class and the runner-up; 'not_a_digit': the input does not look like a digit "
        "(the probabilities are still given, but mean little).")
    runner_up: RunnerUp = Field(description="The second most probable class (shown when uncertain).")
    model: ModelRef
    input_image: str | None = Field(
        None, description="With ?include=input: the 28x28 image the network saw, as a PNG data URL.")


class ReadDigit(BaseModel):
    """One digit of a number read by /v1/read, in reading order."""

    label: str
    predicted_class: int = Field(ge=0)
    confidence: float = Field(ge=0, le=1, description="Probability of this digit's class.")
    probabilities: list[float] = Field(description="Calibrated probability of each class; sums to 1.")
    box: list[int] = Field(min_length=4, max_length=4, description="[x, y, width, height] of the digit in "
                           "the uploaded image's pixels (after its EXIF orientation).")
    digit_score: float = Field(ge=0, le=1, description="As in /v1/predict.")
    verdict: Literal["digit", "uncertain"] = Field(description="As in /v1/predict ('not_a_digit' pieces "
                                                              "are marks, not digits).")
    input_image: str | None = Field(None, description="With ?include=input: the 28x28 image the network saw.")


class ReadMark(BaseModel):
    """Ink left out of the text: a mark far smaller than the digits (a comma, a dash, a dot, a
    smudge), or a piece the model says is not a digit."""

    box: list[int] = Field(min_length=4, max_length=4, description="[x, y, width, height], as for digits.")
    kind: Literal["mark", "not_a_digit"]
    digit_score: float | None = Field(None, ge=0, le=1)


class ReadResponse(BaseModel):
    """A whole number read from one image."""

    text: str = Field(description="The digits' labels in reading order, left to right.")
    confidence: float = Field(ge=0, le=1, description="The probability that the whole string is right under "
                                                      "the model: the product of the digits' confidences.")
    digits: list[ReadDigit]
    marks: list[ReadMark]
    model: ModelRef


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


class Confusion(BaseModel):
    answered: str = Field(description="The class answered (by the active or canary version).")
    shadow: str = Field(description="The shadow version's class.")
    count: int


class ShadowInfo(BaseModel):
    """A shadow version: it runs on a sample of prediction requests, after the answer, and never answers."""

    version: str
    compared: int = Field(description="Images compared so far (all workers of this server).")
    agreed: int
    disagreement_rate: float | None = Field(description="(compared - agreed) / compared; null before any.")
    top_confusions: list[Confusion]


class CanaryInfo(BaseModel):
    version: str
    percent: float = Field(ge=0, le=100, description="Share of clients it answers (sticky per X-Client-ID).")


class RolloutResponse(BaseModel):
    rollout_policy: Literal["newest", "staged"]
    shadow: ShadowInfo | None
    canary: CanaryInfo | None


class ShadowRequest(BaseModel):
    """Run ``version`` as the shadow; null stops it."""

    model_config = ConfigDict(extra="forbid")
    version: str | None = Field(min_length=1, max_length=32, examples=["3", None])


class CanaryRequest(BaseModel):
    """Let ``version`` answer ``percent`` of clients; a null version stops the canary."""

    model_config = ConfigDict(extra="forbid")
    version: str | None = Field(min_length=1, max_length=32, examples=["3", None])
    percent: float = Field(0, ge=0, le=100)


class FeedbackResponse(BaseModel):
    id: str
    label: int = Field(ge=0)
    version: str = Field(description="The version whose prediction is stored with the entry.")
    predicted: int = Field(ge=0, description="What that version predicts for the image.")


class FeedbackSummary(BaseModel):
    count: int = Field(description="Entries stored.")
    bytes: int
    summarised: int = Field(description="The newest entries the figures below cover (at most 10,000).")
    per_label: dict[str, int]
    model: ModelRef
    accuracy: float | None = Field(description="The active version's accuracy on the summarised entries.")


class ModelsResponse(BaseModel):
    name: str
    version: str | None = Field(description="The active version (this worker's).")
    pinned: str | None = Field(description="The pinned version, or null when following the newest.")
    architecture: str | None = Field(description="The active network in one line, e.g. \"CNN: conv5x5x16 "
                                                 "pool2 bn relu ... dense10\" (the layer list is in metadata).")
    digit_score: dict[str, Any] | None = Field(
        description="How the active model scores digit-ness: its method and the verdict's thresholds in "
                    "effect (the artifact's, or the NOT_A_DIGIT_BELOW / UNCERTAIN_BELOW settings).")
    rollout_policy: Literal["newest", "staged"] = Field(description="ROLLOUT_POLICY.")
    shadow: ShadowInfo | None = Field(description="The shadow version and how it compares, or null.")
    canary: CanaryInfo | None = Field(description="The canary version and its share of clients, or null.")
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


def prediction_body(probs: np.ndarray, labels: list[str], model_ref: dict, digit_score: float,
                    verdict: str, digit: np.ndarray | None = None) -> dict:
    """Return the ``PredictionResponse`` dict for one row of probabilities (k,)."""
    k = int(probs.argmax())
    values = probs.tolist()
    second = max((i for i in range(len(values)) if i != k), key=values.__getitem__)
    body = {
        "predicted_class": k,
        "label": labels[k],
        "confidence": values[k],
        "probabilities": values,
        "digit_score": digit_score,
        "verdict": verdict,
        "runner_up": {"predicted_class": second, "label": labels[second], "probability": values[second]},
        "model": model_ref,
    }
    if digit is not None:
        body["input_image"] = png_data_url(digit)
    return body


def read_body(reading, model_ref: dict, with_input: bool = False) -> dict:
    """Return the ``ReadResponse`` dict for a ``numbers.Reading``."""
    digits = []
    for d in reading.digits:
        item = {k: d[k] for k in ("label", "predicted_class", "confidence", "probabilities", "box",
                                  "digit_score", "verdict")}
        if with_input:
            item["input_image"] = png_data_url(d["input"])
        digits.append(item)
    return {"text": reading.text, "confidence": reading.confidence, "digits": digits,
            "marks": reading.marks, "model": model_ref}


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
    name: Literal["probabilities", "predicted_class", "digit_score"]
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
