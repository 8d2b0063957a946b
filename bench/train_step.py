"""Training-step throughput of the default network, NumPy vs PyTorch (if installed).

    python -m bench.train_step [--hidden 800] [--batch-size 128] [--seconds 5]
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.train_step

Times one optimisation step (forward, fused softmax cross-entropy, backward,
AdamW update) on random float32 data, best of several rounds, and prints
samples/s. It also times the step with the default augmentation, and the
float32 GEMM rate NumPy reaches here, so the figures can be read against the
machine. With PyTorch importable, the same network, batch and optimizer on the
CPU (same thread count) give the ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from model.augment import PRESETS, Augmenter
from model.losses import softmax_cross_entropy
from model.network import MLP
from model.optimizers import make_optimizer

DEFAULT_HIDDEN = "800"


def _rate(step, batch: int, seconds: float, rounds: int = 5) -> float:
    """Return the best samples/s over ``rounds`` rounds of about ``seconds / rounds`` each."""
    for _ in range(5):
        step()  # warm up: buffers, BLAS threads
    best = 0.0
    for _ in range(rounds):
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / rounds:
            step()
            n += 1
        best = max(best, n * batch / (time.perf_counter() - start))
    return best


def numpy_step(sizes: list[int], batch: int, augment: bool):
    rng = np.random.default_rng(0)
    net = MLP(sizes, rng)
    opt = make_optimizer("adamw", 1e-3, 1e-4, net.decay_mask)
    images = rng.integers(0, 256, (batch, 28, 28), dtype=np.uint8)
    X = rng.random((batch, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], batch)
    augmenter = Augmenter(PRESETS["mnist"]) if augment else None
    params, grads = net.params, net.grads

    def step() -> None:
        inputs = augmenter(images, rng).reshape(batch, -1) * np.float32(1 / 255) if augmenter else X
        logits = net.forward(inputs, training=True)
        _, dlogits = softmax_cross_entropy(logits, y)
        net.backward(dlogits)
        opt.step(params, grads)

    return step


def torch_step(sizes: list[int], batch: int):
    import torch

    torch.manual_seed(0)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    X = torch.rand(batch, sizes[0])
    y = torch.randint(0, sizes[-1], (batch,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(net(X), y).backward()
        opt.step()

    return step


def gemm_gflops(seconds: float = 2.0) -> float:
    """Return NumPy's float32 GEMM rate for the largest matmul of a batch-256 step."""
    rng = np.random.default_rng(0)
    A = rng.random((256, 784), dtype=np.float32)
    B = rng.random((784, 800), dtype=np.float32)
    C = np.empty((256, 800), np.float32)
    rate = _rate(lambda: np.matmul(A, B, out=C), 1, seconds)
    return rate * 2 * 256 * 784 * 800 / 1e9


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", default=DEFAULT_HIDDEN)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    args = parser.parse_args(argv)
    sizes = [784, *[int(h) for h in args.hidden.split(",")], 10]
    env = {k: os.environ.get(k, "(unset)") for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                       "OPENBLAS_NUM_THREADS")}
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; numpy {np.__version__}; {env}")
    print(f"network {' -> '.join(map(str, sizes))}, batch {args.batch_size}, AdamW")
    gflops = gemm_gflops()
    print(f"numpy float32 GEMM (256x784 @ 784x800):      {gflops:8.1f} GFLOP/s")
    ours = _rate(numpy_step(sizes, args.batch_size, False), args.batch_size, args.seconds)
    print(f"numpy train step:                            {ours:10,.0f} samples/s")
    augmented = _rate(numpy_step(sizes, args.batch_size, True), args.batch_size, args.seconds)
    print(f"numpy train step with default augmentation:  {augmented:10,.0f} samples/s")
    try:
        import torch
    except ImportError:
        print("pytorch: not installed (pip install '.[bench]' to compare)")
        return
    torch.set_num_threads(os.cpu_count() or 1)
    theirs = _rate(torch_step(sizes, args.batch_size), args.batch_size, args.seconds)
    print(f"pytorch {torch.__version__} train step (CPU, {torch.get_num_threads()} threads): "
          f"{theirs:10,.0f} samples/s")
    print(f"numpy / pytorch: {ours / theirs:.2f}x")


if __name__ == "__main__":
    main()
