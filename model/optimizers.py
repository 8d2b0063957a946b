"""Optimizers and learning-rate schedules.

An optimizer's ``step(params, grads)`` updates aligned lists of arrays in place;
nothing else in the package mutates weights. Its state (velocities, moments)
is allocated on the first step and keyed by position, so the same lists must
be passed every time. ``decay`` (a list of bools aligned with ``params``)
says which arrays receive weight decay: weights yes, biases no.

Schedules map a step number to a learning rate; ``train`` sets ``optimizer.lr``
from the schedule before every step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "SGD",
    "Adam",
    "ConstantSchedule",
    "OneCycleSchedule",
    "Optimizer",
    "WarmupCosineSchedule",
    "make_optimizer",
    "make_schedule",
]


class Optimizer:
    """Base class holding the learning rate and the weight-decay mask."""

    def __init__(self, lr: float, weight_decay: float = 0.0, decay: Sequence[bool] | None = None):
        if lr <= 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        if weight_decay < 0:
            raise ValueError(f"weight decay must be >= 0, got {weight_decay}")
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.decay = list(decay) if decay is not None else None
        self.t = 0  # number of steps taken

    def _decays(self, i: int) -> bool:
        return self.weight_decay > 0 and (self.decay is None or self.decay[i])

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with (optionally Nesterov) momentum.

    ``v = momentum * v - lr * (g + weight_decay * p)``; ``p += v``, or for
    Nesterov ``p += momentum * v - lr * (g + weight_decay * p)``.
    Weight decay here is the classic L2 penalty folded into the gradient.
    """

    def __init__(
        self,
        lr: float = 0.05,
        momentum: float = 0.9,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        decay: Sequence[bool] | None = None,
    ):
        super().__init__(lr, weight_decay, decay)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)
        self.nesterov = nesterov
        self._velocity: list[np.ndarray] = []
        self._scratch: list[np.ndarray] = []

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        if not self._velocity:
            self._velocity = [np.zeros_like(p) for p in params]
            self._scratch = [np.empty_like(p) for p in params]
        self.t += 1
        lr, mu = self.lr, self.momentum
        for i, (p, g, v, s) in enumerate(zip(params, grads, self._velocity, self._scratch)):
            np.multiply(g, lr, out=s)  # s = lr * g
            if self._decays(i):
                s += (lr * self.weight_decay) * p
            v *= mu
            v -= s
            if self.nesterov:
                p -= s
                p += mu * v
            else:
                p += v


class Adam(Optimizer):
    """Adam (Kingma & Ba) with decoupled weight decay (AdamW, Loshchilov & Hutter).

    ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g^2``;
    ``p -= lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * p)``,
    with the bias corrections ``m_hat = m / (1 - b1^t)``, ``v_hat = v / (1 - b2^t)``.
    With ``weight_decay=0`` this is plain Adam.
    """

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decay: Sequence[bool] | None = None,
    ):
        super().__init__(lr, weight_decay, decay)
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        self.beta1, self.beta2, self.eps = float(b1), float(b2), float(eps)
        self._m: list[np.ndarray] = []
        self._v: list[np.ndarray] = []
        self._scratch: list[np.ndarray] = []

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        if not self._m:
            self._m = [np.zeros_like(p) for p in params]
            self._v = [np.zeros_like(p) for p in params]
            self._scratch = [np.empty_like(p) for p in params]
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        # Fold both bias corrections into the step size and epsilon:
        # m_hat / (sqrt(v_hat) + eps) == (m / c1) / (sqrt(v) / sqrt(c2) + eps).
        c1 = 1.0 - b1**self.t
        c2 = 1.0 - b2**self.t
        step_size = self.lr * math.sqrt(c2) / c1
        eps_hat = self.eps * math.sqrt(c2)
        for i, (p, g, m, v, s) in enumerate(zip(params, grads, self._m, self._v, self._scratch)):
            if self._decays(i):
                p *= 1.0 - self.lr * self.weight_decay  # decoupled: not seen by m, v
            m *= b1
            m += (1.0 - b1) * g
            np.multiply(g, g, out=s)
            v *= b2
            s *= 1.0 - b2
            v += s
            np.sqrt(v, out=s)
            s += eps_hat
            np.divide(m, s, out=s)
            s *= step_size
            p -= s


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": Adam}


def make_optimizer(
    name: str, lr: float, weight_decay: float = 0.0, decay: Sequence[bool] | None = None
) -> Optimizer:
    """Return the optimizer called ``name`` ('sgd', 'adam' or 'adamw')."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose from {sorted(OPTIMIZERS)}")
    if name == "sgd":
        return SGD(lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay, decay=decay)
    if name == "adam":
        return Adam(lr=lr, decay=decay)
    return Adam(lr=lr, weight_decay=weight_decay, decay=decay)


class ConstantSchedule:
    """The same learning rate at every step."""

    def __init__(self, lr: float, total_steps: int = 0):
        self.lr = lr

    def __call__(self, step: int) -> float:
        return self.lr


class WarmupCosineSchedule:
    """Linear warm-up from ~0 to ``lr`` then cosine decay to ``lr * final_fraction``."""

    def __init__(self, lr: float, total_steps: int, warmup_fraction: float = 0.03,
                 final_fraction: float = 0.0):
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        self.lr = lr
        self.total = total_steps
        self.warmup = max(1, int(round(warmup_fraction * total_steps)))
        self.final = lr * final_fraction

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.final + 0.5 * (self.lr - self.final) * (1.0 + math.cos(math.pi * progress))


class OneCycleSchedule:
    """One-cycle policy (Smith): cosine up from ``lr/25`` to ``lr`` over the
    first 30% of steps, then cosine down to ``lr/1e4``."""

    def __init__(self, lr: float, total_steps: int, peak_fraction: float = 0.3):
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        self.lr = lr
        self.total = total_steps
        self.peak = max(1, int(round(peak_fraction * total_steps)))

    @staticmethod
    def _anneal(start: float, end: float, fraction: float) -> float:
        return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * min(1.0, fraction)))

    def __call__(self, step: int) -> float:
        if step < self.peak:
            return self._anneal(self.lr / 25.0, self.lr, step / self.peak)
        return self._anneal(self.lr, self.lr / 1e4, (step - self.peak) / max(1, self.total - self.peak))


SCHEDULES = {"constant": ConstantSchedule, "cosine": WarmupCosineSchedule, "onecycle": OneCycleSchedule}


def make_schedule(name: str, lr: float, total_steps: int):
    """Return the schedule called ``name`` ('constant', 'cosine' or 'onecycle')."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose from {sorted(SCHEDULES)}")
    return SCHEDULES[name](lr, total_steps)
