"""Run the real service under gunicorn for tests: start, wait until ready, stop.

The server is ``tools.loadgen.Server`` (what the benchmarks run too): tracked
by PID (never killed by name) and always stopped with SIGTERM (then SIGKILL
after a grace period), so a failing test leaves nothing running.
"""

from __future__ import annotations

import socket
from contextlib import contextmanager
from pathlib import Path

from tools.loadgen import REPO, Server

__all__ = ["REPO", "free_port", "live_server"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(env: dict, tmp_path: Path, ready: bool = True, workers: int = 2):
    """Yield a ``Server`` running the service with ``env`` on a free loopback port.

    Feedback goes to ``tmp_path``/feedback unless ``env`` names a FEEDBACK_DIR: the
    default, ``feedback`` under the working directory, is the checkout.
    """
    port = free_port()
    server = Server("service", "service:create_app()", port,
                    {"WORKERS": workers, "POLL_INTERVAL": "0.2", "FEEDBACK_DIR": tmp_path / "feedback", **env},
                    tmp_path / f"gunicorn-{port}.log")
    try:
        if ready:
            server.wait_ready()
        yield server
    finally:
        server.stop(20)
