"""Load, soak, a killed worker, overload and graceful shutdown, CI-sized.

The scenarios are tools/reliability.py's; the long versions are
``python -m bench.reliability load|soak|kill|overload``
(figures in RELIABILITY.md); these run the same code for a short time and
assert the properties: no failed request under mixed load, no memory or file
descriptor growth across traffic and 200 model reloads, only in-flight
requests lost when a worker is killed, fast 503s instead of unbounded
queueing, in-flight requests finished on SIGTERM.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from tools import reliability
from tools.loadgen import payloads

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None and not os.environ.get("CI"),
                                reason="wrk is not installed (apt-get install wrk; CI installs it)")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    return reliability.Scenario(tmp_path_factory.mktemp("reliability"), port=18620)


def test_mixed_load_has_no_failures(scenario):
    result = reliability.load(scenario, seconds=15, connections=32)
    assert result["requests"] > 2000  # real traffic (the mix includes 64- and 256-image batches)
    assert result["failed"] == 0, result
    assert set(result["statuses"]) == {"200"}


def test_soak_memory_and_fds_stay_flat_across_200_reloads(scenario):
    report = reliability.soak(scenario, seconds=40, reloads=200, slices=8)
    assert report["failed"] == 0
    assert report["requests"] > 8000
    # Growth per 10k requests after warm-up. A worker's RSS swings by 3-5 MB between samples
    # with the allocator's state across model reloads (measured: 81-86-81-86-81 MB, and floors
    # of +3.0 and -2.5 MB over the same run), so a 40-second run resolves no better than
    # about 5 MB per 10k requests (500 bytes a request); the long soak
    # (python -m bench.reliability soak) is the finer check.
    assert all(g < 5 * 1024 for g in report["rss_growth_kb_per_10k"]), report["rss_growth_kb_per_10k"]
    assert all(change <= 2 for change in report["fd_change"]), report["fd_change"]


def test_kill_9_loses_only_in_flight_requests(scenario):
    result = reliability.kill_worker(scenario, seconds=12, connections=32)
    assert result["replaced"], "the master did not replace the killed worker"
    assert result["recovery_seconds"] is not None and result["recovery_seconds"] < 5
    # At most the requests on the killed worker's connections (it holds some of the 32).
    assert result["failed"] <= 32, result
    assert result["statuses"].keys() == {"200"}  # counted (not an empty tally), and all 200


@pytest.mark.parametrize("worker_class", ["gthread", "sync"])
def test_overload_sheds_fast_with_503(scenario, worker_class):
    # CORS on: shedding does not depend on it (nor on the worker class). 512 clients each
    # sending again as soon as answered keep 512 requests waiting, so the queue time is about
    # 512 x (the mean time to answer one, under a millisecond for a 28x28 PNG) / 2 workers:
    # QUEUE_TIMEOUT 0.2 s lets part of them be served and sheds the rest, bounding every wait.
    result = reliability.overload(scenario, seconds=8, connections=512, queue_timeout=0.2,
                                  worker_class=worker_class, cors_origins="https://example.test")
    assert result["socket_errors"] == 0, result  # nothing times out or is dropped
    assert set(result["statuses"]) <= {"200", "503"}
    assert result["statuses"].get("503", 0) > 0 and result["shed"] > 0
    assert result["statuses"].get("200", 0) > 500  # and real work still gets done
    assert result["max_us"] < 3_000_000, "a request waited more than 3 s"


def test_sigterm_finishes_requests_in_flight(scenario, tmp_path):
    server = scenario.server("sigterm", WORKERS=4)  # four requests in flight, one in each sync worker
    jpegs = payloads(8)["photo_jpeg_1mp"]
    files = [("images", (f"{i}.jpg", jpegs[i % len(jpegs)], "image/jpeg")) for i in range(96)]
    answers = []

    def slow_batch():
        r = requests.post(server.url + "/v1/predict/batch", files=files, timeout=30)
        answers.append((r.status_code, len(r.json()["predictions"])))

    try:
        server.wait_ready(4)
        threads = [threading.Thread(target=slow_batch) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.15)  # the batches are being processed
        server.process.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(30)
        code = server.process.wait(30)
        with pytest.raises(requests.ConnectionError):
            requests.get(server.url + "/healthz", timeout=2)
    finally:
        server.stop()
    assert answers == [(200, 96)] * 4
    assert code == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_disk_full_during_training_leaves_no_version(tmp_path, mnist_source):
    directory, real = mnist_source
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], check=True)
    try:
        run = subprocess.run(
            [sys.executable, "train.py", "--data-dir", str(directory), "--out", str(mount), "--arch", "mlp",
             "--epochs", "1", "--hidden", "256", "--train-size", "2000", "--quiet", "--no-augment",
             "--independent", "0",
             *([] if real else ["--no-verify"])],
            cwd=reliability.REPO, capture_output=True, text=True, timeout=300)
        leftovers = sorted(p.name for p in (mount / "mnist").iterdir()) if (mount / "mnist").exists() else []
    finally:
        subprocess.run(["umount", str(mount)], check=True)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "No space left on device" in run.stderr and "No version was published" in run.stderr
    assert leftovers == []  # no version directory and no temporary directory left behind
