"""Load generation for the system tests and benchmarks: payloads, gunicorn servers, wrk.

    payloads(n)              n distinct encoded images of each benchmark payload type
    number_photos(n)         n distinct phone photos of 4-digit numbers (the /v1/read payload)
    CELLS, build_manifests   the request bodies of every benchmark cell, and wrk manifests of them
    bench_run                a benchmark's dated folder under bench/out, its manifests and cells
    settings_from            NAME=VALUE items (a benchmark's --env) as settings
    multipart_body           a multipart/form-data upload of some files
    Server                   a gunicorn on 127.0.0.1 (PID tracked, stopped with SIGTERM)
    run_wrk                  wrk through ``wrk_rotate.lua``: rotating requests, a JSON summary

Used by tests/system (short runs with assertions) and by bench/ (long runs that
print figures); the Lua script stamps each request with ``X-Request-Start``
when asked, as the proxy in front does.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import requests
from PIL import Image, ImageFilter

from model.data import load_dataset

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"  # what benchmarks write (ignored by git)
LUA = Path(__file__).resolve().with_name("wrk_rotate.lua")
DISTINCT = 64  # distinct images per payload type


def _digits(n: int) -> np.ndarray:
    return _labelled_digits(n)[0]


def _labelled_digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``n`` MNIST test digits and their labels (synthetic strokes, labelled 0, without MNIST)."""
    for root in (REPO.parent / "shared" / "datasets", None):
        try:
            mnist = load_dataset("mnist", root, download=False)
            return mnist.test_images[:n], mnist.test_labels[:n]
        except Exception:  # noqa: BLE001 - fall back to synthetic strokes
            continue
    rng = np.random.default_rng(0)
    images = np.zeros((n, 28, 28), np.uint8)
    for im in images:
        im[rng.integers(4, 10):rng.integers(18, 24), rng.integers(8, 14):rng.integers(14, 20)] = 255
    return images, np.zeros(n, np.uint8)


def number_photos(n: int = DISTINCT, seed: int = 0) -> list[bytes]:
    """Return ``n`` distinct phone photos (1155x866 JPEG) of 4-digit numbers written with MNIST
    test digits (``evaluation.composed``: digits apart, as ``bench.inprocess`` reads them)."""
    from evaluation.composed import compose, photo

    digits, labels = _labelled_digits(max(4 * n, 64))
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        pick = rng.choice(len(digits), 4, replace=False)
        number = compose(list(digits[pick]), list(labels[pick]), rng, touching=False)
        out.append(photo(number, rng, size=(1155, 866)))
    return out


def payloads(n: int = 64) -> dict[str, list[bytes]]:
    """Return ``n`` distinct encoded images of each benchmark payload type."""
    digits = _digits(n)
    out: dict[str, list[bytes]] = {"mnist_png_28": [], "canvas_png_280_alpha": [], "photo_jpeg_1mp": []}
    rng = np.random.default_rng(1)
    for d in digits:
        buf = io.BytesIO()
        Image.fromarray(d).save(buf, "PNG")
        out["mnist_png_28"].append(buf.getvalue())
        rgba = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
        rgba.putalpha(Image.fromarray(d).resize((280, 280), Image.BILINEAR))
        buf = io.BytesIO()
        rgba.save(buf, "PNG")
        out["canvas_png_280_alpha"].append(buf.getvalue())
        paper = np.linspace(170, 235, 1152)[None, :] * np.ones((864, 1))
        ink = np.zeros((864, 1152))
        big = np.asarray(Image.fromarray(d).resize((500, 500), Image.BICUBIC), float) / 255
        y, x = rng.integers(50, 300), rng.integers(50, 600)
        ink[y:y + 500, x:x + 500] = big
        photo = (paper * (1 - 0.75 * ink) + rng.normal(0, 4, ink.shape)).clip(0, 255).astype(np.uint8)
        image = Image.fromarray(photo).filter(ImageFilter.GaussianBlur(1)).convert("RGB")
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=85)
        out["photo_jpeg_1mp"].append(buf.getvalue())
    return out


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
    Cell("read_jpeg1mp", "/v1/read", "4-digit number, 1 MP photo JPEG (multipart)", 1, "/v1/read"),
    Cell("v2_json1", "/v2/.../infer", "1 x FP32 [1,784] JSON", 1, "/v2/models/mnist/infer"),
    Cell("v2_json256", "/v2/.../infer", "256 x FP32 [256,784] JSON", 256, "/v2/models/mnist/infer"),
    Cell("v2_binary256", "/v2/.../infer", "256 x UINT8 [256,784] binary", 256, "/v2/models/mnist/infer"),
]


# -- payloads ---------------------------------------------------------------------


def multipart_body(files: list[tuple[str, bytes, str]], field: str) -> tuple[bytes, str]:
    """Return a multipart/form-data body of ``files`` (name, bytes, type) under ``field``, and its Content-Type."""
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
            body, ctype = multipart_body([(f"{i}.png", data, mimes[kind])], "image")
            add(cell, i, body, {"Content-Type": ctype})
    for i, data in enumerate(number_photos(DISTINCT)):
        body, ctype = multipart_body([(f"number-{i}.jpg", data, "image/jpeg")], "image")
        add("read_jpeg1mp", i, body, {"Content-Type": ctype})
    for i in range(16):
        files = [(f"{j}.png", images["mnist_png_28"][(i * 7 + j) % DISTINCT], "image/png") for j in range(64)]
        body, ctype = multipart_body(files, "images")
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


class Server:
    """A gunicorn serving ``app`` on 127.0.0.1:``port``, with ``env`` over this process's
    environment, its output in ``log``; tracked by PID and stopped with SIGTERM."""

    def __init__(self, name: str, app: str, port: int, env: dict[str, str], log: Path):
        self.name, self.url, self.log_path = name, f"http://127.0.0.1:{port}", log
        full_env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), **{k: str(v) for k, v in env.items()}}
        full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", app],
                cwd=REPO, env=full_env, stdout=out, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def workers(self) -> list[int]:
        """The master's children (its workers), through /proc."""
        try:
            return [int(p) for p in Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()]
        except OSError:
            return []

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                if requests.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout}s:\n{self.log()[-3000:]}")

    def stop(self, timeout: float = 30) -> int:  # gunicorn.conf.py: graceful_timeout = 20
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def bench_run(kind: str, cell_names: str) -> tuple[str, Path, dict[str, Path], list[Cell]]:
    """Start a benchmark run: its UTC stamp, its folder ``bench/out/<kind>-<stamp>`` with every
    cell's request bodies, the manifests (``build_manifests``) and the cells named (comma-separated)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    work = OUT / f"{kind}-{stamp}"
    return stamp, work, build_manifests(work / "payloads"), [c for c in CELLS if c.name in cell_names.split(",")]


def settings_from(items: list[str]) -> dict[str, str]:
    """Return ``NAME=VALUE`` command-line items (``--env``) as a dict of settings."""
    return dict(item.split("=", 1) for item in items)


def run_wrk(url: str, manifest: Path, connections: int, seconds: float, timeout: float = 10,
            count: bool = False, stamp: bool = False) -> dict:
    """Run wrk with ``wrk_rotate.lua`` and return its summary, plus rps, socket errors
    (connect, read, write, timeout) and total errors (those and non-2xx/3xx statuses).

    ``count`` tallies every response's status and model version; ``stamp`` sends each
    request with ``X-Request-Start`` set to the moment wrk sends it (as a proxy would).
    """
    threads = min(2, connections)
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, int(round(seconds)))}s",
           "--timeout", f"{int(timeout)}s", "-s", str(LUA), url, "--", str(manifest),
           *(["count"] if count else []), *(["stamp"] if stamp else [])]
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


