"""The data plane: uploads or tensors in, digits and their probabilities out.

Between the views (HTTP) and the model: the one place that turns what a
request carries into answers, for every route that classifies:

    classify(served, data, ...)          one upload -> a prediction body (/v1/predict, the page)
    classify_batch(served, uploads, ...) many uploads -> bodies or per-image errors (/v1/predict/batch)
    read_number(served, data, ...)       one upload of a whole number -> its digits (/v1/read, ``numbers``)
    record_feedback(served, data, ...)   one upload and its right label -> the feedback store (/v1/feedback)
    infer(served, X, ...)                a V2 tensor -> its output tensors (/v2/.../infer)

Every answer carries a ``digit_score`` and a verdict (``model.ood``): the
model's own thresholds, or the settings' (NOT_A_DIGIT_BELOW,
UNCERTAIN_BELOW). Every answer's forward pass happens in ``_judge``, which also
counts the drift signals and offers the inputs to a shadow version (``shadow``). Each function counts the images it classified and their
verdicts (``metrics.predictions_done``), once, for answers given. Bodies are
built by ``schemas``; decoding and normalising an upload is
``preprocessing``'s; the V2 wire format is ``tensors``'.
"""

from __future__ import annotations

import numpy as np

from model.data import scale_pixels
from model.feedback import FeedbackStore
from model.ood import CONFIDENCE_THRESHOLDS, Verdicts, verdicts

from . import metrics, numbers, shadow
from .preprocessing import ImageError, preprocess
from .registry import ServedModel
from .schemas import batch_error_item, prediction_body, read_body

__all__ = ["classify", "classify_batch", "feedback_summary", "infer", "model_ref", "read_number",
           "record_feedback", "scoring", "thresholds"]


def model_ref(served: ServedModel) -> dict:
    """Return the ``{"name", "version"}`` an answer names its model by."""
    return {"name": served.name, "version": served.version}


def thresholds(served: ServedModel, settings) -> Verdicts:
    """Return the verdict's thresholds in effect: the settings', else the model's, else defaults."""
    ood = served.metadata.ood
    own = (Verdicts(ood.thresholds.not_a_digit_below, ood.thresholds.uncertain_below) if ood
           else CONFIDENCE_THRESHOLDS)
    return Verdicts(
        own.not_a_digit_below if settings.not_a_digit_below is None else settings.not_a_digit_below,
        own.uncertain_below if settings.uncertain_below is None else settings.uncertain_below)


def scoring(served: ServedModel, settings) -> dict:
    """Return how the model scores digit-ness, for /v1/models."""
    ood = served.metadata.ood
    effective = thresholds(served, settings)
    return {"method": ood.method if ood else "confidence",
            "not_a_digit_below": effective.not_a_digit_below, "uncertain_below": effective.uncertain_below,
            "model_thresholds": ood.thresholds.model_dump() if ood else None}


def _judge(served: ServedModel, settings, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Return (probabilities, digit scores, verdicts) for float32 inputs (n, 784): one forward
    pass. Every answer passes here: the drift signals are counted and the shadow version, if
    any, is offered the same inputs (it runs later, on its own thread)."""
    probs, scores = served.predict(X)
    top = probs.max(axis=1)
    if scores is None:
        scores = top
    metrics.answers_given(X, probs, scores)
    shadow.offer(served, X, probs.argmax(axis=1))
    return probs, scores, verdicts(scores, top, thresholds(served, settings))


def classify(served: ServedModel, data: bytes, settings, with_input: bool = False) -> dict:
    """Return the prediction body for one encoded image.

    Raises ``ImageError`` (its HTTP status attached) for an upload that is not
    a usable image.
    """
    digit = preprocess(data, settings.max_image_pixels)
    probs, scores, verdict = _judge(served, settings, scale_pixels(digit[None]))
    body = prediction_body(probs[0], served.labels, model_ref(served), float(scores[0]), verdict[0],
                           digit if with_input else None)
    metrics.predictions_done(served.version, 1, verdict)
    return body


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
        ref = model_ref(served)
        probs, scores, verdict = _judge(served, settings, scale_pixels(np.stack(digits)))
        for row, score, v, i, digit in zip(probs, scores.tolist(), verdict, good, digits):
            items[i] = prediction_body(row, served.labels, ref, score, v, digit if with_input else None)
        metrics.predictions_done(served.version, len(digits), verdict)
    return items


def read_number(served: ServedModel, data: bytes, settings, with_input: bool = False) -> dict:
    """Return the read body for one encoded image of a whole number (``numbers.read``).

    Raises ``ImageError`` (its HTTP status attached) for an upload that is not a
    usable image, holds no digit, or holds more than ``MAX_READ_DIGITS``.
    """
    image, ink = numbers.read_image(data, settings.max_image_pixels)
    reading = numbers.read(image, ink, served.predict, served.labels, thresholds(served, settings),
                           settings.max_read_digits)
    said = [d["verdict"] for d in reading.digits]
    metrics.predictions_done(served.version, len(said), said)
    metrics.read_done(len(said))
    return read_body(reading, model_ref(served), with_input)


SUMMARY_ENTRIES = 10_000  # GET /v1/feedback measures the active version on the newest this many


def record_feedback(served: ServedModel, data: bytes, label: int, answered: int | None, request_id: str | None,
                    settings, store: FeedbackStore) -> dict:
    """Store the right ``label`` for an uploaded image: the 28x28 input the model sees, with what
    the served version predicts for it now. Raises ``ImageError`` for an unusable upload and
    ``FeedbackFull`` at the store's bound."""
    digit = preprocess(data, settings.max_image_pixels)
    predicted = int(served.predict(scale_pixels(digit[None]))[0].argmax())  # a record, not an answer
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
        X = scale_pixels(np.stack([e.image for e in entries]))
        probs = np.concatenate([served.predict(X[i:i + 1024])[0] for i in range(0, len(X), 1024)])
        accuracy = float((probs.argmax(axis=1) == np.array([e.label for e in entries])).mean())
    return {"count": count, "bytes": size, "summarised": len(entries), "per_label": per_label,
            "model": model_ref(served), "accuracy": accuracy}


def infer(served: ServedModel, X: np.ndarray, settings) -> dict[str, np.ndarray]:
    """Return the output tensors for float32 (N, 784) pixels: probabilities, classes and digit scores."""
    probs, scores, verdict = _judge(served, settings, X)
    metrics.predictions_done(served.version, len(probs), verdict)
    return {"probabilities": probs, "predicted_class": probs.argmax(axis=1).astype("<i8"),
            "digit_score": np.ascontiguousarray(scores, dtype="<f4")}
