"""The shadow version: run beside the answering one, compared, never answering.

``offer`` is called by the data plane (``digits``) with the inputs of every
answered prediction and the classes given. A ``SHADOW_SAMPLE`` share of them
is queued (a reference, no copy) for one background thread per worker, which
runs the shadow version on them and counts agreements and confusions in
``/metrics`` (``metrics.shadow_compared``). The request never waits for it:
when the queue is full the comparison is dropped and counted, so a slow
shadow can only lose samples, never delay or change an answer.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
from collections.abc import Callable

import numpy as np

from . import metrics

__all__ = ["ShadowRunner", "offer", "configure"]

log = logging.getLogger("service.shadow")

QUEUE_SIZE = 64  # batches waiting for the shadow; beyond this they are dropped


class ShadowRunner:
    """One worker's comparisons: a bounded queue and the thread that empties it."""

    def __init__(self) -> None:
        self._shadow: Callable[[], object] = lambda: None
        self.sample = 1.0
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0  # queued or running comparisons

    def configure(self, shadow: Callable[[], object], sample: float) -> None:
        """Compare against ``shadow()`` (the registry's shadow version, or None) on a ``sample`` share."""
        self._shadow, self.sample = shadow, sample

    def offer(self, answered, X: np.ndarray, classes: np.ndarray) -> None:
        """Queue a comparison of the shadow with ``answered`` (a ``ServedModel``) on ``X``."""
        shadow = self._shadow()
        if shadow is None or shadow.version == answered.version:
            return
        if self.sample < 1.0 and random.random() >= self.sample:
            return
        if self._thread is None:
            self._start()
        with self._lock:
            self._pending += 1
        try:
            self._queue.put_nowait((shadow, answered.version, X, classes))
        except queue.Full:
            self._done()
            metrics.SHADOW_DROPPED.inc()

    def _done(self) -> None:
        with self._lock:
            self._pending -= 1
            if not self._pending:
                self._idle.notify_all()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:  # per process: started in the worker, after the fork
                self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            shadow, answered_version, X, classes = self._queue.get()
            try:
                probs, _ = shadow.predictor(X)
                metrics.shadow_compared(shadow.version, classes, probs.argmax(axis=1))
            except Exception:  # noqa: BLE001 - the comparison thread must never die
                log.exception("shadow comparison failed", extra={"version": shadow.version})
            finally:
                self._done()

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until every queued comparison is done; return whether they all were in time."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)


RUNNER = ShadowRunner()


def configure(shadow: Callable[[], object], sample: float) -> None:
    RUNNER.configure(shadow, sample)


def offer(answered, X: np.ndarray, classes: np.ndarray) -> None:
    RUNNER.offer(answered, X, classes)
