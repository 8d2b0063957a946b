"""The artifacts directory: numbered, immutable versions and the pin.

Layout (after TensorFlow Serving's numbered version directories)::

    ARTIFACTS_DIR/
      mnist/                  one directory per model name
        1/                    one directory per version, never rewritten
          model.npz           the artifact (see artifact.py)
          model-card.json     metrics, command line, checksums, history
          model-card.md       the same for people, with the plots below
          curves.png  confusion.png
        2/
        pin.json              optional: {"version": "1"}; absent = follow newest
        rollout.json          optional: the shadow and canary versions (the service's rollout.py)

"Newest" is the highest number; "list" is a directory listing; the pin and
other small files beside the versions (``write_json``) are replaced
atomically, so every process, every replica on a shared volume and every
restart agrees.
A version is published by writing everything into a hidden temporary
directory and renaming it to its number in one step: readers never see a
half-written version, and a failed write leaves only a hidden directory that
readers ignore and the next publish cleans up.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .atomic import write_atomic

__all__ = [
    "ARTIFACT_FILE",
    "LATEST",
    "ArtifactStore",
    "StoreReadOnly",
    "VersionNotFound",
    "VersionEntry",
    "is_version",
]

ARTIFACT_FILE = "model.npz"
PIN_FILE = "pin.json"
LATEST = "latest"
_VERSION_RE = re.compile(r"^[1-9][0-9]{0,17}$")
_STALE_TMP_SECONDS = 24 * 3600


class VersionNotFound(LookupError):
    """No valid-looking version directory with that name exists."""


class StoreReadOnly(OSError):
    """The artifacts directory cannot be written (a read-only mount): pins and rollouts are
    fixed by whoever deployed it."""

    def __str__(self) -> str:  # the message alone, without OSError's "[Errno 30]"
        return self.strerror or super().__str__()


_READ_ONLY_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM)


@dataclass(frozen=True)
class VersionEntry:
    version: str
    path: Path  # the model.npz inside the version directory

    @property
    def number(self) -> int:
        return int(self.version)


def is_version(name: str) -> bool:
    """Return whether ``name`` is a well-formed version (a positive integer, no sign or zeros)."""
    return bool(_VERSION_RE.match(name))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ArtifactStore:
    """Versions of one model under ``root/name``."""

    def __init__(self, root: str | os.PathLike, name: str):
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"invalid model name {name!r}")
        self.root = Path(root)
        self.name = name
        self.dir = self.root / name

    # -- reading ------------------------------------------------------------

    def versions(self) -> list[VersionEntry]:
        """Return every published version, oldest first."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        entries = [VersionEntry(n, self.dir / n / ARTIFACT_FILE) for n in names if is_version(n)]
        entries = [e for e in entries if e.path.is_file()]
        return sorted(entries, key=lambda e: e.number)

    def latest(self) -> VersionEntry | None:
        versions = self.versions()
        return versions[-1] if versions else None

    def get(self, version: str) -> VersionEntry:
        """Return the entry for ``version``.

        Raises
        ------
        VersionNotFound : malformed version string (which also keeps a path
            from escaping the store) or no such published version.
        """
        if not is_version(version):
            raise VersionNotFound(f"{version!r} is not a version (versions are positive integers)")
        entry = VersionEntry(version, self.dir / version / ARTIFACT_FILE)
        if not entry.path.is_file():
            raise VersionNotFound(f"version {version} of {self.name!r} does not exist")
        return entry

    def pinned(self) -> str | None:
        """Return the pinned version, or None to follow the newest."""
        data = self.read_json(PIN_FILE)  # an unreadable pin is treated as absent; pin() rewrites it
        version = data.get("version") if isinstance(data, dict) else None
        return version if isinstance(version, str) and is_version(version) else None

    def read_json(self, name: str) -> object | None:
        """Return the JSON in ``name`` beside the versions (``pin.json``, ``rollout.json``), or
        None when it is absent, unreadable or malformed (such a file counts as absent)."""
        try:
            return json.loads((self.dir / name).read_text())
        except (OSError, ValueError):
            return None

    # -- writing ------------------------------------------------------------

    def write_json(self, name: str, data: dict) -> None:
        """Replace ``name`` in the model's directory with ``data``, atomically and durably.

        Raises ``StoreReadOnly`` when the directory cannot be written.
        """
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            write_atomic(self.dir / name, lambda f: f.write(json.dumps(data).encode()))
        except OSError as exc:
            if exc.errno in _READ_ONLY_ERRNOS:
                raise StoreReadOnly(exc.errno, f"{self.dir} is read-only: {name} cannot be written; "
                                               "the deployment fixes which version is served") from None
            raise

    def pin(self, version: str | None) -> None:
        """Pin ``version`` (after checking it exists), or unpin with None / 'latest'."""
        if version is None or version == LATEST:
            self.remove(PIN_FILE)
            return
        self.get(version)
        self.write_json(PIN_FILE, {"version": version, "pinned_at": time.time()})

    def remove(self, name: str) -> None:
        """Remove ``name`` from the model's directory, if it is there (``StoreReadOnly`` when
        the directory cannot be written)."""
        try:
            (self.dir / name).unlink(missing_ok=True)
        except OSError as exc:
            if exc.errno in _READ_ONLY_ERRNOS:
                raise StoreReadOnly(exc.errno, f"{self.dir} is read-only: {name} cannot be removed") from None
            raise

    def publish(self, write: Callable[[Path], None]) -> VersionEntry:
        """Publish a new version whose files ``write(directory)`` creates.

        ``write`` fills a hidden temporary directory (it must create
        ``model.npz``); the directory is fsynced and renamed to the next free
        number. If ``write`` or the disk fails, the temporary directory is
        removed and the error propagates: no version appears.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        self._clean_stale_tmp()
        tmp = Path(tempfile.mkdtemp(dir=self.dir, prefix=".tmp-"))
        try:
            write(tmp)
            if not (tmp / ARTIFACT_FILE).is_file():
                raise FileNotFoundError(f"publish: writer did not create {ARTIFACT_FILE}")
            for f in tmp.iterdir():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            _fsync_dir(tmp)
            os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; the service may run as another user
            while True:
                target = self.dir / str(self._next_number())
                try:
                    # rename() refuses to replace a non-empty directory, so a version
                    # that another writer published meanwhile is never overwritten.
                    os.rename(tmp, target)
                    break
                except OSError:
                    if not target.exists():
                        raise
            _fsync_dir(self.dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return VersionEntry(target.name, target / ARTIFACT_FILE)

    def _next_number(self) -> int:
        """Return one more than the highest number in use (complete or not)."""
        numbers = [int(n) for n in os.listdir(self.dir) if is_version(n)]
        return max(numbers, default=0) + 1

    def _clean_stale_tmp(self) -> None:
        now = time.time()
        for p in self.dir.glob(".tmp-*"):
            try:
                if now - p.stat().st_mtime > _STALE_TMP_SECONDS:
                    shutil.rmtree(p, ignore_errors=True)
            except OSError:
                pass
