"""The two hottest requests, served without Flask's per-request machinery.

``FastPath`` wraps the Flask application's WSGI callable. For
``POST /v1/predict`` (a multipart field ``image`` or a raw ``image/*`` body)
and ``POST /v2/models/<name>/infer`` it reads the body and, when every step
succeeds, answers directly: the same preprocessing, model, response body,
headers, metrics and access-log line as the Flask views, at a fraction of
the cost (no request context, routing, form parser or response object;
measured in ``bench/RESULTS.md``).

It is optimistic and never answers an error itself, with one exception:
under overload (a request that waited longer than ``QUEUE_TIMEOUT`` for a
thread, see ``worker.py``) any prediction request gets a fast 503 with
``Retry-After``, before its body is even read. Another route, an
unusual body (chunked, CORS, a multipart form it does not recognise), a
missing model, a bad image or any exception: the request goes to Flask with
its body already read, so every error, limit and edge case has exactly one
implementation, the Flask view's.
"""

from __future__ import annotations

import io
import re
import time

import orjson

from . import metrics
from .errors import error_body
from .requestlog import API_HEADERS, record, request_id_from
from .v1 import classify
from .v2 import HEADER_LENGTH, run_infer
from .worker import queue_wait

__all__ = ["FastPath", "multipart_field"]

_NAME = re.compile(rb'(?:^|;)\s*name="([^"\\]*)"', re.IGNORECASE)
_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^\s;]+))', re.IGNORECASE)
_V2_INFER = re.compile(r"^/v2/models/([^/]+)/infer$")
_STATIC_HEADERS = list(API_HEADERS.items())
_HEADER_LENGTH_ENV = "HTTP_" + HEADER_LENGTH.upper().replace("-", "_")


def multipart_field(body: bytes, boundary: bytes, field: bytes) -> bytes | None:
    """Return the content of the one part named ``field`` in a multipart body.

    Returns None for anything but a plain, well-formed form with exactly one
    such part (the caller then lets Werkzeug's full parser decide).
    """
    delimiter = b"--" + boundary
    separator = b"\r\n" + delimiter
    if body.startswith(delimiter):
        index = len(delimiter)
    else:  # a preamble (often just CRLF) may precede the first delimiter
        start = body.find(separator)
        if start < 0:
            return None
        index = start + len(separator)
    found = None
    while True:
        tail = body[index:index + 2]
        if tail == b"--":
            return found
        if tail != b"\r\n":
            return None
        header_end = body.find(b"\r\n\r\n", index + 2)
        if header_end < 0:
            return None
        next_part = body.find(separator, header_end + 4)
        if next_part < 0:
            return None
        name = None
        for line in body[index + 2:header_end].split(b"\r\n"):
            key, _, value = line.partition(b":")
            if key.strip().lower() == b"content-disposition":
                match = _NAME.search(value)
                if match is None or b"*" in value:  # RFC 2231 parameters: leave to Werkzeug
                    return None
                name = match.group(1)
        if name == field:
            if found is not None:
                return None
            found = body[header_end + 4:next_part]
        index = next_part + len(separator)


class FastPath:
    """WSGI middleware: answer the hot requests directly, pass the rest to Flask."""

    def __init__(self, app):
        self.app = app
        self.flask = app.wsgi_app
        self.settings = app.config["SETTINGS"]
        self.registry = app.extensions["registry"]
        # CORS adds per-origin headers; those requests stay with Flask.
        self.enabled = not self.settings.cors_origin_list

    def __call__(self, environ, start_response):
        if not self.enabled or environ.get("REQUEST_METHOD") != "POST":
            return self.flask(environ, start_response)
        path = environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        if path.startswith(("/v1/predict", "/v2/models/")) and self._overloaded():
            return self._shed(environ, start_response, path)
        if path == "/v1/predict" and query in ("", "include=input"):
            handler, endpoint, arg = self._predict, "v1.predict", query == "include=input"
        elif path.startswith("/v2/models/") and not query and (match := _V2_INFER.match(path)):
            handler, endpoint, arg = self._infer, "v2.infer", match.group(1)
        else:
            return self.flask(environ, start_response)
        start = time.perf_counter()
        body, length = self._drain(environ)
        if body is None:
            return self.flask(environ, start_response)  # chunked, missing or too large: Flask decides
        try:
            answer = handler(environ, body, arg) if len(body) == length else None
        except Exception:  # noqa: BLE001 - Flask redoes the work and answers (or logs) properly
            answer = None
        if answer is None:
            environ["wsgi.input"] = io.BytesIO(body)
            return self.flask(environ, start_response)
        payload, content_type, extra, version = answer
        request_id = request_id_from(environ.get("HTTP_X_REQUEST_ID"))
        headers = [("Content-Type", content_type), ("Content-Length", str(len(payload))),
                   *extra.items(), ("X-Request-ID", request_id), ("X-Model-Version", version),
                   *_STATIC_HEADERS]
        start_response("200 OK", headers)
        record(self.settings, request_id=request_id, method="POST", path=path, endpoint=endpoint,
               status=200, elapsed=time.perf_counter() - start, version=version,
               bytes_in=length)
        return [payload]

    def _drain(self, environ) -> tuple[bytes | None, int | None]:
        """Read a body of declared length within MAX_UPLOAD_BYTES: (body, declared length).

        (None, length) when there is no usable Content-Length or it is too large.
        """
        length = environ.get("CONTENT_LENGTH", "")
        if not length.isdigit():
            return None, None
        if int(length) > self.settings.max_upload_bytes:
            return None, int(length)
        return _read(environ["wsgi.input"], int(length)), int(length)

    def _overloaded(self) -> bool:
        wait = queue_wait()
        timeout = self.settings.queue_timeout
        return wait is not None and timeout > 0 and wait > timeout

    def _shed(self, environ, start_response, path: str):
        """Answer 503 at once: the request already waited longer than QUEUE_TIMEOUT."""
        # Drain the body (memory speed) so the connection stays usable: gunicorn
        # closes a connection whose large body was not read, and the reset that
        # follows can destroy this answer on its way to the client.
        _, length = self._drain(environ)
        request_id = request_id_from(environ.get("HTTP_X_REQUEST_ID"))
        payload = orjson.dumps(error_body(
            f"overloaded: the request waited more than {self.settings.queue_timeout:g} s "
            "for a worker; retry later", 503, "overloaded", request_id))
        start_response("503 Service Unavailable", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(payload))),
            ("Retry-After", "1"), ("X-Request-ID", request_id), *_STATIC_HEADERS])
        metrics.SHED.inc()
        record(self.settings, request_id=request_id, method="POST", path=path, endpoint="shed",
               status=503, elapsed=0.0, version=None, bytes_in=length)
        return [payload]

    def _predict(self, environ, body: bytes, with_input: bool):
        mimetype, _, params = environ.get("CONTENT_TYPE", "").partition(";")
        mimetype = mimetype.strip().lower()
        if mimetype == "multipart/form-data":
            match = _BOUNDARY.search(params)
            if match is None:
                return None
            data = multipart_field(body, (match.group(1) or match.group(2)).encode("latin-1"), b"image")
        elif mimetype.startswith("image/"):
            data = body
        else:
            return None
        served = self.registry.current()
        if data is None or served is None:
            return None
        payload = orjson.dumps(classify(served, data, self.settings.max_image_pixels, with_input))
        return payload, "application/json", {}, served.version

    def _infer(self, environ, body: bytes, name: str):
        served = self.registry.current()
        if served is None or name != served.name:
            return None
        payload, content_type, extra = run_infer(
            served, body, environ.get(_HEADER_LENGTH_ENV), environ.get("HTTP_CONTENT_ENCODING"),
            self.settings.max_tensor_batch)
        return payload, content_type, extra, served.version


def _read(stream, length: int) -> bytes:
    """Read ``length`` bytes (fewer only if the client stopped sending)."""
    chunks, remaining = [], length
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
