"""Probability calibration: temperature scaling and expected calibration error.

Temperature scaling (Guo et al. 2017) divides the logits by one scalar ``T``
fitted to minimise the negative log-likelihood on held-out data; it changes
confidence but never the predicted class. ECE bins predictions by confidence
and averages |accuracy - confidence| weighted by bin size.
"""

from __future__ import annotations

import math

import numpy as np

from .losses import log_softmax

__all__ = ["expected_calibration_error", "fit_temperature", "nll"]


def nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Return the mean negative log-likelihood of ``y`` under ``softmax(logits / T)``."""
    z = logits.astype(np.float64) / temperature
    return float(-log_softmax(z)[np.arange(len(y)), y].mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0),
                    tol: float = 1e-5) -> float:
    """Return the temperature ``T`` minimising the NLL of ``softmax(logits / T)``.

    The NLL is convex in ``1/T``, so a golden-section search over ``log T``
    finds the minimum without gradients.
    """
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    ratio = (math.sqrt(5) - 1) / 2
    a, b = lo + (1 - ratio) * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(logits, y, math.exp(a)), nll(logits, y, math.exp(b))
    while hi - lo > tol:
        if fa < fb:
            hi, b, fb = b, a, fa
            a = lo + (1 - ratio) * (hi - lo)
            fa = nll(logits, y, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(logits, y, math.exp(b))
    return float(math.exp((lo + hi) / 2))


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, n_bins: int = 15) -> float:
    """Return the ECE of ``probs`` (n, k) for labels ``y`` with equal-width bins.

    ``ECE = sum_b |B_b| / n * |acc(B_b) - conf(B_b)|`` where a prediction falls
    in bin ``b`` when its confidence lies in ``((b-1)/n_bins, b/n_bins]``.
    """
    confidence = probs.max(axis=1).astype(np.float64)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)
