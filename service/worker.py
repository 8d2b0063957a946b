"""A gunicorn gthread worker that knows how long each request waited, and
serves requests that have fully arrived without a thread hand-off.

gunicorn's gthread worker hands every readable connection to a thread pool
whose queue is unbounded: under overload, requests wait longer and longer and
clients time out. ``QueueAwareWorker`` stamps each connection when it is
queued and when a thread picks it up, and exposes the difference to the
application through ``queue_wait()``. The app sheds requests that waited
longer than ``QUEUE_TIMEOUT`` with a fast 503 and ``Retry-After`` (see
``FastPath._shed`` in ``service/fastpath.py``), which drains the queue quickly and keeps the
latency of the requests it does serve bounded.

A kept-alive connection whose next request is already complete in the
socket's receive queue (head and declared body, see ``buffered_request``) is
served by the event-loop thread itself: reading it cannot block, and the
pool round trip (queue, thread wake-up, a pipe write to hand the connection
back) cost more than a small prediction's own work (bench/RESULTS.md).
Everything else (a new connection, a partial or chunked body, a client
waiting for ``100 Continue``, TLS, HTTP/2) goes to the thread pool as before.
While a request is served inline its socket has kernel send and receive
timeouts (``INLINE_IO_TIMEOUT``), so a client that stops reading cannot
hold the event loop.

Selected by ``gunicorn.conf.py`` when ``WORKER_CLASS=gthread`` (the default).
Besides that bookkeeping around a few methods of gunicorn's ``ThreadWorker``,
it answers with ``CoalescingResponse`` (head and a small body in one write)
and formats the ``Date`` header once per second: per-request costs that
both showed in a profile of a loaded worker (bench/RESULTS.md).
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import re
import socket
import struct
import termios
import threading
import time
from concurrent import futures

from gunicorn import util
from gunicorn.http import wsgi
from gunicorn.workers.gthread import ThreadWorker

from .logs import per_second

__all__ = ["CoalescingResponse", "QueueAwareWorker", "buffered_request", "queue_wait", "release_slot"]

# Status line and headers are held back and sent with the first body bytes when
# the two together are at most this long; a larger body goes out after them.
COALESCE_LIMIT = 64 * 1024

# A request served by the event-loop thread: how long one send or receive may
# stall it (the kernel's SO_SNDTIMEO / SO_RCVTIMEO; the worker's heartbeat
# timeout is 30 s), and how much of the head it looks at to decide.
INLINE_IO_TIMEOUT = 5.0
INLINE_HEAD_LIMIT = 8192
# Connections accepted per turn of the loop after a turn longer than
# ACCEPT_BURST_AFTER seconds (otherwise one, as gthread does).
ACCEPT_BURST = 16
ACCEPT_BURST_AFTER = 0.01
# A worker holding more than one connection above the least busy worker stops
# accepting for this long after an accept, so the others take the next ones.
ACCEPT_PAUSE = 0.005

_local = threading.local()
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d{1,15})[ \t]*\r\n", re.IGNORECASE)
# Heads that need more than bytes already received: a chunked body, a client
# waiting for "100 Continue" before it sends the body, a protocol upgrade.
_NOT_INLINE = re.compile(rb"\r\n(?:transfer-encoding|expect|upgrade|http2-settings)[ \t]*:",
                         re.IGNORECASE)
_PEEK = socket.MSG_PEEK | socket.MSG_DONTWAIT
_INT = struct.Struct("i")
_COUNT = bytes(_INT.size)


def buffered_request(sock: socket.socket, buffered: bytes = b"") -> bool:
    """Whether ``buffered`` (bytes already read from ``sock``) and ``sock``'s
    receive queue hold a whole HTTP/1.x request.

    That is a complete head without transfer coding, expectation or upgrade,
    and as many bytes after it as its Content-Length (none without one).
    Nothing is consumed: ``FIONREAD`` counts the queued bytes and the head is
    read with ``MSG_PEEK``. A misjudged request is still parsed by gunicorn;
    at worst it waits for bytes that do not come, bounded by the timeouts.
    """
    try:
        queued = _INT.unpack(fcntl.ioctl(sock.fileno(), termios.FIONREAD, _COUNT))[0]
        if len(buffered) + queued < 16:
            return False
        head = buffered[:INLINE_HEAD_LIMIT]
        if queued and len(head) < INLINE_HEAD_LIMIT:
            head += sock.recv(min(queued, INLINE_HEAD_LIMIT - len(head)), _PEEK)
    except (OSError, ValueError):  # closed, reset, or already detached
        return False
    end = head.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = head[:end + 2]
    if _NOT_INLINE.search(head):
        return False
    match = _CONTENT_LENGTH.search(head)
    return len(buffered) + queued >= end + 4 + (int(match.group(1)) if match else 0)


def _io_timeout(sock: socket.socket, seconds: float) -> None:
    """Set the kernel's send and receive timeouts of ``sock`` (0: none)."""
    value = struct.pack("ll", int(seconds), int(seconds % 1 * 1e6))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)


def queue_wait() -> float | None:
    """Return seconds the current request waited for a thread (None outside this worker)."""
    return getattr(_local, "wait", None)


# Response header pairs that passed gunicorn's checks unchanged and without side
# effects (not Content-Length, not hop-by-hop): the same pair is appended as is
# next time. Filled by the first answers (the fixed API headers, content types);
# bounded, as per-request values (request ids) pass through it too.
_PLAIN_HEADERS: set[tuple[str, str]] = set()
PLAIN_HEADERS_MAX = 256


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

    def process_headers(self, headers):
        # gunicorn validates every header on every response (two regular
        # expressions and a few string operations each): most of them are the
        # same few pairs every time.
        plain = _PLAIN_HEADERS
        for pair in headers:
            if type(pair) is tuple and pair in plain:
                self.headers.append(pair)
                continue
            before = len(self.headers)
            super().process_headers((pair,))
            if (len(plain) < PLAIN_HEADERS_MAX and type(pair) is tuple
                    and len(self.headers) == before + 1 and self.headers[-1] == pair
                    and pair[0].lower() != "content-length" and not util.is_hoppish(pair[0])):
                plain.add(pair)

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


# Open connections per worker, shared by all of them: an anonymous mapping
# created in gunicorn's master (which imports this module to find the worker
# class) and inherited by every forked worker. Each worker owns one slot of
# (worker age, connections); the master assigns it before the fork and frees it
# when the worker exits (``release_slot``, gunicorn.conf.py's child_exit).
SLOTS = 132  # WORKERS is at most 64; twice that while a reload replaces them
_SLOT = struct.Struct("qq")
_TABLE = struct.Struct(f"{2 * SLOTS}q")
_table = mmap.mmap(-1, _TABLE.size)


def _claim_slot(age: int) -> int | None:
    for slot in range(SLOTS):
        if _SLOT.unpack_from(_table, slot * _SLOT.size)[0] == 0:
            _SLOT.pack_into(_table, slot * _SLOT.size, age, 0)
            return slot
    return None  # more live workers than slots: this one does not take part


def release_slot(worker) -> None:
    """Free the exited ``worker``'s slot (called in the master)."""
    slot = getattr(worker, "mnist_slot", None)
    if slot is not None and _SLOT.unpack_from(_table, slot * _SLOT.size)[0] == worker.age:
        _SLOT.pack_into(_table, slot * _SLOT.size, 0, 0)


def _least_connections() -> int:
    """The fewest open connections any live worker holds."""
    values = _TABLE.unpack_from(_table)
    return min((conns for age, conns in zip(values[0::2], values[1::2]) if age), default=0)


class QueueAwareWorker(ThreadWorker):
    """gthread worker that records each request's time in the thread-pool queue
    and serves fully arrived requests on kept-alive connections inline.

    It also answers with ``CoalescingResponse`` (one ``sendall`` per small
    response instead of two).
    """

    _events_at = 0.0  # when the poller last returned: inline requests wait from there
    _last_turn = 0.0  # seconds the previous turn of the loop spent on its events
    _accept_paused_until = 0.0  # monotonic time; 0: not paused
    _serving_inline = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.mnist_slot = _claim_slot(self.age)  # in the master, before the fork
        self._published = -1
        # gthread closes a connection after its answer when worker_connections -
        # threads others are idle, reserving a slot per thread. Served inline, a
        # request needs no thread, and with that reserve a worker holding all its
        # connections would close one on every answer. The number of connections
        # is still capped at worker_connections (accepting stops there).
        self.max_keepalived = self.worker_connections

    def init_process(self):
        # wsgi.create() builds the global Response unless told otherwise; this
        # process only ever runs this worker.
        wsgi.Response = CoalescingResponse
        util.http_date = http_date
        super().init_process()

    def _publish(self) -> None:
        """Write this worker's connection count to its shared slot (if it changed)."""
        if self.mnist_slot is not None and self.nr_conns != self._published:
            self._published = self.nr_conns
            _SLOT.pack_into(_table, self.mnist_slot * _SLOT.size, self.age, self.nr_conns)

    def wait_for_and_dispatch_events(self, timeout):
        self._publish()
        if self._accept_paused_until:
            remaining = self._accept_paused_until - time.monotonic()
            if remaining > 0:
                timeout = min(timeout, remaining)
            else:
                self._accept_paused_until = 0.0
                if self.alive:
                    self.set_accept_enabled(self.nr_conns < self.worker_connections)
        try:
            if self._events_at:
                self._last_turn = time.monotonic() - self._events_at
            events = self.poller.select(timeout)
            self._events_at = time.monotonic()
            for key, _ in events:
                key.data(key.fileobj)
        except OSError as e:
            if e.errno != errno.EINTR:
                raise

    def set_accept_enabled(self, enabled):
        if enabled and self._accept_paused_until:
            enabled = False  # wait_for_and_dispatch_events() resumes when the pause is over
        super().set_accept_enabled(enabled)

    def accept(self, listener):
        # gthread accepts one connection per turn of the loop. While turns are
        # short that is kept. Once turns are long (a loop busy serving), one per
        # turn left clients that connected in a burst waiting seconds in the
        # kernel's queue: then take up to ACCEPT_BURST at once.
        burst = ACCEPT_BURST if self._last_turn > ACCEPT_BURST_AFTER else 1
        for _ in range(burst):
            accepted = self.nr_conns
            if accepted >= self.worker_connections:
                return
            super().accept(listener)
            if self.nr_conns == accepted:  # nothing more waiting (or an error, logged)
                return
        self._publish()
        if burst == 1 and self.mnist_slot is not None and self.nr_conns > _least_connections() + 1:
            # All workers race for each new connection, and one that keeps winning
            # ends up serving a whole burst of kept-alive clients (wrk's 8 went to
            # one worker in some runs) while the others idle; a worker serves its
            # complete requests one at a time. So a worker ahead of the least busy
            # one by more than a connection lets the others take the next ones.
            # The least busy worker never pauses: accepting is never slowed down.
            self._accept_paused_until = time.monotonic() + ACCEPT_PAUSE
            self.set_accept_enabled(False)

    def enqueue_req(self, conn):
        if self._serving_inline:
            # finish_request() found pipelined bytes read ahead: serve them on the
            # next turn of the loop, after the connections already waiting.
            self.method_queue.defer(self.enqueue_req, conn)
            return
        if self._can_inline(conn):
            self._serve_inline(conn)
            return
        if getattr(conn, "mnist_bounded", False):
            # The pool thread reads and writes without the inline bounds, as gthread does.
            _io_timeout(conn.sock, 0)
            conn.mnist_bounded = False
        conn.mnist_enqueued = time.monotonic()
        super().enqueue_req(conn)

    def _can_inline(self, conn) -> bool:
        # Only a kept-alive HTTP/1.x connection in plain TCP.
        return (conn.initialized and not conn.is_http2 and not self.cfg.is_ssl
                and conn.parser is not None
                and buffered_request(conn.sock, conn.parser.unreader.buf.getvalue()))

    def _serve_inline(self, conn):
        """Serve the connection's complete request on this (the event loop's) thread."""
        if not getattr(conn, "mnist_bounded", False):
            _io_timeout(conn.sock, INLINE_IO_TIMEOUT)
            conn.mnist_bounded = True
        conn.mnist_enqueued = self._events_at or time.monotonic()
        done = futures.Future()
        self._serving_inline = True
        try:
            done.set_result(self.handle(conn))  # handle() answers or logs every Exception itself
            self.finish_request(conn, done)
        finally:
            self._serving_inline = False

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
