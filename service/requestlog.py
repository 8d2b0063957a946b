"""Per-request bookkeeping: request id, access log line, metrics, response headers.

``before_request`` takes the caller's ``X-Request-ID`` (if it is a sane token)
or makes one, and a W3C ``traceparent`` header if it is well formed;
``after_request`` returns both (the ``traceparent`` of this server's span when
``tracing`` exports spans, else the caller's), names the model version that
answered (``X-Model-Version``), adds the security headers an API should send,
applies CORS when configured, records the Prometheus metrics and writes one
JSON access-log line, with the trace id when there is one.

It also reads whatever request body an answer left unread (a 404, 405, 401,
413 or 415 is decided before the upload is read). gunicorn's thread worker
drains at most 64 KB of it before reusing a kept-alive connection and closes
the connection after larger ones, although its answer said ``keep-alive``
(and it ignores an application's ``Connection: close``); the client's next
request on that connection then fails. Draining here, for bodies of up to
``DRAIN_FACTOR`` x ``MAX_UPLOAD_BYTES`` and for at most ``DRAIN_SECONDS``
between reads, keeps the connection usable for every upload the service
would take; a larger one is answered at once and its connection closed.
"""

from __future__ import annotations

import logging
import random
import re
import time

from flask import Flask, g, request

from . import metrics
from .logs import log_fields

__all__ = ["API_HEADERS", "init_app", "record", "request_id_from", "trace_from"]

access_log = logging.getLogger("service.access")
_bits = random.getrandbits
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# W3C Trace Context: version-traceid-parentid-flags, lower-case hex; version ff and all-zero ids are invalid.
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
DRAIN_SECONDS = 2.0  # how long an unread upload is read and discarded before answering...
DRAIN_FACTOR = 2  # ...up to this many times MAX_UPLOAD_BYTES (beyond that gunicorn closes the connection)
_CHUNK = 64 * 1024

API_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def request_id_from(incoming: str | None) -> str:
    """Return the caller's request id if it is a sane token, else a new one."""
    # An identifier, not a secret: 128 bits from the process's Mersenne Twister
    # (reseeded from the OS in every forked child) instead of a getrandom() call.
    return incoming if incoming and _REQUEST_ID.match(incoming) else "%032x" % _bits(128)


def trace_from(header: str | None) -> str | None:
    """Return a well-formed ``traceparent`` value (version 00's fields; a later version's
    extra fields are dropped), else None."""
    if not header:
        return None
    match = _TRACEPARENT.match(header.strip())
    if match is None:
        return None
    version, trace_id, parent_id, flags, extra = match.groups()
    if version == "ff" or (version == "00" and extra) or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return f"00-{trace_id}-{parent_id}-{flags}"


def record(settings, *, request_id: str, method: str, path: str, endpoint: str, status: int,
           elapsed: float, version: str | None, bytes_in: int | None, trace_id: str | None = None) -> None:
    """Count the request in the metrics and write its access-log line."""
    metrics.request_done(endpoint, method, status, elapsed)
    if settings.access_log:
        fields = {
            "request_id": request_id, "method": method, "path": path, "endpoint": endpoint,
            "status": status, "latency_ms": round(1000 * elapsed, 3), "model_version": version,
            "bytes_in": bytes_in,
        }
        if trace_id is not None:
            fields["trace_id"] = trace_id
        log_fields(access_log, "request", fields)


def _start() -> None:
    g.start = time.perf_counter()
    headers = request.headers
    g.request_id = request_id_from(headers.get("X-Request-ID"))
    g.traceparent = trace_from(headers.get("traceparent"))


def _drain_unread_body(limit: int) -> None:
    """Read and discard what is left of the request body (nothing, once a view read it).

    Not when the body announced is over ``limit`` (it is refused at once, and gunicorn
    closes the connection), nor when the client waits for ``100 Continue`` before
    sending it (it never will).
    """
    length = request.content_length
    if (not length and request.headers.get("Transfer-Encoding") is None) or (length and length > limit):
        return
    if request.headers.get("Expect", "").lower() == "100-continue":
        return
    stream = request.environ.get("wsgi.input")
    if stream is None:
        return
    deadline = time.monotonic() + DRAIN_SECONDS
    left = limit
    try:
        while left > 0 and time.monotonic() < deadline:
            chunk = stream.read(min(_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
    except Exception:  # noqa: BLE001 - a client gone or a malformed body (gunicorn raises its own
        return  # parse errors): nothing to keep, and gunicorn closes such a connection itself


CORS_HEADERS = (("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-ID, X-Client-ID, "
                                                 "traceparent, tracestate"),
                ("Access-Control-Allow-Methods", "GET, POST, PUT, OPTIONS"),
                ("Access-Control-Expose-Headers", "X-Request-ID, X-Model-Version, traceparent"),
                ("Vary", "Origin"))
# Headers no view sets: added in one step (Cache-Control only where a view has not set it).
_ALWAYS = tuple((k, v) for k, v in API_HEADERS.items() if k != "Cache-Control")


def init_app(app: Flask) -> None:
    """Register the hooks; what they need of the settings is read once, here."""
    settings = app.config["SETTINGS"]
    origins = frozenset(settings.cors_origin_list)
    any_origin = "*" in origins
    drain_limit = DRAIN_FACTOR * settings.max_upload_bytes

    def finish(response):
        _drain_unread_body(drain_limit)
        elapsed = time.perf_counter() - g.get("start", time.perf_counter())
        request_id = g.get("request_id") or request_id_from(None)
        headers = response.headers
        headers.extend(_ALWAYS)
        headers.add("X-Request-ID", request_id)
        if "Cache-Control" not in headers:
            headers.add("Cache-Control", API_HEADERS["Cache-Control"])
        traceparent = g.get("traceparent_out") or g.get("traceparent")
        if traceparent is not None:
            headers["traceparent"] = traceparent
        version = g.get("model_version")
        if version is not None:
            headers.add("X-Model-Version", version)
        if origins:
            origin = request.headers.get("Origin")
            if origin and (any_origin or origin in origins):
                headers["Access-Control-Allow-Origin"] = "*" if any_origin else origin
                headers.extend(CORS_HEADERS)
        record(settings, request_id=request_id, method=request.method, path=request.path,
               endpoint=request.endpoint or "unmatched", status=response.status_code, elapsed=elapsed,
               version=version, bytes_in=request.content_length,
               trace_id=traceparent[3:35] if traceparent is not None else None)
        return response

    app.before_request(_start)
    app.after_request(finish)
