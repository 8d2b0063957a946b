"""Structured logging: one JSON object per line on stderr.

``configure_logging`` installs ``JsonFormatter`` on the ``service`` logger
tree. Extra fields passed with ``extra={...}`` become JSON keys, which is how
the access log carries request id, endpoint, status, latency and model
version. Secrets never reach a log record: tokens are not logged anywhere.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson

__all__ = ["JsonFormatter", "configure_logging"]

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str = "INFO") -> None:
    """Send the ``service`` loggers to stderr as JSON lines (idempotent).

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
