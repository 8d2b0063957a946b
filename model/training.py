"""The training loop: batches, epochs, schedule, augmentation and metrics.

``train`` prints nothing; it reports through the optional ``on_batch`` and
``on_epoch`` callbacks (``train.py`` attaches tqdm to them). Every random
choice (shuffling, augmentation, dropout) comes from generators derived from
one seed, so the same seed gives bit-for-bit the same weights on the same
machine and BLAS thread count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from .augment import AugmentConfig, Augmenter
from .data import PIXEL_SCALE, scale_pixels
from .losses import log_softmax
from .network import MLP
from .optimizers import make_optimizer, make_schedule

__all__ = ["EpochStats", "TrainConfig", "TrainResult", "evaluate", "train"]


@dataclass
class TrainConfig:
    """Hyper-parameters of one run (also recorded in the artifact metadata)."""

    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "adamw"
    lr: float = 2e-3
    schedule: str = "onecycle"
    weight_decay: float = 1e-4
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)
    keep_best: bool = True  # restore the weights of the best validation epoch
    seed: int = 0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["augment"] = self.augment.as_dict() if self.augment else None
        return d


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    lr: float
    seconds: float


@dataclass
class TrainResult:
    history: list[EpochStats]
    best_epoch: int
    seconds: float


def evaluate(net: MLP, images: np.ndarray, labels: np.ndarray, batch_size: int = 1000
             ) -> tuple[float, float, np.ndarray]:
    """Return (mean NLL, accuracy, uncalibrated logits (n, k)) of ``net`` on uint8 images."""
    chunks = []
    for start in range(0, len(images), batch_size):
        chunks.append(net.logits(scale_pixels(images[start:start + batch_size])))
    logits = np.concatenate(chunks) if chunks else np.zeros((0, net.sizes[-1]), np.float32)
    log_probs = log_softmax(logits.astype(np.float64))
    loss = float(-log_probs[np.arange(len(labels)), labels].mean())
    accuracy = float((logits.argmax(axis=1) == labels).mean())
    return loss, accuracy, logits


def train(
    net: MLP,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_images: np.ndarray,
    val_labels: np.ndarray,
    config: TrainConfig,
    on_batch: Callable[[int, int, float, float], None] | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> TrainResult:
    """Train ``net`` in place on uint8 images (n, 28, 28) and int labels (n,).

    Parameters
    ----------
    on_batch : called after each step with (epoch, step in epoch, running
        loss, running accuracy).
    on_epoch : called with the ``EpochStats`` of each finished epoch.
    """
    n = len(train_images)
    steps_per_epoch = n // config.batch_size  # drop the ragged tail; reshuffled every epoch
    if steps_per_epoch < 1:
        raise ValueError(f"batch size {config.batch_size} exceeds the {n} training examples")
    total_steps = steps_per_epoch * config.epochs
    optimizer = make_optimizer(config.optimizer, config.lr, config.weight_decay, net.decay_mask)
    schedule = make_schedule(config.schedule, config.lr, total_steps)
    shuffle_rng, augment_rng = (np.random.default_rng(s)
                                for s in np.random.SeedSequence(config.seed).spawn(2))
    augmenter = Augmenter(config.augment) if config.augment else None
    params, grads = net.params, net.grads
    history: list[EpochStats] = []
    best_epoch, best_accuracy, best_params = 0, -1.0, None
    started = time.perf_counter()
    step = 0
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        order = shuffle_rng.permutation(n)
        loss_sum, correct, seen = 0.0, 0, 0
        for i in range(steps_per_epoch):
            idx = order[i * config.batch_size:(i + 1) * config.batch_size]
            y = train_labels[idx]
            if augmenter is not None:
                X = augmenter(train_images[idx], augment_rng).reshape(len(idx), -1)
                X *= np.float32(PIXEL_SCALE)
            else:
                X = scale_pixels(train_images[idx])
            optimizer.lr = schedule(step)
            loss, logits = net.loss_and_grads(X, y)
            optimizer.step(params, grads)
            step += 1
            loss_sum += loss * len(idx)
            correct += int((logits.argmax(axis=1) == y).sum())
            seen += len(idx)
            if on_batch is not None:
                on_batch(epoch, i, loss_sum / seen, correct / seen)
        val_loss, val_accuracy, _ = evaluate(net, val_images, val_labels)
        stats = EpochStats(epoch, loss_sum / seen, correct / seen, val_loss, val_accuracy,
                           optimizer.lr, time.perf_counter() - epoch_start)
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
        if config.keep_best and val_accuracy > best_accuracy:
            best_epoch, best_accuracy = epoch, val_accuracy
            best_params = [p.copy() for p in params]
    if config.keep_best and best_params is not None:
        net.set_weights(best_params)
    else:
        best_epoch = config.epochs
    return TrainResult(history, best_epoch, time.perf_counter() - started)
