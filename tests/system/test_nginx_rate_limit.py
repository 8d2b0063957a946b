"""The compose ``lb`` profile's nginx (deploy/nginx.conf) in front of a live service.

The shipped configuration is rendered for a loopback test (Debian's nginx,
which CI installs, predates the upstream ``resolve`` parameter; the api is one
gunicorn here rather than Docker's DNS name; the rate is lowered so a slow
machine still exceeds it) and every rendering step must apply exactly once,
so a change to the configuration cannot silently escape the test.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BUNDLED_ARTIFACTS, RESOURCES
from live import REPO, free_port, live_server

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
pytestmark = pytest.mark.skipif(not Path(NGINX).exists() and not os.environ.get("CI"),
                                reason="nginx is not installed (apt-get install nginx; CI installs it)")

RATE, BURST = 2, 5  # the test's limit (the shipped one is 50 r/s, burst 100)


def render(api_port: int, port: int, tmp: Path) -> str:
    text = (REPO / "deploy" / "nginx.conf").read_text()
    steps = [("server api:8000 resolve;", f"server 127.0.0.1:{api_port};"),
             ("resolver 127.0.0.11 valid=5s ipv6=off;", ""),
             ("listen 8080;", f"listen 127.0.0.1:{port};"),
             ("rate=50r/s;", f"rate={RATE}r/s;"),
             ("burst=100 nodelay;", f"burst={BURST} nodelay;")]
    for old, new in steps:
        assert text.count(old) == 1, f"deploy/nginx.conf no longer has exactly one {old!r}"
        text = text.replace(old, new)
    return text.replace("/tmp/", f"{tmp}/")


def get(port: int, path: str, source: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def post_png(port: int, source: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request("POST", "/v1/predict", body=(RESOURCES / "mnist_test_0_label7.png").read_bytes(),
                     headers={"Content-Type": "image/png"})
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


@pytest.fixture
def lb(tmp_path):
    """Yield the port of nginx (the shipped configuration, rendered) in front of a live api."""
    if not Path(NGINX).exists():
        pytest.fail("nginx is not installed (apt-get install nginx)")
    with live_server({"ARTIFACTS_DIR": BUNDLED_ARTIFACTS, "ACCESS_LOG": "false"}, tmp_path, workers=1) as api:
        port = free_port()
        conf = tmp_path / "nginx.conf"
        conf.write_text(render(api.port, port, tmp_path))
        check = subprocess.run([NGINX, "-t", "-e", "stderr", "-p", str(tmp_path), "-c", str(conf)],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        log = open(tmp_path / "nginx.log", "wb")
        proc = subprocess.Popen([NGINX, "-e", "stderr", "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while True:
                assert proc.poll() is None, (tmp_path / "nginx.log").read_text()
                try:
                    if get(port, "/nginx-health", "127.0.0.1")[0] == 200:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
            yield port
        finally:
            proc.send_signal(signal.SIGQUIT)  # graceful stop, by PID
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            log.close()


def test_a_client_over_the_limit_gets_json_429s_and_another_client_is_unaffected(lb):
    statuses = []
    refused = None
    for _ in range(4 * BURST):
        status, headers, body = get(lb, "/v1/models", "127.0.0.1", {"X-Request-ID": "over-the-limit"})
        statuses.append(status)
        if status == 429 and refused is None:
            refused = headers, body
    assert statuses[:BURST] == [200] * BURST  # the burst is answered
    assert statuses.count(429) >= 2 * BURST, statuses  # then most are refused
    headers, body = refused
    assert headers["retry-after"] == "1" and headers["content-type"] == "application/json"
    error = json.loads(body)
    assert error["code"] == "rate_limited" and error["status"] == 429 and error["request_id"] == "over-the-limit"

    # In the same second, another client address is served: the limit is per client.
    assert [post_png(lb, "127.0.0.2") for _ in range(BURST)] == [200] * BURST
    assert get(lb, "/nginx-health", "127.0.0.1")[0] == 200  # the health check is never limited

    time.sleep(BURST / RATE + 0.5)  # the bucket drains at RATE a second
    assert get(lb, "/v1/models", "127.0.0.1")[0] == 200
