"""The training loop: batches, epochs, schedule, augmentation, averaging and metrics.

``train`` prints nothing; it reports through the optional ``on_batch`` and
``on_epoch`` callbacks (``train.py`` attaches tqdm to them). Every random
choice (shuffling, augmentation, dropout) comes from generators derived from
one seed, so the same seed gives bit-for-bit the same weights on the same
machine and BLAS thread count.

Batches are shuffled and augmented by a helper thread, one or two batches
ahead of the step that uses them: NumPy releases the GIL in its array
operations, so augmentation runs on the core the single-threaded parts of the
step leave idle. The thread draws from its own generator in batch order, so
the batches are the same as if they were made in line.

With ``average`` set, the weights that are evaluated and kept are an
exponential moving average of the trained ones (and of batch normalisation's
running statistics): ``avg = d * avg + (1 - d) * current`` after every step
``t``, with ``d = min(average, (1 + t) / (10 + t))`` so that the average
forgets the random start quickly; it smooths the last epochs' noise out of
the result.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

from .augment import AugmentConfig, Augmenter
from .data import PIXEL_SCALE, scale_pixels
from .losses import log_softmax
from .network import Network
from .optimizers import make_optimizer, make_schedule

__all__ = ["EpochStats", "TrainConfig", "TrainResult", "evaluate", "train"]

PREFETCH = 2  # batches the helper thread prepares ahead


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
    average: float = 0.0  # decay of the weight average (0: evaluate the trained weights themselves)
    label_smoothing: float = 0.0  # share of each target spread over the other classes
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


def evaluate(net: Network, images: np.ndarray, labels: np.ndarray, n_classes: int | None = None,
             batch_size: int = 1000) -> tuple[float, float, np.ndarray]:
    """Return (mean NLL, accuracy, uncalibrated logits (n, k)) of ``net`` on uint8 images,
    over its first ``n_classes`` outputs (default: all; a "not a digit" output is left out)."""
    k = n_classes or net.n_outputs
    chunks = []
    for start in range(0, len(images), batch_size):
        chunks.append(net.infer(scale_pixels(images[start:start + batch_size]))[0][:, :k])
    logits = np.concatenate(chunks) if chunks else np.zeros((0, k), np.float32)
    log_probs = log_softmax(logits.astype(np.float64))
    loss = float(-log_probs[np.arange(len(labels)), labels].mean())
    accuracy = float((logits.argmax(axis=1) == labels).mean())
    return loss, accuracy, logits


def _batches(images: np.ndarray, labels: np.ndarray, batch_size: int, epochs: int,
             augmenter: Augmenter | None, shuffle_rng: np.random.Generator,
             augment_rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield every (X float32 (b, 784), y) of every epoch, made by a helper thread."""
    n = len(images)
    steps = n // batch_size  # drop the ragged tail; reshuffled every epoch
    ready: queue.Queue = queue.Queue(maxsize=PREFETCH)
    stop = threading.Event()

    def produce() -> None:
        try:
            for _ in range(epochs):
                order = shuffle_rng.permutation(n)
                for i in range(steps):
                    idx = order[i * batch_size:(i + 1) * batch_size]
                    if augmenter is not None:
                        X = augmenter(images[idx], augment_rng).reshape(len(idx), -1)
                        X *= np.float32(PIXEL_SCALE)
                    else:
                        X = scale_pixels(images[idx])
                    while not stop.is_set():
                        try:
                            ready.put((X, labels[idx]), timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
        except BaseException as exc:  # handed to the consumer, which raises it
            ready.put(exc)

    thread = threading.Thread(target=produce, name="train-batches", daemon=True)
    thread.start()
    try:
        for _ in range(epochs * steps):
            item = ready.get()
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def train(
    net: Network,
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
    steps_per_epoch = n // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"batch size {config.batch_size} exceeds the {n} training examples")
    total_steps = steps_per_epoch * config.epochs
    optimizer = make_optimizer(config.optimizer, config.lr, config.weight_decay, net.decay_mask)
    schedule = make_schedule(config.schedule, config.lr, total_steps)
    shuffle_rng, augment_rng = (np.random.default_rng(s)
                                for s in np.random.SeedSequence(config.seed).spawn(2))
    augmenter = Augmenter(config.augment) if config.augment else None
    params, grads = net.params, net.grads
    live = list(net.arrays().values())  # weights and running statistics
    average = [a.copy() for a in live] if config.average else None
    history: list[EpochStats] = []
    best_epoch, best_accuracy, best_state = 0, -1.0, None
    started = time.perf_counter()
    batches = _batches(train_images, train_labels, config.batch_size, config.epochs, augmenter,
                       shuffle_rng, augment_rng)
    step = 0
    try:
        for epoch in range(1, config.epochs + 1):
            epoch_start = time.perf_counter()
            loss_sum, correct, seen = 0.0, 0, 0
            for i in range(steps_per_epoch):
                X, y = next(batches)
                optimizer.lr = schedule(step)
                loss, logits = net.loss_and_grads(X, y, config.label_smoothing)
                optimizer.step(params, grads)
                if average is not None:
                    # The decay grows to its setting as steps accumulate, so a short run's
                    # average is not dominated by the random initial weights.
                    decay = min(config.average, (1.0 + step) / (10.0 + step))
                    for avg, a in zip(average, live):
                        avg *= decay
                        avg += (1.0 - decay) * a
                step += 1
                loss_sum += loss * len(y)
                correct += int((logits.argmax(axis=1) == y).sum())
                seen += len(y)
                if on_batch is not None:
                    on_batch(epoch, i, loss_sum / seen, correct / seen)
            if average is not None:
                current = net.get_state()
                net.set_state(average)
            val_loss, val_accuracy, _ = evaluate(net, val_images, val_labels)
            stats = EpochStats(epoch, loss_sum / seen, correct / seen, val_loss, val_accuracy,
                               optimizer.lr, time.perf_counter() - epoch_start)
            history.append(stats)
            if on_epoch is not None:
                on_epoch(stats)
            if config.keep_best and val_accuracy > best_accuracy:
                best_epoch, best_accuracy = epoch, val_accuracy
                best_state = net.get_state()  # weights and running statistics
            if average is not None:
                net.set_state(current)
    finally:
        batches.close()
    if config.keep_best and best_state is not None:
        net.set_state(best_state)
    else:
        best_epoch = config.epochs
        if average is not None:
            net.set_state(average)
    return TrainResult(history, best_epoch, time.perf_counter() - started)
