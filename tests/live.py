"""Run the real service under gunicorn for tests: start, wait until ready, stop.

Processes are tracked by PID (never killed by name) and always stopped with
SIGTERM (then SIGKILL after a grace period), so a failing test leaves nothing
running.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, process: subprocess.Popen, url: str, log_path: Path):
        self.process = process
        self.url = url
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                if requests.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"service not ready after {timeout}s:\n{self.log()[-3000:]}")

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


@contextmanager
def live_server(env: dict, tmp_path: Path, ready: bool = True, workers: int = 2):
    """Yield a ``LiveServer`` running gunicorn with ``env`` on a free loopback port.

    Feedback goes to ``tmp_path``/feedback unless ``env`` names a FEEDBACK_DIR: the
    default, ``feedback`` under the working directory, is the checkout.
    """
    port = free_port()
    full_env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "WORKERS": str(workers),
                "POLL_INTERVAL": "0.2", "FEEDBACK_DIR": str(tmp_path / "feedback"),
                **{k: str(v) for k, v in env.items()}}
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log_path = tmp_path / f"gunicorn-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "service:create_app()"],
            cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    server = LiveServer(process, f"http://127.0.0.1:{port}", log_path)
    try:
        if ready:
            server.wait_ready()
        yield server
    finally:
        server.stop()
