"""In-process micro-benchmarks: decode + preprocess + infer, forward passes, JSON.

    python -m bench.inprocess [--artifact artifacts/mnist/2/model.npz]   (default: the newest bundled)

Prints the median and p90 time per call for each payload type (a 28x28 MNIST
PNG, a 280x280 canvas PNG with alpha, a 1-megapixel JPEG photo) through
preprocessing and through the served prediction (probabilities and digit
score, ``LoadedModel.predict``), reading a 4-digit number from a 1-megapixel
phone photo (``imaging.numbers``), the forward pass for batch 1 and 256, and
JSON encoding of a prediction response. Each measurement rotates among
distinct images, so no cache could help.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from evaluation.numbers import reader_for
from model.artifact import load_artifact
from model.data import scale_pixels
from model.store import ArtifactStore
from imaging.preprocessing import preprocess
from service.schemas import prediction_body
from tools.loadgen import REPO, number_photos, payloads


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
    parser.add_argument("--artifact", default=str(ArtifactStore(REPO / "artifacts", "mnist").latest().path))
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
                     *timeit(lambda b: model.predictor(scale_pixels(preprocess(b)[None])), items)))
    rows.append(("read a 4-digit number, 1-MP photo JPEG", *timeit(reader_for(model), number_photos(12))))
    rng = np.random.default_rng(0)
    one = [rng.random((1, 784), dtype=np.float32) for _ in range(64)]
    many = [rng.random((256, 784), dtype=np.float32) for _ in range(8)]
    rows.append(("forward batch 1", *timeit(model.predictor, one)))
    median256, p90_256 = timeit(model.predictor, many)
    rows.append(("forward batch 256", median256, p90_256))
    probs = model.predictor(one[0])[0][0]
    import orjson
    rows.append(("JSON encode prediction (orjson)",
                 *timeit(lambda p: orjson.dumps(prediction_body(p, labels, ref, 0.99, "digit")), [probs] * 64)))
    import json
    rows.append(("JSON encode prediction (stdlib json)",
                 *timeit(lambda p: json.dumps(prediction_body(p, labels, ref, 0.99, "digit")), [probs] * 64)))
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
