"""The service under gunicorn's own worker classes: connections, shedding, one path, configuration.

- Every answer, early errors included, leaves a kept-alive connection usable:
  the service reads an unread upload before answering (service/requestlog.py).
- Shedding works under every worker class, CORS on or off.
- Every prediction goes through the Flask view and the data plane: the
  metrics only they keep count exactly the requests sent.
- Each master keeps its control socket to itself (or has none), and the one
  module global this service changes in gunicorn is checked when the
  configuration loads.
"""

from __future__ import annotations

import http.client
import os
import re
import runpy
import stat
import time

import pytest
import requests

from conftest import BUNDLED_ARTIFACTS, DIGIT_PNG, REPO
from live import live_server

WORKER_CLASSES = ["gthread", "sync", "gevent"]
BIG_BODY = os.urandom(70 * 1024)  # a 70 KB "photo" the early answers never read
TOKEN = "gunicorn-admin-token-0123456789"


def exchange(conn: http.client.HTTPConnection, method: str, path: str, body: bytes = b"",
             headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read()


# Early answers: the status comes before the body is read (route, method, auth, size, type).
EARLY = [
    ("404", "POST", "/v1/nowhere", {"Content-Type": "image/jpeg"}, BIG_BODY, 404),
    ("405", "POST", "/v1/models", {"Content-Type": "image/jpeg"}, BIG_BODY, 405),
    ("401", "PUT", "/v1/models/active", {"Content-Type": "application/json"}, BIG_BODY, 401),
    ("413", "POST", "/v1/predict", {"Content-Type": "image/jpeg"}, BIG_BODY * 2, 413),
    ("415", "POST", "/v1/predict", {"Content-Type": "text/plain"}, BIG_BODY, 415),
]


@pytest.fixture(scope="module", params=WORKER_CLASSES)
def server(request, tmp_path_factory):
    env = {"ARTIFACTS_DIR": BUNDLED_ARTIFACTS, "ACCESS_LOG": "true", "WORKER_CLASS": request.param,
           "MAX_UPLOAD_BYTES": 100 * 1024, "ADMIN_TOKEN": TOKEN, "QUEUE_TIMEOUT": "0.5"}
    with live_server(env, tmp_path_factory.mktemp(f"gunicorn-{request.param}")) as live:
        live.worker_class = request.param
        yield live


def test_every_early_answer_leaves_the_connection_usable(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    failures = []
    for _ in range(4):
        for name, method, path, headers, body, expected in EARLY:
            status, response_headers, payload = exchange(conn, method, path, body, headers)
            assert status == expected and payload.startswith(b"{"), (name, status, payload[:200])
            status, _, payload = exchange(conn, "POST", "/v1/predict", DIGIT_PNG, {"Content-Type": "image/png"})
            if status != 200:
                failures.append((name, status, payload[:200]))
    conn.close()
    assert not failures


@pytest.mark.parametrize("cors", [False, True])
def test_a_stale_prediction_is_shed_under_every_worker_class(server, cors):
    headers = {"Content-Type": "image/png", "X-Request-Start": f"t={time.time() - 5:.3f}"}
    if cors:  # the server has no CORS_ORIGINS; a browser Origin header changes nothing either
        headers["Origin"] = "https://example.test"
    r = requests.post(server.url + "/v1/predict", data=DIGIT_PNG, headers=headers, timeout=10)
    assert r.status_code == 503 and r.headers["Retry-After"] == "1" and r.json()["code"] == "overloaded"
    headers["X-Request-Start"] = f"t={time.time():.3f}"
    assert requests.post(server.url + "/v1/predict", data=DIGIT_PNG, headers=headers, timeout=10).ok


def _count(metrics: str, pattern: str) -> float:
    return sum(float(v) for v in re.findall(pattern + r" ([0-9.e+]+)", metrics))


def test_every_prediction_goes_through_the_view_and_the_data_plane(server):
    """The access log's endpoint comes from Flask's routing, the predictions counter from
    ``digits``: a path that answered without them would leave the counts short."""
    before = requests.get(server.url + "/metrics", timeout=10).text
    n = 25
    with requests.Session() as session:  # kept alive where the worker class allows
        for _ in range(n):
            assert session.post(server.url + "/v1/predict", data=DIGIT_PNG,
                                headers={"Content-Type": "image/png"}, timeout=10).ok
    time.sleep(1.0)  # the access log is written in batches (ACCESS_LOG_FLUSH 0.5 s)
    after = requests.get(server.url + "/metrics", timeout=10).text
    predictions = r'mnist_answers_total\{[^}]*\}'
    requests_v1 = r'mnist_http_request_duration_seconds_count\{endpoint="v1.predict",method="POST",status="200"\}'
    assert _count(after, predictions) - _count(before, predictions) == n
    assert _count(after, requests_v1) - _count(before, requests_v1) == n
    lines = [line for line in server.log().splitlines() if '"endpoint":"v1.predict"' in line]
    assert len(lines) >= n


def test_each_master_keeps_its_control_socket_to_itself(tmp_path):
    home = tmp_path / "home"
    for d in (home, tmp_path / "a", tmp_path / "b"):
        d.mkdir()
    sock = tmp_path / "mine.ctl"
    base = {"ARTIFACTS_DIR": BUNDLED_ARTIFACTS, "ACCESS_LOG": "false", "HOME": home,
            "XDG_RUNTIME_DIR": home}
    with live_server(base, tmp_path / "a", workers=1) as first, \
            live_server({**base, "CONTROL_SOCKET": sock}, tmp_path / "b", workers=1) as second:
        assert requests.get(first.url + "/readyz", timeout=5).ok and requests.get(second.url + "/readyz").ok
        assert stat.S_ISSOCK(sock.stat().st_mode)  # the one that asked has its own
        # Neither created gunicorn's shared default ($XDG_RUNTIME_DIR or ~/.gunicorn/gunicorn.ctl).
        assert not (home / "gunicorn.ctl").exists() and not (home / ".gunicorn").exists()


def test_the_gunicorn_global_this_service_changes_is_checked_when_the_config_loads(monkeypatch):
    import gunicorn.http.wsgi

    config = runpy.run_path(str(REPO / "gunicorn.conf.py"))
    assert config["control_socket_disable"] is True  # CONTROL_SOCKET unset
    monkeypatch.delattr(gunicorn.http.wsgi, "SERVER")
    with pytest.raises(RuntimeError, match="gunicorn.http.wsgi.SERVER"):
        runpy.run_path(str(REPO / "gunicorn.conf.py"))
