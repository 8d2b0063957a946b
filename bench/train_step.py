"""Training-step throughput of the two recipes' networks, NumPy vs PyTorch (if installed).

    python -m bench.train_step [--batch-size 128] [--seconds 5] [--arch cnn,mlp]
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.train_step

For each architecture (the CNN and MLP of ``train.py``'s recipes, built from
the same layer lists), times one optimisation step (forward, fused softmax
cross-entropy, backward, AdamW update) on random float32 data, best of
several rounds, and prints samples/s; then the step with the recipe's
augmentation, and the float32 GEMM rate NumPy reaches here, so the figures
can be read against the machine. With PyTorch importable, the same layer
list, batch and optimizer on the CPU (same thread count) give the ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from model.augment import PRESETS, STYLE, Augmenter
from model.losses import softmax_cross_entropy
from model.network import Network, cnn_layers, mlp_layers
from model.optimizers import make_optimizer

ARCHS = {
    "cnn": ((1, 28, 28), cnn_layers(10), STYLE),
    "mlp": ((784,), mlp_layers([800], 10), PRESETS["mnist"]),
}


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


def numpy_step(arch: str, batch: int, augment: bool):
    input_shape, layers, preset = ARCHS[arch]
    rng = np.random.default_rng(0)
    net = Network(input_shape, layers, rng)
    opt = make_optimizer("adamw", 1e-3, 1e-4, net.decay_mask)
    images = rng.integers(0, 256, (batch, 28, 28), dtype=np.uint8)
    X = rng.random((batch, 784), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    augmenter = Augmenter(preset) if augment else None
    params, grads = net.params, net.grads

    def step() -> None:
        inputs = augmenter(images, rng).reshape(batch, -1) * np.float32(1 / 255) if augmenter else X
        logits = net.forward(inputs, training=True)
        _, dlogits = softmax_cross_entropy(logits, y)
        net.backward(dlogits)
        opt.step(params, grads)

    return step, net


def torch_model(input_shape: tuple[int, ...], layers: list[dict]):
    """Return the PyTorch equivalent of a layer list (same layers, same shapes)."""
    import torch

    modules, shape = [], input_shape
    for spec in layers:
        kind = spec["kind"]
        if kind == "conv2d":
            modules.append(torch.nn.Conv2d(shape[0], spec["filters"], spec["kernel"], spec.get("stride", 1),
                                           spec.get("padding", 0), bias=spec.get("bias", True)))
            size = (shape[1] + 2 * spec.get("padding", 0) - spec["kernel"]) // spec.get("stride", 1) + 1
            shape = (spec["filters"], size, size)
        elif kind == "maxpool2d":
            modules.append(torch.nn.MaxPool2d(2))
            shape = (shape[0], shape[1] // 2, shape[2] // 2)
        elif kind == "batchnorm":
            modules.append(torch.nn.BatchNorm2d(shape[0]) if len(shape) == 3 else torch.nn.BatchNorm1d(shape[0]))
        elif kind == "relu":
            modules.append(torch.nn.ReLU())
        elif kind == "flatten":
            modules.append(torch.nn.Flatten())
            shape = (int(np.prod(shape)),)
        elif kind == "dense":
            modules.append(torch.nn.Linear(shape[0], spec["units"]))
            shape = (spec["units"],)
        elif kind == "dropout":
            modules.append(torch.nn.Dropout(spec["p"]))
    return torch.nn.Sequential(*modules)


def torch_step(arch: str, batch: int):
    import torch

    torch.manual_seed(0)
    input_shape, layers, _ = ARCHS[arch]
    net = torch_model(input_shape, layers)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    X = torch.rand(batch, *input_shape)
    y = torch.randint(0, 10, (batch,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(net(X), y).backward()
        opt.step()

    return step


def gemm_gflops(seconds: float = 2.0) -> float:
    """Return NumPy's float32 GEMM rate for a 256x784 @ 784x800 product (the MLP's largest)."""
    rng = np.random.default_rng(0)
    A = rng.random((256, 784), dtype=np.float32)
    B = rng.random((784, 800), dtype=np.float32)
    C = np.empty((256, 800), np.float32)
    rate = _rate(lambda: np.matmul(A, B, out=C), 1, seconds)
    return rate * 2 * 256 * 784 * 800 / 1e9


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="cnn,mlp", help="comma-separated: cnn, mlp")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    args = parser.parse_args(argv)
    env = {k: os.environ.get(k, "(unset)") for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                       "OPENBLAS_NUM_THREADS")}
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; numpy {np.__version__}; {env}")
    print(f"numpy float32 GEMM (256x784 @ 784x800): {gemm_gflops():8.1f} GFLOP/s")
    try:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
    except ImportError:
        torch = None
        print("pytorch: not installed (pip install '.[bench]' to compare)")
    for arch in args.arch.split(","):
        step, net = numpy_step(arch, args.batch_size, False)
        print(f"\n{arch}: {net.describe()} ({net.n_params:,} parameters, "
              f"{net.macs() / 1e6:.2f}M multiply-adds per image), batch {args.batch_size}, AdamW")
        ours = _rate(step, args.batch_size, args.seconds)
        print(f"  numpy train step:                       {ours:10,.0f} samples/s")
        augmented = _rate(numpy_step(arch, args.batch_size, True)[0], args.batch_size, args.seconds)
        print(f"  numpy train step with its augmentation: {augmented:10,.0f} samples/s")
        if torch is not None:
            theirs = _rate(torch_step(arch, args.batch_size), args.batch_size, args.seconds)
            print(f"  pytorch {torch.__version__} train step (CPU, {torch.get_num_threads()} threads): "
                  f"{theirs:10,.0f} samples/s")
            print(f"  numpy / pytorch: {ours / theirs:.2f}x")


if __name__ == "__main__":
    main()
