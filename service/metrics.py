"""Prometheus collectors, in one place, and the ``/metrics`` view.

Under gunicorn every worker is a process, so the collectors use
prometheus-client's multiprocess mode: ``gunicorn.conf.py`` points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before any worker imports
this module, each worker writes its values to memory-mapped files there, and
``/metrics`` merges them. Without that variable (tests, a bare ``flask run``)
the ordinary in-process registry is used.

Labels are bounded: the Flask endpoint name (not the raw path), the status
code, and the model version.
"""

from __future__ import annotations

import os

import numpy as np

from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge,
                               Histogram, generate_latest, multiprocess, values)

from . import procinfo

__all__ = [
    "ACTIVE_VERSION",
    "ANSWERS",
    "CONFIDENCE",
    "DIGIT_SCORE",
    "FEEDBACK",
    "IMAGES",
    "INK",
    "LATENCY",
    "MODEL_LOADS",
    "READ_DIGITS",
    "SHADOW_COMPARISONS",
    "SHADOW_CONFUSIONS",
    "SHADOW_DROPPED",
    "SHED",
    "answered",
    "read_done",
    "render",
    "request_done",
    "shadow_compared",
    "shadow_stats",
]

# In multiprocess mode every increment asks os.getpid() (a system call) whether
# the process has forked; procinfo.pid() is remembered and refreshed after fork,
# which keeps prometheus-client's rule (distinct values in processes that run at
# the same time) for a fraction of the cost.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    values.ValueClass = values.MultiProcessValue(process_identifier=procinfo.pid)

# Requests by endpoint, method and status, with their latency: the histogram's _count is the
# number of requests, so no separate counter writes it again.
LATENCY = Histogram("mnist_http_request_duration_seconds", "Request latency by endpoint, method and status "
                    "(_count: requests).", ["endpoint", "method", "status"],
                    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
IMAGES = Counter("mnist_image_errors_total", "Uploads rejected by preprocessing, by error code.",
                 ["code"])
READ_DIGITS = Histogram("mnist_read_digits", "Digits per number read by /v1/read (the count is reads).",
                        buckets=(1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32))
# Every image answered, once: by the version that answered, the class and the verdict (sum over
# labels for images per version, answers per class or per verdict). Drift signals: what is
# answered (this counter), how surely, and what the inputs look like (the histograms).
ANSWERS = Counter("mnist_answers_total", "Images answered, by model version, predicted class and verdict "
                  "(digit, uncertain, not_a_digit).", ["version", "predicted", "verdict"])
_SHARE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)
CONFIDENCE = Histogram("mnist_confidence", "Probability of the answered class (a sample of each request's "
                       "rows).", buckets=_SHARE_BUCKETS)
DIGIT_SCORE = Histogram("mnist_digit_score", "digit_score of the answers (a sample of each request's rows).",
                        buckets=(0.01, 0.05, *_SHARE_BUCKETS))
INK = Histogram("mnist_input_ink_fraction", "Share of the 28x28 input's pixels above half intensity (a "
                "sample of each request's rows).", buckets=(0.02, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25,
                                                            0.3, 0.4, 0.6))
DRIFT_ROWS = 16  # rows of a request observed in the histograms (a batch's are sampled evenly)
SHADOW_COMPARISONS = Counter("mnist_shadow_comparisons_total", "Shadow-version predictions compared with "
                             "the answers given, by shadow version and result (agree, disagree).",
                             ["version", "result"])
SHADOW_CONFUSIONS = Counter("mnist_shadow_confusions_total", "Disagreements of the shadow version: the class "
                            "answered and the shadow's.", ["version", "answered", "shadow"])
SHADOW_DROPPED = Counter("mnist_shadow_dropped_total", "Comparisons skipped because the shadow fell behind.")
FEEDBACK = Counter("mnist_feedback_total", "Feedback entries stored, by whether the served version "
                   "agreed with the label sent.", ["agrees"])
SHED = Counter("mnist_shed_requests_total",
               "Prediction requests answered 503 because they waited longer than QUEUE_TIMEOUT.")
MODEL_LOADS = Counter("mnist_model_loads_total", "Model version loads by result.", ["result"])
ACTIVE_VERSION = Gauge("mnist_model_active_version", "Version served by each worker process.",
                       multiprocess_mode="liveall")


# Label children by label values: ``labels()`` costs more than the increment it
# precedes, on every request. (prometheus-client keeps every child anyway.)
_request_children: dict[tuple[str, str, int], object] = {}
_answer_children: dict[tuple[str, int, str], object] = {}


def request_done(endpoint: str, method: str, status: int, elapsed: float) -> None:
    """Count one answered request and observe its latency (one histogram observation)."""
    key = (endpoint, method, status)
    child = _request_children.get(key)
    if child is None:
        child = _request_children[key] = LATENCY.labels(endpoint=endpoint, method=method, status=str(status))
    child.observe(elapsed)


def _answer_child(version: str, k: int, verdict: str):
    key = (version, k, verdict)
    child = _answer_children.get(key)
    if child is None:
        child = _answer_children[key] = ANSWERS.labels(version=version, predicted=str(k), verdict=verdict)
    return child


def answered(version: str, X: np.ndarray, classes: np.ndarray, probs: np.ndarray, scores: np.ndarray,
             verdicts: list[str]) -> None:
    """Record the images answered by ``version``: count each by (version, class, verdict) and
    observe the drift histograms on up to ``DRIFT_ROWS`` of them (evenly spaced)."""
    n = len(classes)
    if n == 1:  # one upload, the usual request: no counting by groups
        k = int(classes[0])
        _answer_child(version, k, verdicts[0]).inc()
        CONFIDENCE.observe(float(probs[0, k]))
        DIGIT_SCORE.observe(float(scores[0]))
        INK.observe(float(np.count_nonzero(X[0] > 0.5)) / X[0].size)
        return
    groups: dict[tuple[int, str], int] = {}
    for k, verdict in zip(classes.tolist(), verdicts):
        groups[k, verdict] = groups.get((k, verdict), 0) + 1
    for (k, verdict), count in groups.items():
        _answer_child(version, k, verdict).inc(count)
    rows = np.arange(n) if n <= DRIFT_ROWS else np.linspace(0, n - 1, DRIFT_ROWS).astype(int)
    confidence = probs[rows, classes[rows]]
    ink = (X[rows] > 0.5).mean(axis=1)
    for c, s, i in zip(confidence.tolist(), scores[rows].tolist(), ink.tolist()):
        CONFIDENCE.observe(c)
        DIGIT_SCORE.observe(s)
        INK.observe(i)


def shadow_compared(version: str, answered: np.ndarray, shadow: np.ndarray) -> None:
    """Count the shadow ``version``'s agreements and confusions with the classes answered."""
    agree = int((answered == shadow).sum())
    if agree:
        SHADOW_COMPARISONS.labels(version=version, result="agree").inc(agree)
    if agree < len(answered):
        SHADOW_COMPARISONS.labels(version=version, result="disagree").inc(len(answered) - agree)
        pairs, counts = np.unique(np.stack([answered, shadow], axis=1)[answered != shadow], axis=0,
                                  return_counts=True)
        for (a, b), n in zip(pairs.tolist(), counts.tolist()):
            SHADOW_CONFUSIONS.labels(version=version, answered=str(a), shadow=str(b)).inc(n)


def _registry():
    """Return the registry holding every worker's values (merged in multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def shadow_stats(version: str, top: int = 5) -> dict:
    """Return the shadow ``version``'s comparisons so far, summed over the workers:
    compared, agreed, disagreement rate and the most frequent confusions."""
    compared = agreed = 0
    confusions: dict[tuple[str, str], float] = {}
    for family in _registry().collect():
        if family.name not in ("mnist_shadow_comparisons", "mnist_shadow_confusions"):
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total") or sample.labels.get("version") != version:
                continue
            if family.name == "mnist_shadow_comparisons":
                compared += sample.value
                agreed += sample.value if sample.labels["result"] == "agree" else 0
            else:
                key = (sample.labels["answered"], sample.labels["shadow"])
                confusions[key] = confusions.get(key, 0) + sample.value
    ranked = sorted(confusions.items(), key=lambda kv: -kv[1])[:top]
    return {"version": version, "compared": int(compared), "agreed": int(agreed),
            "disagreement_rate": (compared - agreed) / compared if compared else None,
            "top_confusions": [{"answered": a, "shadow": b, "count": int(n)} for (a, b), n in ranked]}


def read_done(n_digits: int) -> None:
    """Count one number read, of ``n_digits`` digits."""
    READ_DIGITS.observe(n_digits)


def render() -> tuple[bytes, str]:
    """Return the exposition text for every worker, and its content type."""
    return generate_latest(_registry()), CONTENT_TYPE_LATEST
