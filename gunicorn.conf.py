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

from service.settings import SettingsError, load_settings

try:
    _settings = load_settings()
except SettingsError as exc:
    print(f"mnist-service: {exc}", file=sys.stderr)
    sys.exit(2)

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.workers
threads = _settings.threads
# gthread is gunicorn's thread worker plus queue-wait bookkeeping (service/worker.py),
# which lets the app shed requests that waited longer than QUEUE_TIMEOUT.
worker_class = ("service.worker.QueueAwareWorker" if _settings.worker_class == "gthread"
                else _settings.worker_class)
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
    if hasattr(worker, "mnist_slot"):  # service.worker.QueueAwareWorker: free its slot
        from service.worker import release_slot

        release_slot(worker)


def on_starting(server):
    # No server version banner: gunicorn otherwise sends "Server: gunicorn".
    import gunicorn.http.wsgi

    gunicorn.http.wsgi.SERVER = "mnist-service"
