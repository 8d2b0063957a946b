"""Softmax and the fused softmax + cross-entropy loss.

Everything here works on batch-major logits of shape ``(n, k)``. Softmax
subtracts the row maximum before ``exp`` so that any finite logits give finite
probabilities; nothing is clipped or added to the denominator.

Why the gradient is ``probs - onehot``: with ``p = softmax(z)`` and
``L = -log p_y``, ``dL/dz_j = p_j - [j == y]``. Averaged over the batch the
gradient is ``(probs - onehot) / n``. This only holds because softmax and
cross-entropy are differentiated together, which is why they live in one
function (as in scikit-learn's ``_backprop``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["log_softmax", "softmax", "softmax_cross_entropy"]


def softmax(logits: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Return row-wise softmax probabilities.

    Parameters
    ----------
    logits : ndarray of shape (n, k), finite floats.
    out : optional ndarray of the same shape and dtype to write into (may be
        ``logits`` itself).

    Returns
    -------
    probs : ndarray of shape (n, k), same dtype; every row sums to 1 and
        every entry is finite and in [0, 1].
    """
    with np.errstate(over="ignore", under="ignore"):
        # Near the float limits the subtraction may round to -inf, whose exp is the
        # correct 0; the row maximum always becomes exactly 0, so exp gives 1.
        # ufunc reductions directly: ndarray.max/sum add a Python wrapper per call,
        # which is most of the cost for one row of 10 (the service's batch of one).
        out = np.subtract(logits, np.maximum.reduce(logits, axis=1, keepdims=True), out=out)
        np.exp(out, out=out)
    out /= np.add.reduce(out, axis=1, keepdims=True)  # the sum is >= 1, so never 0 or inf
    return out


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Return row-wise log-probabilities ``z - max - log(sum(exp(z - max)))``."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray, smoothing: float = 0.0
                          ) -> tuple[float, np.ndarray]:
    """Return the mean cross-entropy of ``softmax(logits)`` and its gradient.

    Parameters
    ----------
    logits : ndarray of shape (n, k)
    y : integer ndarray of shape (n,), class indices in ``[0, k)``.
    smoothing : label smoothing (Szegedy et al. 2016): the target is
        ``1 - smoothing`` on the class and ``smoothing / (k - 1)`` on each other.

    Returns
    -------
    loss : float, mean cross-entropy against the (smoothed) targets over the batch.
    dlogits : ndarray of shape (n, k), ``(softmax(logits) - target) / n``.
    """
    n, k = logits.shape
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {y.shape}")
    rows = np.arange(n)
    log_probs = log_softmax(logits)
    # log_softmax is exact for the loss even when a probability underflows to 0.
    loss = float(-log_probs[rows, y].mean(dtype=np.float64))
    if smoothing:
        spread = smoothing / (k - 1)
        loss = (1.0 - smoothing - spread) * loss - spread * float(log_probs.sum(axis=1).mean(dtype=np.float64))
    dlogits = np.exp(log_probs, out=log_probs)
    if smoothing:
        dlogits -= spread
        dlogits[rows, y] -= 1.0 - smoothing - spread
    else:
        dlogits[rows, y] -= 1.0
    dlogits /= n
    return loss, dlogits
