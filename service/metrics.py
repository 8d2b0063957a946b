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

from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge,
                               Histogram, generate_latest, multiprocess, values)

from . import procinfo

__all__ = [
    "ACTIVE_VERSION",
    "IMAGES",
    "LATENCY",
    "MODEL_LOADS",
    "PREDICTIONS",
    "REQUESTS",
    "SHED",
    "predictions_done",
    "render",
    "request_done",
]

# In multiprocess mode every increment asks os.getpid() (a system call) whether
# the process has forked; procinfo.pid() is remembered and refreshed after fork,
# which keeps prometheus-client's rule (distinct values in processes that run at
# the same time) for a fraction of the cost.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    values.ValueClass = values.MultiProcessValue(process_identifier=procinfo.pid)

REQUESTS = Counter("mnist_http_requests_total", "HTTP requests by endpoint, method and status.",
                   ["endpoint", "method", "status"])
LATENCY = Histogram("mnist_http_request_duration_seconds", "Request latency by endpoint.",
                    ["endpoint"],
                    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
PREDICTIONS = Counter("mnist_predictions_total", "Images classified, by model version.", ["version"])
IMAGES = Counter("mnist_image_errors_total", "Uploads rejected by preprocessing, by error code.",
                 ["code"])
SHED = Counter("mnist_shed_requests_total",
               "Prediction requests answered 503 because they waited longer than QUEUE_TIMEOUT.")
MODEL_LOADS = Counter("mnist_model_loads_total", "Model version loads by result.", ["result"])
ACTIVE_VERSION = Gauge("mnist_model_active_version", "Version served by each worker process.",
                       multiprocess_mode="liveall")


# Label children by label values: ``labels()`` costs more than the increment it
# precedes, on every request. (prometheus-client keeps every child anyway.)
_request_children: dict[tuple[str, str, int], tuple] = {}
_prediction_children: dict[str, object] = {}


def request_done(endpoint: str, method: str, status: int, elapsed: float) -> None:
    """Count one answered request and observe its latency."""
    key = (endpoint, method, status)
    children = _request_children.get(key)
    if children is None:
        children = _request_children[key] = (
            REQUESTS.labels(endpoint=endpoint, method=method, status=str(status)),
            LATENCY.labels(endpoint=endpoint))
    children[0].inc()
    children[1].observe(elapsed)


def predictions_done(version: str, n: int = 1) -> None:
    """Count ``n`` images classified by model ``version``."""
    child = _prediction_children.get(version)
    if child is None:
        child = _prediction_children[version] = PREDICTIONS.labels(version=version)
    child.inc(n)


def render() -> tuple[bytes, str]:
    """Return the exposition text for every worker, and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
