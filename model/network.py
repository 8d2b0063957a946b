"""MLP: a stack of Dense + ReLU (+ Dropout) layers ending in softmax logits.

``forward``/``backward`` are the training path (through the layer objects, with
caches). ``predict_proba`` is the inference path: it reads the same weight
arrays directly, writes into per-batch-size buffers and divides the logits by
the calibration ``temperature`` before softmax; a single mostly-blank image (the
usual upload) takes a sparse first layer. The inference buffers are kept
per thread, so one network can serve several threads at once; the training
path is single-threaded.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from .layers import Dense, Dropout, Layer, ReLU
from .losses import softmax, softmax_cross_entropy

__all__ = ["ACTIVATIONS", "MLP"]

ACTIVATIONS = {"relu": ReLU}


class MLP:
    """Multi-layer perceptron.

    Parameters
    ----------
    sizes : layer widths from input to output, e.g. ``[784, 512, 256, 10]``.
    rng : generator for He initialisation and dropout masks; ``None`` gives
        zero weights (to be filled by ``set_weights``, as when loading).
    dropout : drop probability applied after every hidden activation.
    activation : name from ``ACTIVATIONS``.
    temperature : logits are divided by it in ``predict_proba``.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        rng: np.random.Generator | None = None,
        dropout: float = 0.0,
        activation: str = "relu",
        temperature: float = 1.0,
        dtype: np.dtype = np.float32,
    ) -> None:
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes needs an input and an output width >= 1, got {sizes}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
        if dropout and rng is None:
            raise ValueError("dropout needs an rng")
        self.sizes = sizes
        self.activation = activation
        self.dropout = float(dropout)
        self.temperature = float(temperature)
        self.dtype = np.dtype(dtype)
        self.layers: list[Layer] = []
        self.dense: list[Dense] = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            dense = Dense(fan_in, fan_out, rng, dtype=self.dtype)
            self.layers.append(dense)
            self.dense.append(dense)
            if i < len(sizes) - 2:  # hidden layer
                self.layers.append(ACTIVATIONS[activation]())
                if dropout:
                    self.layers.append(Dropout(dropout, rng))
        self.dense[0].needs_input_grad = False
        self._local = threading.local()

    # -- parameters ---------------------------------------------------------

    @property
    def params(self) -> list[np.ndarray]:
        """Return ``[W0, b0, W1, b1, ...]`` (the live arrays)."""
        return [p for layer in self.dense for p in layer.params]

    @property
    def grads(self) -> list[np.ndarray]:
        """Return the gradients aligned with ``params``."""
        return [g for layer in self.dense for g in layer.grads]

    @property
    def decay_mask(self) -> list[bool]:
        """Return which params get weight decay: weights yes, biases no."""
        return [p.ndim == 2 for p in self.params]

    @property
    def n_params(self) -> int:
        return sum(p.size for p in self.params)

    def set_weights(self, arrays: Sequence[np.ndarray]) -> None:
        """Copy ``[W0, b0, W1, b1, ...]`` into the network, checking shapes."""
        params = self.params
        if len(arrays) != len(params):
            raise ValueError(f"expected {len(params)} arrays, got {len(arrays)}")
        for i, (p, a) in enumerate(zip(params, arrays)):
            if a.shape != p.shape:
                raise ValueError(f"array {i}: expected shape {p.shape}, got {a.shape}")
            p[...] = a

    def copy(self) -> MLP:
        """Return an independent network with the same weights and temperature."""
        other = MLP(self.sizes, None, activation=self.activation,
                    temperature=self.temperature, dtype=self.dtype)
        other.set_weights(self.params)
        return other

    # -- training path ------------------------------------------------------

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        """Return logits of shape (n, k) for inputs of shape (n, d).

        The result lives in a layer buffer: copy it to keep it across calls.
        """
        for layer in self.layers:
            X = layer.forward(X, training)
        return X

    def backward(self, dlogits: np.ndarray) -> None:
        """Backpropagate ``dL/dlogits``; leaves gradients in ``grads``."""
        d = dlogits
        for layer in reversed(self.layers):
            d = layer.backward(d)

    def loss_and_grads(self, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Run a training forward and backward pass; return (loss, logits)."""
        logits = self.forward(X, training=True)
        loss, dlogits = softmax_cross_entropy(logits, y)
        self.backward(dlogits)
        return loss, logits

    # -- inference path -----------------------------------------------------

    def logits(self, X: np.ndarray) -> np.ndarray:
        """Return raw (uncalibrated) logits of shape (n, k) in a fresh array."""
        return self._infer(X).copy()

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Return calibrated class probabilities.

        Parameters
        ----------
        X : ndarray of shape (n, d), pixels scaled as in training.

        Returns
        -------
        probs : float32 ndarray of shape (n, k), rows summing to 1 (a new array).
        """
        Z = self._infer(X)
        out = np.empty(Z.shape, dtype=self.dtype)
        if self.temperature != 1.0:
            np.multiply(Z, 1.0 / self.temperature, out=out)
            return softmax(out, out=out)
        return softmax(Z, out=out)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Return the predicted class index for each row, shape (n,)."""
        return self._infer(X).argmax(axis=1)

    def _infer(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.sizes[0]:
            raise ValueError(f"expected input of shape (n, {self.sizes[0]}), got {X.shape}")
        if X.dtype != self.dtype:
            X = X.astype(self.dtype)
        n = X.shape[0]
        if n == 1:
            return self._infer_one(X[0])[None]
        cache = getattr(self._local, "buffers", None)
        if cache is None:
            cache = self._local.buffers = {}
        bufs = cache.get(n)
        if bufs is None:
            bufs = [np.empty((n, k), dtype=self.dtype) for k in self.sizes[1:]]
            if n <= 256 and len(cache) < 16:  # keep common small shapes; big ones are transient
                cache[n] = bufs
        W, b = self.dense[0].params
        H = np.matmul(X, W, out=bufs[0])
        H += b
        return self._hidden_layers(H, bufs[1:])

    def _infer_one(self, x: np.ndarray) -> np.ndarray:
        """Return the logits (k,) of one image (d,): the latency path of the service.

        An upload is mostly background, so only the rows of W0 for inked pixels
        matter: reading those (about 20% of W0) beats a dense pass over all of it.
        """
        W, b = self.dense[0].params
        nz = np.flatnonzero(x)
        h = x[nz] @ W[nz] if nz.size < 0.5 * x.size else x @ W
        h += b
        return self._hidden_layers(h, [None] * (len(self.dense) - 1))

    def _hidden_layers(self, H: np.ndarray, outs: list) -> np.ndarray:
        """Apply ReLU and the dense layers after the first to the first layer's output
        ``H`` (modified in place), writing into ``outs`` (None: new arrays)."""
        for dense, out in zip(self.dense[1:], outs):
            np.maximum(H, 0, out=H)
            W, b = dense.params
            H = np.matmul(H, W, out=out)
            H += b
        return H
