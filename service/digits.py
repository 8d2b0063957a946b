"""The data plane: uploads or tensors in, digits and their probabilities out.

Between the views (HTTP) and the model: the one place that turns what a
request carries into answers, for every route that classifies:

    classify(served, data, ...)          one upload -> a prediction body (/v1/predict, the page)
    classify_batch(served, uploads, ...) many uploads -> bodies or per-image errors (/v1/predict/batch)
    infer(served, X)                     a V2 tensor -> its output tensors (/v2/.../infer)

Each counts the images it classified (``metrics.predictions_done``), once,
for answers given. Bodies are built by ``schemas``; decoding and normalising
an upload is ``preprocessing``'s; the V2 wire format is ``tensors``'.
"""

from __future__ import annotations

import numpy as np

from model.data import scale_pixels

from . import metrics
from .preprocessing import ImageError, preprocess
from .registry import ServedModel
from .schemas import batch_error_item, prediction_body

__all__ = ["classify", "classify_batch", "infer", "model_ref"]


def model_ref(served: ServedModel) -> dict:
    """Return the ``{"name", "version"}`` an answer names its model by."""
    return {"name": served.name, "version": served.version}


def classify(served: ServedModel, data: bytes, max_pixels: int, with_input: bool = False) -> dict:
    """Return the prediction body for one encoded image.

    Raises ``ImageError`` (its HTTP status attached) for an upload that is not
    a usable image.
    """
    digit = preprocess(data, max_pixels)
    probs = served.predict_proba(scale_pixels(digit[None]))
    body = prediction_body(probs[0], served.labels, model_ref(served), digit if with_input else None)
    metrics.predictions_done(served.version)
    return body


def classify_batch(served: ServedModel, uploads: list[tuple[bytes, str | None]], max_pixels: int,
                   with_input: bool = False) -> list[dict]:
    """Return one body per upload, in order: a prediction, or the error of an image that
    failed alone (the others are still classified, as one batch)."""
    items: list[dict | None] = [None] * len(uploads)
    good, digits = [], []
    for i, (data, filename) in enumerate(uploads):
        try:
            digits.append(preprocess(data, max_pixels))
            good.append(i)
        except ImageError as exc:
            metrics.IMAGES.labels(code=exc.code).inc()
            items[i] = batch_error_item(i, filename, str(exc), exc.code, exc.status)
    if digits:
        ref = model_ref(served)
        probs = served.predict_proba(scale_pixels(np.stack(digits)))
        for row, i, digit in zip(probs, good, digits):
            items[i] = prediction_body(row, served.labels, ref, digit if with_input else None)
        metrics.predictions_done(served.version, len(digits))
    return items


def infer(served: ServedModel, X: np.ndarray) -> dict[str, np.ndarray]:
    """Return the output tensors for float32 (N, 784) pixels: probabilities and classes."""
    probs = served.predict_proba(X)
    metrics.predictions_done(served.version, len(probs))
    return {"probabilities": probs, "predicted_class": probs.argmax(axis=1).astype("<i8")}
