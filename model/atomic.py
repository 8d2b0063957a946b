"""Replacing a file atomically and durably: the one way model/ writes a file others read.

``write_atomic(path, write)`` writes through a temporary file beside
``path`` (``.<name>.<random>.tmp``), fsyncs it and renames it over ``path``,
so a reader sees the old file or the new one whole, never a part; on any
failure the temporary file is removed and the error raised.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["write_atomic"]


def write_atomic(path: Path, write: Callable[[IO[bytes]], object], mode: int | None = None) -> None:
    """Replace ``path`` with what ``write(f)`` writes to a binary file ``f``.

    ``mode`` sets the new file's permissions (mkstemp creates it 0600; a file
    the service reads as another user needs 0o644). Errors creating the
    temporary file (a read-only or full directory) are raised as they are.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
