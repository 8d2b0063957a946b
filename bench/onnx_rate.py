"""Batch-256 rate of onnxruntime on the exported model beside the NumPy forward, same artifact, same run.

    python -m bench.onnx_rate [--artifact artifacts/mnist/1/model.npz ...]   (default: every bundled version)

For each artifact: the NumPy forward pass of the network as trained
(``Network.infer``), the service's whole answer in NumPy (``LoadedModel.predictor``:
batch norms folded, probabilities and digit score; what ``bench.inprocess``
calls "forward batch 256"), and the ONNX
export (``model.export``: the same answer) in onnxruntime's CPU provider with
one intra-op thread and with its default. Images per second from the median
time of a batch; each measurement rotates among 8 distinct batches of random
pixels. A reference for what a standard runtime does with the same network,
not a claim about serving (``bench.serve`` measures that). Needs onnx and
onnxruntime (the test extra).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

from bench.inprocess import timeit
from model.artifact import load_artifact
from model.export import export_onnx, onnx_session, run_onnx
from tools.loadgen import REPO

BATCH = 256


def rates(artifact: Path, repeat: int) -> list[tuple[str, float]]:
    """Return (measurement, median seconds per batch of 256) for ``artifact``.

    The measurements take turns, a pass over the 8 batches each, ``repeat`` times, so a machine
    whose load changes during the run weighs on all of them alike.
    """
    loaded = load_artifact(artifact)
    rng = np.random.default_rng(0)
    batches = [rng.random((BATCH, 784), dtype=np.float32) for _ in range(8)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(loaded, path)
        one, default = onnx_session(path, threads=1), onnx_session(path)
    calls = {"NumPy forward as trained (Network.infer)": loaded.net.infer,
             "NumPy answer (LoadedModel.predictor)": loaded.predictor,
             "onnxruntime, 1 intra-op thread": lambda X: run_onnx(one, X),
             "onnxruntime, default threads": lambda X: run_onnx(default, X)}
    times: dict[str, list[float]] = {name: [] for name in calls}
    for name, fn in calls.items():  # warm-up: buffers, plans, onnxruntime's arenas
        timeit(fn, batches[:3], 1)
    for _ in range(repeat):
        for name, fn in calls.items():
            times[name].append(timeit(fn, batches, 1)[0])
    return [(name, float(np.median(t))) for name, t in times.items()]


def main(argv: list[str] | None = None) -> None:
    import onnxruntime

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", action="append", type=Path,
                        help="a model.npz (repeatable; default: every bundled version)")
    parser.add_argument("--repeat", type=int, default=5, help="passes over the 8 batches")
    args = parser.parse_args(argv)
    artifacts = args.artifact or sorted((REPO / "artifacts" / "mnist").glob("*/model.npz"))
    env = ", ".join(f"{k}={os.environ.get(k, '(unset)')}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"))
    print(f"numpy {np.__version__}, onnxruntime {onnxruntime.__version__}, {os.cpu_count()} CPUs; {env}")
    for artifact in artifacts:
        loaded = load_artifact(artifact)
        print(f"\n{artifact}: {loaded.net.arch.upper()} {loaded.net.describe()} "
              f"({loaded.net.macs() / 1e6:.2f}M multiply-adds per image)")
        rows = rates(artifact, args.repeat)
        width = max(len(name) for name, _ in rows)
        print(f"{'batch 256':<{width}}  {'median':>10}  {'images/s':>10}")
        for name, seconds in rows:
            print(f"{name:<{width}}  {seconds * 1e3:8.2f}ms  {BATCH / seconds:10,.0f}")


if __name__ == "__main__":
    main()
