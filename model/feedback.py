"""Feedback: the right answer for an image, sent by the person who saw a wrong one.

Each entry is one small JSON file in ``FEEDBACK_DIR``: the 28x28 input the
model saw (``pixels``: its 784 bytes, row by row, base64), the label the person gave, the version that
answered and what it answered, the request id if they sent it, and the
time. An entry is written to a hidden temporary name in the same directory,
flushed to disk and renamed to ``<time>-<random>.json`` in one step, so
readers see whole entries or none, and any number of workers and replicas on
a shared volume can write at once without locks (names never collide). A
process killed mid-write leaves only a hidden temporary file, which readers
ignore and the store removes once it is a minute old.

The store is bounded: at ``FEEDBACK_MAX_ENTRIES`` entries or
``FEEDBACK_MAX_BYTES`` bytes it refuses new ones with ``507 Insufficient
Storage`` (nothing a user sent is ever evicted behind their back; an
operator moves entries away, e.g. after training on them). A corrupt or
truncated entry (a disk fault, a hand edit) is skipped with a warning by
every reader, never fatal. Only what a user sent as feedback is stored.

The service writes entries (``POST /v1/feedback``); ``load_feedback(dir)`` is
what ``train.py --feedback DIR`` and ``GET /v1/feedback`` read.
"""

from __future__ import annotations

import base64
import errno
import io
import json
import logging
import os
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["FeedbackEntry", "FeedbackFull", "FeedbackReadOnly", "FeedbackStore", "load_feedback"]

log = logging.getLogger("model.feedback")

SUFFIX = ".json"
TMP_PREFIX = ".feedback."  # an entry being written: renamed to its name once whole
STALE_SECONDS = 60.0  # a temporary file this old was left by a process killed mid-write
RECOUNT_SECONDS = 2.0


class FeedbackFull(RuntimeError):
    """The feedback store is at its configured bound, or its disk is full (the service answers 507)."""


class FeedbackReadOnly(OSError):
    """The feedback directory cannot be written (a read-only deployment; the service answers 409)."""

    def __str__(self) -> str:  # the message alone, without OSError's "[Errno 30]"
        return self.strerror or super().__str__()


@dataclass(frozen=True)
class FeedbackEntry:
    id: str
    image: np.ndarray  # uint8 (28, 28), the input the model saw
    label: int
    version: str | None  # the version that predicted ``predicted`` when the feedback arrived
    predicted: int | None
    answered: int | None  # what the sender says the service had answered, if they said
    request_id: str | None
    time: float


SIDE = 28


def _pixels(text: str) -> np.ndarray:
    """Return the uint8 (28, 28) image stored as base64 ``pixels``."""
    raw = base64.b64decode(text, validate=True)
    if len(raw) != SIDE * SIDE:
        raise ValueError(f"pixels hold {len(raw)} bytes, expected {SIDE * SIDE}")
    return np.frombuffer(raw, np.uint8).reshape(SIDE, SIDE).copy()


def _png_entry(text: str) -> np.ndarray:
    """Return the image of an entry written before ``pixels`` (a base64 PNG in ``image``).
    Only such old entries need Pillow, so it is imported here, never with the package."""
    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(text, validate=True)), formats=["PNG"])
    image.load()
    if image.mode != "L" or image.size != (SIDE, SIDE):
        raise ValueError(f"image is {image.mode} {image.size}, expected L ({SIDE}, {SIDE})")
    return np.asarray(image, np.uint8)


def _parse(path: Path) -> FeedbackEntry:
    """Return the entry stored at ``path``; ValueError if it is not a whole, valid entry."""
    data = json.loads(path.read_bytes())
    if not isinstance(data, dict):
        raise ValueError("not an object")
    image = _pixels(data["pixels"]) if "pixels" in data else _png_entry(data["image"])
    label = data["label"]
    if not isinstance(label, int) or not 0 <= label <= 9:
        raise ValueError(f"label {label!r}")
    predicted, answered = data.get("predicted"), data.get("answered")
    return FeedbackEntry(id=str(data["id"]), image=image, label=label,
                         version=data.get("version"), predicted=predicted if isinstance(predicted, int) else None,
                         answered=answered if isinstance(answered, int) else None,
                         request_id=data.get("request_id"), time=float(data["time"]))


class FeedbackStore:
    """Entries under one directory; safe for many writers (processes, replicas) at once."""

    def __init__(self, directory: str | os.PathLike, max_entries: int, max_bytes: int):
        self.dir = Path(directory)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._usage: tuple[float, int, int] | None = None  # (when counted, entries, bytes)
        self._lock = threading.Lock()

    def _files(self) -> list[os.DirEntry]:
        """Return the entries; on the way, remove the temporary files of writes that a killed
        process left behind (older than ``STALE_SECONDS``; a write in progress is younger)."""
        try:
            with os.scandir(self.dir) as it:
                files = list(it)
        except FileNotFoundError:
            return []
        stale_before = time.time() - STALE_SECONDS
        for e in files:
            if e.name.startswith(TMP_PREFIX) and e.name.endswith(".tmp"):
                try:
                    if e.stat().st_mtime < stale_before:
                        os.unlink(e.path)
                        log.warning("removed an unfinished feedback write", extra={"file": e.name})
                except OSError:
                    pass  # removed by another worker, or a read-only store
        return [e for e in files if e.name.endswith(SUFFIX) and not e.name.startswith(".")]

    def usage(self, max_age: float = 0.0) -> tuple[int, int]:
        """Return (entries, bytes) stored, counted at most ``max_age`` seconds ago (plus this
        process's own additions since)."""
        with self._lock:
            if self._usage is not None and time.monotonic() - self._usage[0] <= max_age:
                return self._usage[1], self._usage[2]
        files = self._files()
        total = 0
        for e in files:
            try:
                total += e.stat().st_size
            except OSError:
                pass  # removed meanwhile
        with self._lock:
            self._usage = (time.monotonic(), len(files), total)
        return len(files), total

    def add(self, image: np.ndarray, label: int, version: str | None, predicted: int | None,
            answered: int | None = None, request_id: str | None = None) -> str:
        """Store one entry and return its id. Raises ``FeedbackFull`` at the bound.

        The bound is checked against a count at most ``RECOUNT_SECONDS`` old (a
        directory of 100,000 entries takes a while to list), so many writers at
        once may pass it by the few entries they add in that time.
        """
        entries, used = self.usage(RECOUNT_SECONDS)
        pixels = np.ascontiguousarray(image, np.uint8)
        if pixels.shape != (SIDE, SIDE):
            raise ValueError(f"feedback images are uint8 ({SIDE}, {SIDE}), got {pixels.shape}")
        body = {"pixels": base64.b64encode(pixels.tobytes()).decode("ascii"), "label": int(label), "version": version,
                "predicted": None if predicted is None else int(predicted),
                "answered": None if answered is None else int(answered), "request_id": request_id,
                "time": time.time()}
        entry_id = f"{int(body['time'] * 1000):013d}-{secrets.token_hex(8)}"
        data = json.dumps({"id": entry_id, **body}).encode()
        if entries >= self.max_entries or used + len(data) > self.max_bytes:
            raise FeedbackFull(f"the feedback store is full ({entries} entries, {used:,} bytes; the limits "
                               f"are {self.max_entries} and {self.max_bytes:,}); an operator must move "
                               "entries away")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=TMP_PREFIX, suffix=".tmp")
        except OSError as exc:
            raise self._refusal(exc) from None
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, self.dir / f"{entry_id}{SUFFIX}")
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise self._refusal(exc) from None
            raise
        with self._lock:
            if self._usage is not None:
                self._usage = (self._usage[0], self._usage[1] + 1, self._usage[2] + len(data))
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a crash
        finally:
            os.close(dir_fd)
        return entry_id

    def _refusal(self, exc: OSError) -> Exception:
        """Return the error to raise for a failed write: read-only, full, or the OSError itself."""
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return FeedbackReadOnly(exc.errno, f"feedback cannot be stored: {self.dir} is read-only here")
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return FeedbackFull(f"feedback cannot be stored: the disk holding {self.dir} is full")
        return exc

    def entries(self, newest: int | None = None) -> list[FeedbackEntry]:
        """Return the whole, valid entries (the ``newest`` ones only, if given), oldest first;
        others are skipped with a warning."""
        return load_feedback(self.dir, newest)


def load_feedback(directory: str | os.PathLike, newest: int | None = None) -> list[FeedbackEntry]:
    """Return the valid entries stored under ``directory`` (the ``newest`` ones only, if given),
    oldest first; corrupt ones are skipped with a warning."""
    out = []
    root = Path(directory)
    if not root.is_dir():
        return out
    paths = sorted(root.glob(f"*{SUFFIX}"))  # names start with the time in milliseconds
    for path in paths[-newest:] if newest else paths:
        if path.name.startswith("."):
            continue
        try:
            out.append(_parse(path))
        except (OSError, ValueError, KeyError, TypeError, SyntaxError) as exc:
            log.warning("skipping a corrupt feedback entry", extra={"path": str(path), "reason": str(exc)})
    return out
