"""What a shadow version costs, and how exact a canary's share is, on a real server.

    python -m bench.rollout [--seconds 20] [--connections 32] [--canary-requests 10000]

Serves the newest bundled artifact as version 1 and the one before it as
version 2 (both the served kind of network, so the shadow costs what a real
one would), under gunicorn as configured by default, and drives 28x28 PNG
predictions with wrk:

1. no shadow; a shadow at ``SHADOW_SAMPLE=0.1``; a shadow on every request.
   Throughput and p99 latency of the answers, and the comparisons made.
2. a 10% canary: wrk sends ``--canary-requests`` requests, each with its own
   ``X-Client-ID``, and counts which version answered.

Each server is started fresh, on 127.0.0.1, and stopped by PID.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import requests

from model.store import ArtifactStore
from tools.loadgen import REPO, build_manifests, ensure_wrk, multipart_body, payloads, run_wrk
from tools.reliability import TOKEN, Gunicorn

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _artifacts(root: Path) -> Path:
    """Copy the newest bundled version as 1 and the one before it as 2."""
    bundled = ArtifactStore(REPO / "artifacts", "mnist").versions()
    for version, entry in (("1", bundled[-1]), ("2", bundled[-2])):
        shutil.copytree(entry.path.parent, root / "mnist" / version)
    return root


def _serve(artifacts: Path, port: int, log: Path, **env) -> Gunicorn:
    server = Gunicorn(artifacts, port, log, **env)
    server.wait_ready(2)
    requests.put(server.url + "/v1/models/active", json={"version": "1"}, headers=AUTH, timeout=10)
    return server


def _stop(server: Gunicorn) -> None:
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(60)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _canary_manifest(directory: Path, n: int) -> Path:
    """Write ``n`` requests for one 28x28 PNG, each with its own X-Client-ID."""
    body, ctype = multipart_body([("d.png", payloads(1)["mnist_png_28"][0], "image/png")], "image")
    (directory / "canary.bin").write_bytes(body)
    lines = [f"POST\t/v1/predict\t{directory / 'canary.bin'}\tContent-Type: {ctype}\tX-Client-ID: client-{i:06d}"
             for i in range(n)]
    path = directory / "canary.manifest"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--canary-requests", type=int, default=10_000)
    p.add_argument("--canary-percent", type=float, default=10.0)
    args = p.parse_args(argv)
    ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="bench-rollout-"))
    servers: list[Gunicorn] = []

    def stop_all(*_):
        for s in servers:
            if s.process.poll() is None:
                s.process.send_signal(signal.SIGTERM)
        sys.exit(130)

    signal.signal(signal.SIGTERM, stop_all)
    try:
        artifacts = _artifacts(work / "artifacts")
        png = build_manifests(work / "bodies")["predict_png28"]
        rows = []
        for name, sample in (("no shadow", None), ("shadow, SHADOW_SAMPLE=0.1", 0.1),
                             ("shadow on every request", 1.0)):
            server = _serve(artifacts, _free_port(), work / f"{len(rows)}.log",
                            **({} if sample is None else {"SHADOW_SAMPLE": sample}))
            servers.append(server)
            if sample is not None:
                requests.put(server.url + "/v1/models/shadow", json={"version": "2"}, headers=AUTH, timeout=10)
            run_wrk(server.url, png, args.connections, 3)  # warm-up
            result = run_wrk(server.url, png, args.connections, args.seconds)
            time.sleep(1)
            shadow = requests.get(server.url + "/v1/models", timeout=10).json()["shadow"]
            metrics = requests.get(server.url + "/metrics", timeout=10).text
            dropped = next((float(line.split()[-1]) for line in metrics.splitlines()
                            if line.startswith("mnist_shadow_dropped_total ")), 0.0)
            rows.append((name, result["rps"], result["p99_us"] / 1000, result["errors"],
                         shadow["compared"] if shadow else 0, shadow and shadow["disagreement_rate"], dropped))
            _stop(server)
            servers.remove(server)
        base_rps, base_p99 = rows[0][1], rows[0][2]
        print(f"\n28x28 PNG predictions, {args.connections} connections, {args.seconds:.0f} s each "
              "(version 1 answers; version 2 is the shadow)")
        print(f"{'configuration':<28}{'req/s':>9}{'vs none':>9}{'p99 ms':>9}{'vs none':>9}{'errors':>8}"
              f"{'compared':>10}{'disagree':>10}{'dropped':>9}")
        for name, rps, p99, errors, compared, rate, dropped in rows:
            print(f"{name:<28}{rps:9.0f}{(rps / base_rps - 1) * 100:+8.1f}%{p99:9.1f}{(p99 / base_p99 - 1) * 100:+8.1f}%"
                  f"{errors:8d}{compared:10d}{'' if rate is None else f'{100 * rate:.1f}%':>10}{dropped:9.0f}")

        server = _serve(artifacts, _free_port(), work / "canary.log")
        servers.append(server)
        requests.put(server.url + "/v1/models/canary", json={"version": "2", "percent": args.canary_percent},
                     headers=AUTH, timeout=10)
        manifest = _canary_manifest(work, args.canary_requests)
        # wrk's rotation walks the manifest: the first pass covers every client once.
        seconds = max(3.0, args.canary_requests / max(rows[0][1], 1.0) * 1.1)
        result = run_wrk(server.url, manifest, args.connections, seconds, count=True)
        versions = result.get("versions", {})
        total = sum(versions.values())
        share = versions.get("2", 0) / total if total else 0.0
        print(f"\ncanary at {args.canary_percent:.0f}%: {total} requests from {args.canary_requests} distinct "
              f"clients, version 2 answered {100 * share:.2f}% (target within 2 points), errors {result['errors']}")
        _stop(server)
        servers.remove(server)
    finally:
        for s in servers:
            if s.process.poll() is None:
                s.process.send_signal(signal.SIGTERM)
                s.process.wait(60)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
