"""In-process micro-benchmarks: decode + preprocess + infer, forward passes, JSON.

    python -m bench.inprocess [--artifact artifacts/mnist/1/model.npz]

Prints the median and p90 time per call for each payload type (a 28x28 MNIST
PNG, a 280x280 canvas PNG with alpha, a 1-megapixel JPEG photo), the forward
pass for batch 1 and 256, and JSON encoding of a prediction response. Each
measurement rotates among distinct images, so no cache could help.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from model.artifact import load_artifact
from model.data import load_dataset, scale_pixels
from service.preprocessing import preprocess
from service.schemas import prediction_body

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ARTIFACT = REPO / "artifacts" / "mnist" / "1" / "model.npz"


def _digits(n: int) -> np.ndarray:
    for root in (REPO.parent / "shared" / "datasets", None):
        try:
            return load_dataset("mnist", root, download=False).test_images[:n]
        except Exception:  # noqa: BLE001 - fall back to synthetic strokes
            continue
    rng = np.random.default_rng(0)
    images = np.zeros((n, 28, 28), np.uint8)
    for im in images:
        im[rng.integers(4, 10):rng.integers(18, 24), rng.integers(8, 14):rng.integers(14, 20)] = 255
    return images


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


def timeit(fn, items, repeat: int = 5) -> tuple[float, float]:
    """Return (median, p90) seconds per call of ``fn(item)`` over ``repeat`` passes."""
    times = []
    for item in items[:3]:
        fn(item)
    for _ in range(repeat):
        for item in items:
            start = time.perf_counter()
            fn(item)
            times.append(time.perf_counter() - start)
    return float(np.median(times)), float(np.percentile(times, 90))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", default=str(DEFAULT_ARTIFACT))
    args = parser.parse_args(argv)
    model = load_artifact(args.artifact)
    net, labels = model.net, model.labels
    ref = {"name": "mnist", "version": "1"}
    print(f"artifact {args.artifact}: {net.arch.upper()} {net.describe()} "
          f"({net.macs() / 1e6:.2f}M multiply-adds per image)")
    rows = []
    for kind, items in payloads().items():
        rows.append((f"decode+preprocess {kind}", *timeit(preprocess, items)))
        rows.append((f"decode+preprocess+infer {kind}",
                     *timeit(lambda b: net.predict_proba(scale_pixels(preprocess(b)[None])), items)))
    rng = np.random.default_rng(0)
    one = [rng.random((1, 784), dtype=np.float32) for _ in range(64)]
    many = [rng.random((256, 784), dtype=np.float32) for _ in range(8)]
    rows.append(("forward batch 1", *timeit(net.predict_proba, one)))
    median256, p90_256 = timeit(net.predict_proba, many)
    rows.append(("forward batch 256", median256, p90_256))
    probs = net.predict_proba(one[0])[0]
    import orjson
    rows.append(("JSON encode prediction (orjson)",
                 *timeit(lambda p: orjson.dumps(prediction_body(p, labels, ref)), [probs] * 64)))
    import json
    rows.append(("JSON encode prediction (stdlib json)",
                 *timeit(lambda p: json.dumps(prediction_body(p, labels, ref)), [probs] * 64)))
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'median':>10}  {'p90':>10}")
    for name, median, p90 in rows:
        print(f"{name:<{width}}  {median * 1e3:8.3f}ms  {p90 * 1e3:8.3f}ms")
    flops = 2 * 256 * net.macs()
    A = rng.random((256, 784), dtype=np.float32)
    B = rng.random((784, 800), dtype=np.float32)
    gemm, _ = timeit(lambda _: A @ B, list(range(50)))
    print(f"forward batch 256: {flops / median256 / 1e9:.1f} GFLOP/s; "
          f"NumPy float32 GEMM 256x784x800: {2 * 256 * 784 * 800 / gemm / 1e9:.1f} GFLOP/s")

if __name__ == "__main__":
    main()
