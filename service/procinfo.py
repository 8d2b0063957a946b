"""The current process id without a system call per ask.

``os.getpid()`` is a system call. Code on the request path that needs the pid
(prometheus-client's multiprocess files) reads ``pid()``, which is remembered
and refreshed in the child after every fork.
"""

from __future__ import annotations

import os

__all__ = ["pid"]

_pid = os.getpid()


def _refresh() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_refresh)


def pid() -> int:
    """Return this process's id (correct after fork)."""
    return _pid
