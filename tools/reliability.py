"""Reliability scenarios: load, soak, a worker killed under load, overload.

Every run starts its own gunicorn on 127.0.0.1 (processes are tracked by PID,
never by name), drives it with wrk (``loadgen.run_wrk``) with counting on
(statuses and the model version of every answer), prints its figures and
returns them as a dict. ``tests/system/test_reliability.py`` runs short variants and
asserts on them; ``python -m bench.reliability`` runs the long ones.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import requests

from tools.loadgen import REPO, Server, build_manifests, run_wrk
# The traffic mix: how many times each cell's requests appear in the rotation.
MIX = {"predict_png28": 6, "predict_canvas280": 1, "predict_jpeg1mp": 1, "v2_json1": 2,
       "v2_binary256": 1, "batch64": 1}
TOKEN = "reliability-admin-token-0123456789"


# -- the server --------------------------------------------------------------------


class Gunicorn(Server):
    """Our service under gunicorn, with its workers found through /proc."""

    def __init__(self, artifacts: Path, port: int, log: Path, **env):
        super().__init__("service", "service:create_app()", port, {
            "ARTIFACTS_DIR": str(artifacts), "ADMIN_TOKEN": TOKEN, "ACCESS_LOG": "false",
            "POLL_INTERVAL": "0.5", **env}, log)

    def wait_ready(self, workers: int, timeout: float = 30) -> None:
        """Wait until ``workers`` workers each report a loaded model in /metrics."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log()[-2000:]}")
            if len(_worker_versions_or_none(self.url)) >= workers:
                return
            time.sleep(0.1)
        raise TimeoutError("gunicorn workers not ready")


def worker_versions(url: str, timeout: float = 5) -> dict[str, float]:
    """Return {worker pid: version it serves}, from the per-worker gauge in /metrics."""
    text = requests.get(url + "/metrics", timeout=timeout).text
    return {pid: float(v) for pid, v in
            re.findall(r'mnist_model_active_version\{pid="(\d+)"\} ([0-9.]+)', text)}


def _worker_versions_or_none(url: str) -> dict[str, float]:
    try:
        return worker_versions(url, timeout=1)
    except requests.RequestException:
        return {}


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# -- traffic ---------------------------------------------------------------------------


def mixed_manifest(directory: Path) -> Path:
    """Write the request bodies and a manifest mixing the endpoints as in MIX."""
    manifests = build_manifests(directory)
    lines = []
    for cell, weight in MIX.items():
        lines.extend(manifests[cell].read_text().splitlines() * weight)
    path = directory / "mixed.manifest"
    # Interleave so that every stretch of the rotation holds every kind of request.
    random.Random(0).shuffle(lines)
    path.write_text("\n".join(lines) + "\n")
    return path


def wrk(url: str, manifest: Path, connections: int, seconds: float, timeout: float = 10,
        stamp: bool = False) -> dict:
    """Run wrk, counting statuses; return requests, statuses, versions, errors, latency."""
    result = run_wrk(url, manifest, connections, seconds, timeout=timeout, count=True, stamp=stamp)
    result["failed"] = result["socket_errors"] + sum(
        n for status, n in result["statuses"].items() if not status.startswith("2"))
    return result


def _fmt(result: dict) -> str:
    return (f"{result['requests']:,} requests, {result['rps']:,.0f}/s, p50 {result['p50_us'] / 1000:.1f} ms, "
            f"p99 {result['p99_us'] / 1000:.1f} ms, max {result['max_us'] / 1000:.0f} ms, "
            f"statuses {result['statuses']}, socket errors {result['socket_errors']}")


class Scenario:
    """A scratch artifacts directory (a copy of the bundled model), payloads, a port."""

    def __init__(self, workdir: Path | None = None, port: int = 18610):
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="mnist-reliability-"))
        self.artifacts = self.dir / "artifacts"
        if not self.artifacts.exists():
            shutil.copytree(REPO / "artifacts", self.artifacts)
        self.manifest = mixed_manifest(self.dir / "payloads")
        self.port = port

    def server(self, name: str, **env) -> Gunicorn:
        return Gunicorn(self.artifacts, self.port, self.dir / f"{name}.log", **env)


# -- the runs ----------------------------------------------------------------------------


def load(scenario: Scenario, seconds: float = 60, connections: int = 32) -> dict:
    server = scenario.server("load")
    try:
        server.wait_ready(2)
        result = wrk(server.url, scenario.manifest, connections, seconds)
    finally:
        server.stop()
    print(f"load ({seconds:g} s, {connections} connections, mixed traffic): {_fmt(result)}")
    return result


def soak(scenario: Scenario, seconds: float = 600, reloads: int = 200, slices: int = 10) -> dict:
    """Traffic in slices; between slices, model reloads (pin 1 <-> 2); RSS and fds per worker."""
    shutil.copytree(scenario.artifacts / "mnist" / "1", scenario.artifacts / "mnist" / "2",
                    dirs_exist_ok=True)
    server = scenario.server("soak", MAX_REQUESTS=0, POLL_INTERVAL=0.05)
    samples = []
    try:
        server.wait_ready(2)
        wrk(server.url, scenario.manifest, 16, 5)  # warm-up: caches, allocator pools
        workers = server.workers()

        def sample(done: int) -> None:
            time.sleep(0.5)  # let the load generator's connections close
            samples.append({"requests": done, "rss_kb": [rss_kb(p) for p in workers],
                            "fds": [open_fds(p) for p in workers]})

        total = 0
        sample(0)
        per_slice_reloads = max(1, reloads // slices)
        failed = 0
        for _ in range(slices):
            result = wrk(server.url, scenario.manifest, 16, seconds / slices)
            total += result["requests"]
            failed += result["failed"]
            for i in range(per_slice_reloads):  # every pin makes every worker load a version
                version = "2" if i % 2 == 0 else "1"
                r = requests.put(server.url + "/v1/models/active", json={"version": version},
                                 headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
                r.raise_for_status()
                time.sleep(0.12)  # > POLL_INTERVAL: the other worker follows
            sample(total)
        if server.workers() != workers:
            raise RuntimeError("a worker was replaced during the soak")
    finally:
        server.stop()
    # Growth from the early samples to the late ones, after the first slice (it warms the
    # allocator). A worker's RSS swings by a model's size (about 5 MB for the MLP) with the
    # pins, depending on whether the previous version was freed when sampled, so each end
    # takes the lowest of its samples: a leak raises the floor, a swing does not.
    after = samples[1:]
    early, late = after[:max(1, len(after) // 2)], after[-max(1, len(after) // 2):]
    span = max(1, late[-1]["requests"] - early[0]["requests"])
    growth = [(min(s["rss_kb"][w] for s in late) - min(s["rss_kb"][w] for s in early)) / span * 10_000
              for w in range(len(workers))]
    # Also after the first slice: prometheus-client opens a worker's histogram
    # file (file + mmap, 2 fds) on that worker's first request, which may come late.
    first, last = samples[1], samples[-1]
    fd_change = [b - a for a, b in zip(first["fds"], last["fds"])]
    report = {"requests": total, "failed": failed, "reloads": reloads, "samples": samples,
              "rss_growth_kb_per_10k": growth, "fd_change": fd_change}
    print(f"soak: {total:,} requests, {failed} failed, {reloads} pins (each reloads every worker); "
          f"RSS per worker {[s // 1024 for s in last['rss_kb']]} MB, growth "
          f"{[round(g, 1) for g in growth]} KB per 10k requests; open fds "
          f"{first['fds']} -> {last['fds']}")
    return report


def kill_worker(scenario: Scenario, seconds: float = 20, connections: int = 32) -> dict:
    """kill -9 one worker a third into a load run; count failures and time the recovery."""
    server = scenario.server("kill", WORKERS=2)
    result_box: dict = {}
    try:
        server.wait_ready(2)
        load_thread = threading.Thread(
            target=lambda: result_box.update(wrk(server.url, scenario.manifest, connections, seconds)))
        load_thread.start()
        time.sleep(seconds / 3)
        victim = server.workers()[0]
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        recovered = None
        while time.monotonic() - killed_at < seconds:
            workers = server.workers()
            if victim not in workers and len(workers) == 2 and (
                    {str(pid) for pid in workers} <= _worker_versions_or_none(server.url).keys()):
                recovered = time.monotonic() - killed_at
                break
            time.sleep(0.05)
        load_thread.join(seconds + 60)
        replaced = victim not in server.workers() and len(server.workers()) == 2
    finally:
        server.stop()
    result = result_box
    result.update(recovery_seconds=recovered, replaced=replaced)
    print(f"kill -9 worker {victim} under load: {_fmt(result)}; failed {result['failed']}; "
          f"its replacement had the model loaded {recovered:.2f} s later")
    return result


def overload(scenario: Scenario, seconds: float = 15, connections: int = 512,
             queue_timeout: float = 0.1, worker_class: str = "sync", cors_origins: str = "") -> dict:
    """Many more connections than the workers can serve; the excess is shed with 503.

    wrk stamps each request with ``X-Request-Start`` as it sends it, as the proxy in
    front of the service does (service/admission.py measures the wait from it).
    """
    server = scenario.server(f"overload-{worker_class}", QUEUE_TIMEOUT=queue_timeout, WORKER_CONNECTIONS=1000,
                             BACKLOG=2048, WORKER_CLASS=worker_class, CORS_ORIGINS=cors_origins)
    try:
        server.wait_ready(2)
        result = wrk(server.url, scenario.manifest, connections, seconds, timeout=10, stamp=True)
        text = requests.get(server.url + "/metrics", timeout=5).text
    finally:
        server.stop()
    shed = next((float(ln.split()[-1]) for ln in text.splitlines()
                 if ln.startswith("mnist_shed_requests_total ")), 0.0)
    result["shed"] = shed
    print(f"overload ({connections} connections, {worker_class}, QUEUE_TIMEOUT {queue_timeout:g} s): {_fmt(result)}; "
          f"shed {shed:.0f}")
    return result
