"""gunicorn configuration, the same inside and outside Docker.

    gunicorn --config gunicorn.conf.py "service:create_app()"

Values come from the service's typed ``Settings`` (HOST, PORT, WORKERS, ...),
so a bad environment stops the master before any worker starts, with one
line per invalid variable.
"""

import os
import shutil
import sys
import tempfile

import gunicorn.http.wsgi

from service.settings import SettingsError, load_settings

# The one gunicorn global this service changes (on_starting, below): the Server banner.
# Fail at start, loudly, if a release moves it (pyproject.toml pins the tested series).
if not isinstance(getattr(gunicorn.http.wsgi, "SERVER", None), str):
    raise RuntimeError("gunicorn.http.wsgi.SERVER is gone: this gunicorn is not the series the service "
                       "was tested with (see pyproject.toml)")

try:
    _settings = load_settings()
except SettingsError as exc:
    print(f"mnist-service: {exc}", file=sys.stderr)
    sys.exit(2)

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.workers
threads = _settings.threads
# gunicorn's own worker classes, as shipped (admission control is the app's, service/admission.py).
worker_class = _settings.worker_class
timeout = _settings.timeout
backlog = _settings.backlog
# Recycling would bound slow growth in long-lived workers, but the soak finds none
# (RELIABILITY.md) and a recycling gthread worker drops the keep-alive requests
# queued behind it, so it is off unless MAX_REQUESTS is set; the jitter then keeps
# the workers from restarting at the same moment.
max_requests = _settings.max_requests
max_requests_jitter = _settings.max_requests // 10
graceful_timeout = 20
worker_connections = _settings.worker_connections
keepalive = _settings.keepalive
accesslog = None  # the service writes its own JSON access log
# gunicorn's control socket (gunicornc) defaults to one path per user, which every
# master on the host would fight over: off, unless CONTROL_SOCKET names this one's.
control_socket_disable = not _settings.control_socket
if _settings.control_socket:
    control_socket = str(_settings.control_socket)
errorlog = "-"
loglevel = _settings.log_level.lower()
# Every worker loads the model itself, after the fork: no preload, so each one
# gets its own poller thread and no thread crosses a fork.
preload_app = False

# One BLAS thread per worker: the workers already use the cores, and a
# multi-threaded GEMM for a single image only adds hand-offs (measured in
# bench/RESULTS.md). Set before any worker imports NumPy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Prometheus multiprocess mode: a fresh directory per master, set before the
# workers import prometheus_client.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mnist-metrics-")
else:
    _dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(_dir, ignore_errors=True)
    os.makedirs(_dir, exist_ok=True)


def worker_abort(worker):
    # A timed-out worker (any worker class) exits before the interpreter's exit
    # handlers run: write the buffered access-log lines first, they matter most now.
    from service.logs import flush_buffered

    flush_buffered(timeout=1.0)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_starting(server):
    # No version banner: gunicorn otherwise sends "Server: gunicorn/<version>". This module
    # attribute is gunicorn's only way to set it, and the one global this service changes.
    gunicorn.http.wsgi.SERVER = "mnist-service"
