"""Serving benchmark: the product against the obvious implementation, under wrk.

    python -m bench.serve                      # full run: every cell, 3 rounds, ~10 s per cell
    python -m bench.serve --seconds 5 --rounds 1 --cells predict_png28   # a quick look

Both servers run under gunicorn with the same configuration file
(``gunicorn.conf.py``: the same worker class, workers and threads) on
127.0.0.1: ours (``service:create_app()``) and ``bench.reference_app:app``.
For every cell (endpoint x payload x concurrency) wrk drives one server and
then the other, round after round, so drift on this shared 2-core machine
hits both alike; the table reports the median over rounds with the ratio.
Requests rotate among many distinct images (see ``wrk_rotate.lua``).
Results go to ``bench/out/serve-<timestamp>.json`` and are printed as a
Markdown table for ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import requests

from bench.inprocess import _digits, payloads

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
LUA = REPO / "bench" / "wrk_rotate.lua"
DISTINCT = 64  # distinct images per payload type


@dataclass(frozen=True)
class Cell:
    name: str
    endpoint: str
    payload: str
    images_per_request: int
    path: str


CELLS = [
    Cell("predict_png28", "/v1/predict", "28x28 MNIST PNG (multipart)", 1, "/v1/predict"),
    Cell("predict_canvas280", "/v1/predict", "280x280 canvas PNG, alpha (multipart)", 1, "/v1/predict"),
    Cell("predict_jpeg1mp", "/v1/predict", "1 MP photo JPEG (multipart)", 1, "/v1/predict"),
    Cell("batch64", "/v1/predict/batch", "64 x 28x28 PNG (multipart)", 64, "/v1/predict/batch"),
    Cell("v2_json1", "/v2/.../infer", "1 x FP32 [1,784] JSON", 1, "/v2/models/mnist/infer"),
    Cell("v2_json256", "/v2/.../infer", "256 x FP32 [256,784] JSON", 256, "/v2/models/mnist/infer"),
    Cell("v2_binary256", "/v2/.../infer", "256 x UINT8 [256,784] binary", 256, "/v2/models/mnist/infer"),
]


# -- payloads ---------------------------------------------------------------------


def _multipart(files: list[tuple[str, bytes, str]], field: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, data, mime in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
                     f'filename="{name}"\r\nContent-Type: {mime}\r\n\r\n'.encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def build_manifests(directory: Path) -> dict[str, Path]:
    """Write the request bodies of every cell; return cell name -> manifest path."""
    directory.mkdir(parents=True, exist_ok=True)
    images = payloads(DISTINCT)
    digits = _digits(DISTINCT * 4)
    mimes = {"mnist_png_28": "image/png", "canvas_png_280_alpha": "image/png", "photo_jpeg_1mp": "image/jpeg"}
    rows: dict[str, list[str]] = {c.name: [] for c in CELLS}

    def add(cell: str, i: int, body: bytes, headers: dict[str, str]) -> None:
        path = directory / f"{cell}-{i:03d}.bin"
        path.write_bytes(body)
        extra = "".join(f"\t{k}: {v}" for k, v in headers.items())
        route = next(c.path for c in CELLS if c.name == cell)
        rows[cell].append(f"POST\t{route}\t{path}{extra}")

    for cell, kind in (("predict_png28", "mnist_png_28"), ("predict_canvas280", "canvas_png_280_alpha"),
                       ("predict_jpeg1mp", "photo_jpeg_1mp")):
        for i, data in enumerate(images[kind]):
            body, ctype = _multipart([(f"{i}.png", data, mimes[kind])], "image")
            add(cell, i, body, {"Content-Type": ctype})
    for i in range(16):
        files = [(f"{j}.png", images["mnist_png_28"][(i * 7 + j) % DISTINCT], "image/png") for j in range(64)]
        body, ctype = _multipart(files, "images")
        add("batch64", i, body, {"Content-Type": ctype})
    scaled = digits.reshape(len(digits), 784).astype(np.float32) / 255.0
    for i in range(DISTINCT):
        x = scaled[i:i + 1]
        body = json.dumps({"inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 784],
                                       "data": [round(float(v), 4) for v in x.ravel()]}]}).encode()
        add("v2_json1", i, body, {"Content-Type": "application/json"})
    for i in range(8):
        x = np.roll(scaled, -i * 31, axis=0)[:256] if len(scaled) >= 256 else np.resize(scaled, (256, 784))
        body = json.dumps({"inputs": [{"name": "images", "datatype": "FP32", "shape": [256, 784],
                                       "data": [round(float(v), 4) for v in x.ravel()]}]}).encode()
        add("v2_json256", i, body, {"Content-Type": "application/json"})
        raw = (x * 255).round().astype(np.uint8).tobytes()
        header = json.dumps({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [256, 784],
                                         "parameters": {"binary_data_size": len(raw)}}],
                             "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}},
                                         {"name": "predicted_class",
                                          "parameters": {"binary_data": True}}]}).encode()
        add("v2_binary256", i, header + raw, {"Content-Type": "application/octet-stream",
                                               "Inference-Header-Content-Length": str(len(header))})
    manifests = {}
    for cell, lines in rows.items():
        manifests[cell] = directory / f"{cell}.manifest"
        manifests[cell].write_text("\n".join(lines) + "\n")
    return manifests


# -- servers ----------------------------------------------------------------------


class Server:
    def __init__(self, name: str, app: str, port: int, env: dict[str, str], log: Path):
        self.name, self.url = name, f"http://127.0.0.1:{port}"
        full_env = {**os.environ, **env, "HOST": "127.0.0.1", "PORT": str(port)}
        full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.log_path, self.log = log, open(log, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", app],
            cwd=REPO, env=full_env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}")
            try:
                if requests.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)  # gunicorn.conf.py: graceful_timeout = 20
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def run_wrk(url: str, manifest: Path, connections: int, seconds: float, timeout: float = 10,
            count: bool = False) -> dict:
    """Run wrk with ``wrk_rotate.lua`` and return its summary, plus rps, socket errors
    (connect, read, write, timeout) and total errors (those and non-2xx/3xx statuses)."""
    threads = min(2, connections)
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, int(round(seconds)))}s",
           "--timeout", f"{int(timeout)}s", "-s", str(LUA), url, "--", str(manifest),
           *(["count"] if count else [])]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, cwd=REPO)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")
    result = json.loads(line[len("WRK_JSON "):])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["socket_errors"] = sum(result[k] for k in ("connect", "read", "write", "timeout"))
    result["errors"] = result["socket_errors"] + result["status"]
    return result


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    print("wrk not found; installing Debian's wrk", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per cell and server")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", default="1,8,32")
    parser.add_argument("--cells", default=",".join(c.name for c in CELLS))
    parser.add_argument("--workers", default=os.environ.get("WORKERS", "2"))
    parser.add_argument("--threads", default=os.environ.get("THREADS", "2"))
    parser.add_argument("--worker-class", default=os.environ.get("WORKER_CLASS", "gthread"))
    parser.add_argument("--worker-connections", default=os.environ.get("WORKER_CONNECTIONS", "16"),
                        help="per gthread worker; 16 splits wrk's 32 connections evenly")
    parser.add_argument("--no-reference", action="store_true")
    args = parser.parse_args(argv)
    ensure_wrk()
    cells = [c for c in CELLS if c.name in args.cells.split(",")]
    connections = [int(c) for c in args.connections.split(",")]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    work = OUT / f"serve-{stamp}"
    manifests = build_manifests(work / "payloads")
    env = {"WORKERS": args.workers, "THREADS": args.threads, "WORKER_CLASS": args.worker_class,
           "WORKER_CONNECTIONS": args.worker_connections}
    servers = [Server("ours", "service:create_app()", 18411,
                      {**env, "ACCESS_LOG": "true"}, work / "ours.log")]
    if not args.no_reference:
        servers.append(Server("reference", "bench.reference_app:app", 18412, env, work / "reference.log"))
    results: dict[tuple[str, int, str], list[dict]] = {}
    try:
        for server in servers:
            server.wait_ready()
        for server in servers:  # warm up: every worker booted, caches and allocators primed
            for cell in cells:
                run_wrk(server.url, manifests[cell.name], 8, 2)
        print(f"# {len(cells)} cells x {len(connections)} concurrencies x {args.rounds} rounds x "
              f"{len(servers)} servers, {args.seconds:g} s each", file=sys.stderr)
        for round_ in range(args.rounds):
            for cell in cells:
                for c in connections:
                    for server in (servers if round_ % 2 == 0 else servers[::-1]):
                        r = run_wrk(server.url, manifests[cell.name], c, args.seconds)
                        results.setdefault((cell.name, c, server.name), []).append(r)
                        print(f"round {round_ + 1} {cell.name:18s} c={c:<3d} {server.name:9s} "
                              f"{r['rps']:9.1f} req/s p99 {r['p99_us'] / 1000:7.2f} ms "
                              f"errors {r['errors']}", file=sys.stderr, flush=True)
    finally:
        for server in servers:
            server.stop()

    def median(cell: str, c: int, server: str, key: str) -> float | None:
        rows = results.get((cell, c, server))
        return statistics.median(r[key] for r in rows) if rows else None

    table = []
    for cell in cells:
        for c in connections:
            row = {"cell": cell.name, "endpoint": cell.endpoint, "payload": cell.payload, "connections": c}
            for server in ("ours", "reference"):
                if (cell.name, c, server) not in results:
                    continue
                row[server] = {k: median(cell.name, c, server, k)
                               for k in ("rps", "p50_us", "p90_us", "p99_us")}
                row[server]["images_per_s"] = row[server]["rps"] * cell.images_per_request
                row[server]["errors"] = sum(r["errors"] for r in results[(cell.name, c, server)])
            table.append(row)
    report = {
        "date": stamp, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "command": " ".join(["python -m bench.serve", *(argv if argv is not None else sys.argv[1:])]),
        "seconds": args.seconds, "rounds": args.rounds, "workers": args.workers, "threads": args.threads,
        "worker_class": args.worker_class, "worker_connections": args.worker_connections,
        "rows": table,
    }
    (OUT / f"serve-{stamp}.json").write_text(json.dumps(report, indent=2))
    print(markdown(report))
    return 0


def markdown(report: dict) -> str:
    lines = ["| endpoint | payload | conns | req/s | images/s | p50 ms | p90 ms | p99 ms | errors "
             "| reference req/s | ref p99 ms | ratio |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in report["rows"]:
        ours, ref = row.get("ours"), row.get("reference")
        if ours is None:
            continue
        ratio = f"{ours['rps'] / ref['rps']:.2f}x" if ref and ref["rps"] else "n/a"
        lines.append(
            f"| {row['endpoint']} | {row['payload']} | {row['connections']} | {ours['rps']:,.0f} "
            f"| {ours['images_per_s']:,.0f} | {ours['p50_us'] / 1000:.2f} | {ours['p90_us'] / 1000:.2f} "
            f"| {ours['p99_us'] / 1000:.2f} | {ours['errors']} "
            f"| {ref['rps']:,.0f} | {ref['p99_us'] / 1000:.2f} | {ratio} |" if ref else
            f"| {row['endpoint']} | {row['payload']} | {row['connections']} | {ours['rps']:,.0f} "
            f"| {ours['images_per_s']:,.0f} | {ours['p50_us'] / 1000:.2f} | {ours['p90_us'] / 1000:.2f} "
            f"| {ours['p99_us'] / 1000:.2f} | {ours['errors']} | | | |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
