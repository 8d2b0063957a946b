"""Structured logging: one JSON object per line on stderr.

``configure_logging`` installs ``JsonFormatter`` on the ``service`` logger
tree. Extra fields passed with ``extra={...}`` become JSON keys, which is how
the access log carries request id, endpoint, status, latency and model
version. Secrets never reach a log record: tokens are not logged anywhere.
"""

from __future__ import annotations

import logging
import os
import select
import sys
import threading
import time
import weakref

import orjson

# Writes up to this size are atomic on a pipe (POSIX requires at least 512; Linux 4096).
PIPE_BUF = getattr(select, "PIPE_BUF", 512)

__all__ = ["BufferedStreamHandler", "JsonFormatter", "configure_logging", "flush_buffered", "log_fields",
           "per_second"]

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


_buffered: "weakref.WeakSet[BufferedStreamHandler]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for handler in list(_buffered):
        handler._lines, handler._size = [], 0  # the parent writes the lines it holds, not the child too
        stopped, handler._stop = handler._stop.is_set(), threading.Event()  # its lock may be held
        if stopped:
            handler._stop.set()
        handler._flusher = False  # threads do not survive fork: each gunicorn worker starts its own


def flush_buffered(timeout: float = 1.0) -> None:
    """Write what every ``BufferedStreamHandler`` holds; give up on one after ``timeout`` s.

    For signal handlers (a worker about to be killed): a lock held by a stuck
    thread must not hang the exit.
    """
    for handler in list(_buffered):
        if handler.lock.acquire(timeout=timeout):
            try:
                handler._write()
            finally:
                handler.lock.release()


os.register_at_fork(after_in_child=_after_fork_in_child)


def per_second(format_second):
    """Return ``format_second(whole_second)``, remembered for the latest second.

    Log timestamps and the HTTP Date header change once a second but were
    formatted on every request. Thread-safe without a lock: the cache is one
    tuple, read once and replaced whole.
    """
    cache = [(-1, "")]

    def formatted(whole: int) -> str:
        hit = cache[0]
        if hit[0] != whole:
            hit = cache[0] = (whole, format_second(whole))
        return hit[1]

    return formatted


_iso_second = per_second(lambda whole: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))


def _timestamp(created: float) -> str:
    """Return ``created`` as ISO 8601 UTC with milliseconds."""
    whole = int(created)
    return f"{_iso_second(whole)}.{int((created - whole) * 1000):03d}Z"


def _json_line(created: float, level: str, logger: str, msg: str, fields: dict) -> str:
    """Return one log line: ts, level, logger, msg, then ``fields``, as JSON."""
    return orjson.dumps({"ts": _timestamp(created), "level": level, "logger": logger, "msg": msg,
                         **fields}, default=str).decode()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = {key: value for key, value in vars(record).items()
                  if key not in _STANDARD and not key.startswith("_")}
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return _json_line(record.created, record.levelname.lower(), record.name, record.getMessage(),
                          fields)


class BufferedStreamHandler(logging.StreamHandler):
    """A stream handler that writes its lines in batches, like nginx's buffered access log.

    One ``write`` per request would put a system call on the request path
    (``log_fields`` also skips the ``LogRecord``: bench/RESULTS.md has what
    each saves). Lines are kept in memory and written together (in whole-line writes of
    at most PIPE_BUF bytes, atomic on the pipe all workers share) when
    ``capacity`` bytes are waiting, when a record at WARNING or above
    arrives, and at least every ``interval`` seconds by a daemon thread; at
    exit ``logging.shutdown`` flushes the rest. A ``kill -9`` loses at most
    ``interval`` seconds of lines. ``interval=0`` writes every line at once.
    """

    def __init__(self, stream=None, interval: float = 0.5, capacity: int = 64 * 1024):
        super().__init__(stream)
        self.interval, self.capacity = interval, capacity
        self._lines: list[str] = []
        self._size = 0
        self._flusher = False  # started in this process
        self._stop = threading.Event()  # not _closed: logging.Handler.close() sets that
        _buffered.add(self)

    def emit(self, record: logging.LogRecord) -> None:
        if self.interval <= 0:
            return super().emit(record)
        try:
            line = self.format(record) + self.terminator
        except Exception:  # noqa: BLE001 - logging's own contract
            self.handleError(record)
            return
        self._append(line, now=record.levelno >= logging.WARNING)

    def append_fields(self, logger: str, msg: str, fields: dict) -> None:
        """Buffer the line ``JsonFormatter`` would write for an INFO record with ``fields``."""
        self._append(_json_line(time.time(), "info", logger, msg, fields) + self.terminator)

    def _append(self, line: str, now: bool = False) -> None:
        with self.lock:  # re-entrant: emit() already holds it
            self._lines.append(line)
            self._size += len(line)
            if now or self._size >= self.capacity:
                self._write()
        self._ensure_flusher()

    def _ensure_flusher(self) -> None:
        if self._flusher:
            return
        with self.lock:
            if self._flusher:
                return
            try:
                threading.Thread(target=self._flush_until_stopped, name="log-flusher", daemon=True).start()
            except RuntimeError:  # no thread to be had: lines still go out at capacity and exit
                return
            self._flusher = True

    def _flush_until_stopped(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def _write(self) -> None:  # the caller holds self.lock
        """Write the waiting lines in whole-line pieces of at most PIPE_BUF bytes.

        Every worker writes to the same stderr pipe, and only a write of at
        most PIPE_BUF bytes to a pipe is atomic: larger ones could interleave
        with another worker's and cut lines in two.
        """
        lines, self._lines, self._size = self._lines, [], 0
        piece: list[str] = []
        size = 0
        try:
            for line in lines:
                n = len(line) if line.isascii() else len(line.encode())
                if piece and size + n > PIPE_BUF:
                    self.stream.write("".join(piece))
                    self.stream.flush()
                    piece, size = [], 0
                piece.append(line)
                size += n
            if piece:
                self.stream.write("".join(piece))
                self.stream.flush()
        except (OSError, ValueError, RuntimeError):  # a closed or full stream must not fail a request
            pass  # (RuntimeError: a signal handler's flush re-entering an interrupted write)

    def flush(self) -> None:
        with self.lock:
            self._write()
            try:
                super().flush()
            except (OSError, ValueError):  # a stream closed under us (ValueError: closed file)
                pass

    def close(self) -> None:
        self.flush()
        self._stop.set()
        super().close()


def configure_logging(level: str = "INFO", access_flush: float = 0.5) -> None:
    """Send the ``service`` loggers to stderr as JSON lines (idempotent).

    The access log (``service.access``) is buffered (``BufferedStreamHandler``,
    written at least every ``access_flush`` seconds); everything else is
    written at once.

    A record is made for every request, so the costs the JSON lines never use
    are switched off, as the logging HOWTO's "Optimization" section suggests:
    the caller lookup (a stack walk) and the thread and multiprocessing name
    lookups. (Process ids stay: gunicorn's own log lines print them.)
    """
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    logger = logging.getLogger("service")
    logger.setLevel(level)
    logger.propagate = False
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    access = logging.getLogger("service.access")
    access.propagate = False
    for old in [h for h in access.handlers if isinstance(h, BufferedStreamHandler)]:
        access.removeHandler(old)
        old.close()
    buffered = BufferedStreamHandler(sys.stderr, interval=access_flush)
    buffered.setFormatter(JsonFormatter())
    access.addHandler(buffered)


def log_fields(logger: logging.Logger, msg: str, fields: dict) -> None:
    """Log ``msg`` at INFO with ``fields`` as JSON keys: ``logger.info(msg, extra=fields)``.

    When the logger's only handler is a buffering ``BufferedStreamHandler``
    (the access log as configured), the line is formatted straight into its
    buffer, skipping the ``LogRecord`` and the formatter: the same bytes for
    a fifth of the cost. Any other set-up gets the ordinary logging call.
    """
    handlers = logger.handlers
    if (len(handlers) == 1 and type(handlers[0]) is BufferedStreamHandler and handlers[0].interval > 0
            and not logger.filters and not handlers[0].filters and logger.isEnabledFor(logging.INFO)
            and handlers[0].level <= logging.INFO and not logger.propagate):
        handlers[0].append_fields(logger.name, msg, fields)
    else:
        logger.info(msg, extra=fields)
