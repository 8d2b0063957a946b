"""A gunicorn gthread worker that knows how long each request waited.

gunicorn's gthread worker hands every readable connection to a thread pool
whose queue is unbounded: under overload, requests wait longer and longer and
clients time out. ``QueueAwareWorker`` stamps each connection when it is
queued and when a thread picks it up, and exposes the difference to the
application through ``queue_wait()``. The app sheds requests that waited
longer than ``QUEUE_TIMEOUT`` with a fast 503 and ``Retry-After`` (see
``FastPath._shed`` in ``service/fastpath.py``), which drains the queue quickly and keeps the
latency of the requests it does serve bounded.

Selected by ``gunicorn.conf.py`` when ``WORKER_CLASS=gthread`` (the default).
Besides that bookkeeping around two methods of gunicorn's ``ThreadWorker``,
it answers with ``CoalescingResponse`` (head and a small body in one write)
and formats the ``Date`` header once per second: per-request costs that
both showed in a profile of a loaded worker (bench/RESULTS.md).
"""

from __future__ import annotations

import threading
import time

from gunicorn import util
from gunicorn.http import wsgi
from gunicorn.workers.gthread import ThreadWorker

from .logs import per_second

__all__ = ["CoalescingResponse", "QueueAwareWorker", "queue_wait"]

# Status line and headers are held back and sent with the first body bytes when
# the two together are at most this long; a larger body goes out after them.
COALESCE_LIMIT = 64 * 1024

_local = threading.local()


def queue_wait() -> float | None:
    """Return seconds the current request waited for a thread (None outside this worker)."""
    return getattr(_local, "wait", None)


class CoalescingResponse(wsgi.Response):
    """gunicorn's response, writing the head and a small body in one ``sendall``.

    gunicorn sends the status line and headers with one system call and the
    body with another: two TCP segments for the client to read and two
    syscalls for the worker, on every request. Holding the head until the
    first body bytes (or ``close()``) makes a typical JSON answer one segment.
    Framing, lengths and HEAD/204 handling stay gunicorn's.
    """

    _held = b""  # the head, built but not yet written
    _hold = True

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None and self._held:
            # Nothing was sent: the error response replaces the head, headers included
            # (gunicorn would append them to the first response's).
            self._held, self.headers, self.response_length, self.chunked = b"", [], None, False
        return super().start_response(status, headers, exc_info)

    def send_headers(self):
        # headers_sent stays False until the head is really written, so gunicorn
        # still answers 500 if the application fails after start_response.
        if self.headers_sent:
            return
        if self._held:
            if not self._hold:
                self._flush_head()
            return
        if not self._hold:
            return super().send_headers()
        head = self.default_headers()
        head.extend(["%s: %s\r\n" % (k, v) for k, v in self.headers])
        self._held = ("%s\r\n" % "".join(head)).encode("latin-1")

    def _flush_head(self):
        if self._held:
            held, self._held = self._held, b""
            util.write(self.sock, held)
            self.headers_sent = True

    def _emit_body(self, data):
        if self._held and not self.chunked and len(self._held) + len(data) <= COALESCE_LIMIT:
            held, self._held = self._held, b""
            util.write(self.sock, held + data)
            self.headers_sent = True
            return
        self._flush_head()
        super()._emit_body(data)

    def sendfile(self, respiter):
        self._hold = False  # gunicorn writes the head itself before sendfile()
        return super().sendfile(respiter)

    def close(self):
        self._hold = False  # from here on the head goes out at once
        self._flush_head()
        super().close()


_gunicorn_http_date = util.http_date
_current_date = per_second(_gunicorn_http_date)


def http_date(timestamp=None) -> str:
    """gunicorn's ``http_date``, formatted once per second for the current time.

    The Date header has one-second resolution; formatting it with
    ``email.utils`` on every response cost 2% of a small prediction.
    """
    if timestamp is not None:
        return _gunicorn_http_date(timestamp)
    return _current_date(int(time.time()))


class QueueAwareWorker(ThreadWorker):
    """gthread worker that records each request's time in the thread-pool queue.

    It also answers with ``CoalescingResponse`` (one ``sendall`` per small
    response instead of two).
    """

    def init_process(self):
        # wsgi.create() builds the global Response unless told otherwise; this
        # process only ever runs this worker.
        wsgi.Response = CoalescingResponse
        util.http_date = http_date
        super().init_process()

    def enqueue_req(self, conn):
        conn.mnist_enqueued = time.monotonic()
        super().enqueue_req(conn)

    def handle(self, conn):
        # The pick-up time, before any wait for the client's data: only the
        # time spent queued behind other requests counts as overload.
        conn.mnist_started = time.monotonic()
        return super().handle(conn)

    def handle_request(self, req, conn):
        enqueued = getattr(conn, "mnist_enqueued", None)
        started = getattr(conn, "mnist_started", None)
        _local.wait = started - enqueued if enqueued is not None and started is not None else None
        try:
            return super().handle_request(req, conn)
        finally:
            _local.wait = None
