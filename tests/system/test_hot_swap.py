"""Hot swap against a real gunicorn with several workers, under continuous traffic.

While clients keep predicting, a new version appears, a corrupt one appears,
a version is pinned and unpinned, the artifacts directory vanishes for a
moment and comes back. Every response must succeed, name a version
that was legitimately active in that phase, carry that version's prediction
(so nothing mixes two models), and all workers must converge.
"""

import re
import shutil
import threading
import time

import requests

from model.store import ARTIFACT_FILE
from tools.reliability import worker_versions

from conftest import DIGIT_PNG, publish_constant
from live import live_server

TOKEN = "hot-swap-admin-token-0123456789"
HOT = {"1": 3, "2": 5, "4": 8}  # version -> class its constant model predicts


class Traffic:
    """Client threads posting predictions and recording every outcome."""

    def __init__(self, url: str, threads: int = 4):
        self.url = url
        self.results: list[tuple[float, int, str | None, int | None]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, i: int) -> None:
        session = requests.Session()
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                # Every few requests a fresh connection, so all workers are reached.
                s = session if n % 4 else requests
                r = s.post(self.url + "/v1/predict", data=DIGIT_PNG,
                           headers={"Content-Type": "image/png"}, timeout=10)
                body = r.json()
                version = body.get("model", {}).get("version")
                self.results.append((time.monotonic(), r.status_code, version, body.get("predicted_class")))
            except Exception as exc:  # noqa: BLE001 - every failure is recorded and asserted on
                self.errors.append(repr(exc))

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(15)

    def since(self, t0: float):
        return [r for r in self.results if r[0] >= t0]


def wait_converged(url: str, version: int, workers: int, timeout: float = 15.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        versions = worker_versions(url)
        if len(versions) >= workers and all(v == version for v in versions.values()):
            return time.monotonic()
        time.sleep(0.1)
    raise AssertionError(f"workers did not converge on {version}: {worker_versions(url)}")


def pin(url: str, version: str) -> requests.Response:
    return requests.put(url + "/v1/models/active", json={"version": version},
                        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)


def test_hot_swap_under_traffic(tmp_path):
    artifacts = tmp_path / "artifacts"
    assert publish_constant(artifacts, hot=3) == "1"
    workers = 3
    env = {"ARTIFACTS_DIR": artifacts, "ADMIN_TOKEN": TOKEN, "ACCESS_LOG": "false"}
    with live_server(env, tmp_path, workers=workers) as server, Traffic(server.url) as traffic:
        url = server.url
        wait_converged(url, 1, workers)
        time.sleep(0.5)

        # 1. A new version is published (as train.py does): every worker moves to it.
        t_publish = time.monotonic()
        assert publish_constant(artifacts, hot=5) == "2"
        t_converged = wait_converged(url, 2, workers)
        assert t_converged - t_publish < 5.0
        time.sleep(0.5)

        # 2. A corrupt version appears: it is refused, version 2 keeps serving.
        bad = artifacts / "mnist" / ".tmp-corrupt"
        bad.mkdir()
        (bad / ARTIFACT_FILE).write_bytes(b"PK\x03\x04 this is not a zip file")
        bad.rename(artifacts / "mnist" / "3")
        t_corrupt = time.monotonic()
        time.sleep(1.5)
        listing = requests.get(url + "/v1/models", timeout=5).json()
        assert listing["version"] == "2"
        assert listing["last_load_error"]["version"] == "3"
        assert worker_versions(url) and set(worker_versions(url).values()) == {2.0}

        # 3. Pin version 1 (rollback), then 4. follow the newest again.
        t_pin = time.monotonic()
        r = pin(url, "1")
        assert r.status_code == 200 and r.json()["version"] == "1"
        t_pinned = wait_converged(url, 1, workers)
        time.sleep(0.5)
        assert pin(url, "3").status_code == 422  # the corrupt version cannot be pinned
        t_unpin = time.monotonic()
        r = pin(url, "latest")
        assert r.status_code == 200 and r.json()["version"] == "2"
        t_unpinned = wait_converged(url, 2, workers)
        time.sleep(0.5)

        # 5. The artifacts directory is briefly unreadable (gone): version 2 keeps serving.
        t_gone = time.monotonic()
        (artifacts / "mnist").rename(artifacts / "mnist.away")
        time.sleep(1.5)
        (artifacts / "mnist.away").rename(artifacts / "mnist")
        t_back = time.monotonic()
        time.sleep(0.5)
        assert set(worker_versions(url).values()) == {2.0}

        # 6. A fixed-up version 4 arrives while the corrupt 3 stays: 4 is served.
        assert publish_constant(artifacts, hot=8) == "4"
        wait_converged(url, 4, workers)
        time.sleep(0.5)

    results = traffic.results
    assert not traffic.errors, traffic.errors[:5]
    assert len(results) > 200
    assert all(status == 200 for _, status, _, _ in results), \
        [r for r in results if r[1] != 200][:5]
    # Each response's prediction belongs to the version it names: no mixing.
    assert all(HOT[version] == cls for _, _, version, cls in results)
    # Versions in each phase are the ones legitimately active then.
    phases = [
        (t_publish, t_converged, {"1", "2"}), (t_converged + 0.3, t_corrupt, {"2"}),
        (t_corrupt, t_pin, {"2"}), (t_pinned + 0.3, t_unpin, {"1"}),
        (t_unpinned + 0.3, t_gone, {"2"}), (t_gone, t_back + 0.5, {"2"}),
    ]
    for start, end, allowed in phases:
        seen = {v for t, _, v, _ in results if start <= t < end}
        assert seen <= allowed, (allowed, seen)
    assert {v for _, _, v, _ in results} == {"1", "2", "4"}  # never the corrupt 3


def test_restart_comes_back_on_the_pinned_version(tmp_path):
    artifacts = tmp_path / "artifacts"
    publish_constant(artifacts, hot=3)
    publish_constant(artifacts, hot=5)
    env = {"ARTIFACTS_DIR": artifacts, "ADMIN_TOKEN": TOKEN}
    with live_server(env, tmp_path) as server:
        assert pin(server.url, "1").status_code == 200
    with live_server(env, tmp_path) as server:
        wait_converged(server.url, 1, workers=2)
        r = requests.post(server.url + "/v1/predict", data=DIGIT_PNG,
                          headers={"Content-Type": "image/png"}, timeout=5)
        assert r.json()["model"]["version"] == "1" and r.json()["predicted_class"] == 3


def test_service_starts_on_newest_valid_when_newest_is_corrupt(tmp_path):
    artifacts = tmp_path / "artifacts"
    publish_constant(artifacts, hot=3)
    (artifacts / "mnist" / "2").mkdir()
    shutil.copy(artifacts / "mnist" / "1" / ARTIFACT_FILE, artifacts / "mnist" / "2" / ARTIFACT_FILE)
    with open(artifacts / "mnist" / "2" / ARTIFACT_FILE, "r+b") as f:
        f.seek(200)
        f.write(b"\xff" * 16)  # flip bytes inside the weights: the checksum catches it
    with live_server({"ARTIFACTS_DIR": artifacts}, tmp_path) as server:
        listing = requests.get(server.url + "/v1/models", timeout=5).json()
        assert listing["version"] == "1"
        assert listing["last_load_error"]["version"] == "2"
        text = requests.get(server.url + "/metrics", timeout=5).text
        assert re.search(r'mnist_model_loads_total\{result="failure"\} [1-9]', text)


def test_invalid_settings_stop_the_server_with_a_clear_message(tmp_path):
    with live_server({"PORT": "not-a-port", "ADMIN_TOKEN": "short"}, tmp_path, ready=False) as server:
        assert server.process.wait(20) == 2
        log = server.log()
    assert "PORT" in log and "ADMIN_TOKEN" in log and "16 characters" in log
    assert "short" not in log  # the token value is never echoed


def test_no_server_banner(tmp_path):
    artifacts = tmp_path / "artifacts"
    publish_constant(artifacts, hot=3)
    with live_server({"ARTIFACTS_DIR": artifacts}, tmp_path) as server:
        for path in ("/healthz", "/nope", "/v1/models"):
            r = requests.get(server.url + path, timeout=5)
            assert r.headers["Server"] == "mnist-service", path  # gunicorn sends one; no version in it


def test_metrics_merge_across_workers(tmp_path):
    artifacts = tmp_path / "artifacts"
    publish_constant(artifacts, hot=3)
    with live_server({"ARTIFACTS_DIR": artifacts}, tmp_path, workers=3) as server:
        wait_converged(server.url, 1, workers=3)
        for _ in range(60):  # fresh connections spread over the workers
            assert requests.post(server.url + "/v1/predict", data=DIGIT_PNG,
                                 headers={"Content-Type": "image/png"}, timeout=5).status_code == 200
        text = requests.get(server.url + "/metrics", timeout=5).text
    count = re.search(r'mnist_http_request_duration_seconds_count\{endpoint="v1.predict",method="POST",'
                      r'status="200"\} ([0-9.]+)', text)
    assert count and float(count.group(1)) == 60.0
    answers = re.findall(r'mnist_answers_total\{[^}]*version="1"[^}]*\} ([0-9.]+)', text)
    assert sum(map(float, answers)) == 60.0
    assert len(re.findall(r'mnist_model_active_version\{pid="\d+"\} 1\.0', text)) == 3
