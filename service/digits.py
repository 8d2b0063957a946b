"""The data plane: uploads or tensors in, digits and their probabilities out.

Between the views (HTTP) and the model: the one place that turns what a
request carries into answers, for every route that classifies:

    classify(served, data, ...)          one upload -> a prediction body (/v1/predict, the page)
    classify_batch(served, uploads, ...) many uploads -> bodies or per-image errors (/v1/predict/batch)
    read_number(served, data, ...)       one upload of a whole number -> its digits (/v1/read, ``numbers``)
    record_feedback(served, data, ...)   one upload and its right label -> the feedback store (/v1/feedback)
    infer(served, X)                     a V2 tensor -> its output tensors (/v2/.../infer)

Every answer is judged once: ``assess`` runs the version's predictor (one
forward pass) and gives each input its verdict with the thresholds the
version was loaded with (``ServedModel.thresholds``), and ``_answered``
records what was answered, in one metrics call (``metrics.answered``: the
counter by version, class and verdict, and the drift histograms), and
offers the inputs to a shadow version (``shadow``). ``/v1/read`` assesses
every candidate digit and records only the digits it answers. Bodies are
built by ``schemas``; decoding and normalising an upload is
``preprocessing``'s; the V2 wire format is ``tensors``'.
"""

from __future__ import annotations

import numpy as np

from imaging import numbers
from imaging.decode import ImageError
from imaging.preprocessing import preprocess
from model.data import scale_pixels
from model.feedback import FeedbackStore

from . import metrics, shadow
from .registry import ServedModel
from .schemas import batch_error_item, prediction_body, read_body

__all__ = ["assess", "classify", "classify_batch", "feedback_summary", "infer", "read_number",
           "record_feedback"]


def assess(served: ServedModel, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Return (probabilities (n, k), digit scores (n,), verdicts) for float32 inputs (n, 784):
    one forward pass, nothing recorded."""
    return served.predictor.assess(X, served.thresholds)


def _answered(served: ServedModel, X: np.ndarray, probs: np.ndarray, scores: np.ndarray,
              said: list[str]) -> np.ndarray:
    """Record answers given (one metrics call; the shadow version is offered the same inputs,
    to run later on its own thread); return the classes answered."""
    classes = probs.argmax(axis=1)
    metrics.answered(served.version, X, classes, probs, scores, said)
    shadow.offer(served, X, classes)
    return classes


def _judge(served: ServedModel, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """Return ``assess``'s answers for inputs that are all answered, recorded, and the classes."""
    probs, scores, said = assess(served, X)
    return probs, scores, said, _answered(served, X, probs, scores, said)


def classify(served: ServedModel, data: bytes, settings, with_input: bool = False) -> dict:
    """Return the prediction body for one encoded image.

    Raises ``ImageError`` (its HTTP status attached) for an upload that is not
    a usable image.
    """
    digit = preprocess(data, settings.max_image_pixels)
    probs, scores, said, _ = _judge(served, scale_pixels(digit[None]))
    return prediction_body(probs[0], served.labels, served.ref, float(scores[0]), said[0],
                           digit if with_input else None)


def classify_batch(served: ServedModel, uploads: list[tuple[bytes, str | None]], settings,
                   with_input: bool = False) -> list[dict]:
    """Return one body per upload, in order: a prediction, or the error of an image that
    failed alone (the others are still classified, as one batch)."""
    items: list[dict | None] = [None] * len(uploads)
    good, digits = [], []
    for i, (data, filename) in enumerate(uploads):
        try:
            digits.append(preprocess(data, settings.max_image_pixels))
            good.append(i)
        except ImageError as exc:
            metrics.IMAGES.labels(code=exc.code).inc()
            items[i] = batch_error_item(i, filename, str(exc), exc.code, exc.status)
    if digits:
        probs, scores, said, _ = _judge(served, scale_pixels(np.stack(digits)))
        for row, score, v, i, digit in zip(probs, scores.tolist(), said, good, digits):
            items[i] = prediction_body(row, served.labels, served.ref, score, v, digit if with_input else None)
    return items


def read_number(served: ServedModel, data: bytes, settings, with_input: bool = False) -> dict:
    """Return the read body for one encoded image of a whole number (``numbers.read``).

    Raises ``ImageError`` (its HTTP status attached) for an upload that is not a
    usable image, holds no digit, or holds more than ``MAX_READ_DIGITS``.
    """
    image, ink = numbers.read_image(data, settings.max_image_pixels)
    reading = numbers.read(image, ink, lambda X: assess(served, X), served.labels, settings.max_read_digits)
    inputs, probs, scores, said = reading.answered
    _answered(served, scale_pixels(inputs), probs, scores, said)
    metrics.read_done(len(said))
    return read_body(reading, served.ref, with_input)


SUMMARY_ENTRIES = 10_000  # GET /v1/feedback measures the active version on the newest this many


def record_feedback(served: ServedModel, data: bytes, label: int, answered: int | None, request_id: str | None,
                    settings, store: FeedbackStore) -> dict:
    """Store the right ``label`` for an uploaded image: the 28x28 input the model sees, with what
    the served version predicts for it now. Raises ``ImageError`` for an unusable upload and
    ``FeedbackFull`` at the store's bound."""
    digit = preprocess(data, settings.max_image_pixels)
    predicted = int(served.predictor(scale_pixels(digit[None]))[0].argmax())  # a record, not an answer
    entry_id = store.add(digit, label, served.version, predicted, answered, request_id)
    metrics.FEEDBACK.labels(agrees=str(predicted == label).lower()).inc()
    return {"id": entry_id, "label": label, "version": served.version, "predicted": predicted}


def feedback_summary(served: ServedModel, store: FeedbackStore) -> dict:
    """Return the stored feedback's size, labels, and the served version's accuracy on the newest
    ``SUMMARY_ENTRIES`` entries."""
    count, size = store.usage()
    entries = store.entries(newest=SUMMARY_ENTRIES)
    per_label = {label: 0 for label in served.labels}
    for e in entries:
        per_label[served.labels[e.label]] += 1
    accuracy = None
    if entries:
        probs, _ = served.predictor(scale_pixels(np.stack([e.image for e in entries])))
        accuracy = float((probs.argmax(axis=1) == np.array([e.label for e in entries])).mean())
    return {"count": count, "bytes": size, "summarised": len(entries), "per_label": per_label,
            "model": served.ref, "accuracy": accuracy}


def infer(served: ServedModel, X: np.ndarray) -> dict[str, np.ndarray]:
    """Return the output tensors for float32 (N, 784) pixels: probabilities, classes and digit scores."""
    probs, scores, _, classes = _judge(served, X)
    return {"probabilities": probs, "predicted_class": classes.astype("<i8"),
            "digit_score": np.ascontiguousarray(scores, dtype="<f4")}
