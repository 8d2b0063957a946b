"""A gunicorn gthread worker that knows how long each request waited.

gunicorn's gthread worker hands every readable connection to a thread pool
whose queue is unbounded: under overload, requests wait longer and longer and
clients time out. ``QueueAwareWorker`` stamps each connection when it is
queued and when a thread picks it up, and exposes the difference to the
application through ``queue_wait()``. The app sheds requests that waited
longer than ``QUEUE_TIMEOUT`` with a fast 503 and ``Retry-After`` (see
``service/overload.py``), which drains the queue quickly and keeps the
latency of the requests it does serve bounded.

Selected by ``gunicorn.conf.py`` when ``WORKER_CLASS=gthread`` (the default).
It only adds bookkeeping around two methods of gunicorn's ``ThreadWorker``.
"""

from __future__ import annotations

import threading
import time

from gunicorn.workers.gthread import ThreadWorker

__all__ = ["QueueAwareWorker", "queue_wait"]

_local = threading.local()


def queue_wait() -> float | None:
    """Return seconds the current request waited for a thread (None outside this worker)."""
    return getattr(_local, "wait", None)


class QueueAwareWorker(ThreadWorker):
    """gthread worker that records each request's time in the thread-pool queue."""

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
