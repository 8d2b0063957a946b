"""Admission control: a prediction that waited too long gets a fast 503.

Under overload requests queue up: in a proxy, in the kernel's listen backlog,
in gunicorn's thread pool. Serving one whose client has probably given up
wastes the capacity the next ones need; answering it at once with ``503`` and
``Retry-After`` drains the queue quickly and keeps the latency of the
requests that are served bounded.

How long a request waited is measured from when it reached the edge: the
``X-Request-Start`` header that the proxy in front sets as it forwards the
request (deploy/nginx.conf: ``proxy_set_header X-Request-Start "t=${msec}"``,
the convention of Heroku's router and of APM agents). Accepted values are
``t=<seconds since the epoch, with a fraction>``, or the same in
milliseconds or microseconds (``t=`` optional). A request that arrives
directly, without the header, cannot say how long it waited and is always
admitted: run the service behind the proxy to shed load.

One ``before_request`` hook, for every prediction route, whatever the worker
class and whether CORS is on: it runs before the body is read, and its 503
goes through the same ``after_request`` bookkeeping (request id, headers,
access log, metrics) as every other answer.
"""

from __future__ import annotations

import time

from flask import Flask, current_app, request

from . import metrics
from .errors import ServiceError

__all__ = ["Overloaded", "PREDICTION_ENDPOINTS", "init_app", "waited"]

# The routes that do inference work: the ones worth shedding.
PREDICTION_ENDPOINTS = frozenset({"v1.predict", "v1.predict_batch", "v1.read_number", "v2.infer"})
HEADER = "X-Request-Start"
RETRY_AFTER = "1"


class Overloaded(ServiceError):
    status_code = 503
    code = "overloaded"

    def __init__(self, waited_s: float, limit: float):
        super().__init__(f"the server is overloaded: this request waited {waited_s:.2f} s for a worker "
                         f"(QUEUE_TIMEOUT is {limit:g} s); retry shortly",
                         headers={"Retry-After": RETRY_AFTER})


def waited(header: str | None, now: float) -> float | None:
    """Return the seconds since the request's ``X-Request-Start`` (None if absent or unreadable).

    The unit is told by magnitude: seconds, milliseconds or microseconds since the epoch.
    """
    if not header:
        return None
    text = header[2:] if header.startswith("t=") else header
    try:
        stamp = float(text)
    except ValueError:
        return None
    for scale in (1.0, 1e3, 1e6):  # a timestamp of 2001-2286 in seconds is 1e9..1e10
        if stamp < 1e10 * scale:
            return now - stamp / scale
    return None


def _admit() -> None:
    limit = current_app.config["SETTINGS"].queue_timeout
    if not limit or request.endpoint not in PREDICTION_ENDPOINTS:
        return
    wait = waited(request.headers.get(HEADER), time.time())
    if wait is not None and wait > limit:
        metrics.SHED.inc()
        raise Overloaded(wait, limit)


def init_app(app: Flask) -> None:
    app.before_request(_admit)
