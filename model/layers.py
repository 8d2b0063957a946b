"""Layers of the network: Dense, ReLU and Dropout.

Each layer follows one pattern. ``forward(X, training)`` returns the output and
keeps what ``backward`` needs; ``backward(dY)`` returns the gradient with
respect to the input and leaves the parameter gradients in ``grads``, aligned
with ``params``. Layers never change their own parameters: an optimizer
applies ``grads`` to ``params``.

Arrays are batch-major, ``(n, features)``. Outputs and gradients are written
into buffers owned by the layer and reused while the batch shape stays the
same, so a training step allocates almost nothing; a caller that wants to keep
an output across calls must copy it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Dense", "Dropout", "Layer", "ReLU"]


class Layer:
    """Base class: no parameters, identity buffers helper."""

    params: list[np.ndarray]
    grads: list[np.ndarray]

    def __init__(self) -> None:
        self.params = []
        self.grads = []
        self._buffers: dict[str, np.ndarray] = {}

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """Return a reusable uninitialised array of this shape and dtype."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._buffers[name] = np.empty(shape, dtype=dtype)
        return buf

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dY: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Dense(Layer):
    """Affine layer ``Y = X @ W + b`` with ``W`` of shape (fan_in, fan_out).

    He initialisation: ``W ~ N(0, 2 / fan_in)``, ``b = 0``; the variance keeps
    activations from shrinking or growing through ReLU layers.
    """

    def __init__(
        self,
        fan_in: int,
        fan_out: int,
        rng: np.random.Generator | None = None,
        dtype: np.dtype = np.float32,
    ) -> None:
        super().__init__()
        if rng is None:
            W = np.zeros((fan_in, fan_out), dtype=dtype)
        else:
            W = (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(dtype)
        b = np.zeros(fan_out, dtype=dtype)
        self.params = [W, b]
        self.grads = [np.zeros_like(W), np.zeros_like(b)]
        self.needs_input_grad = True  # the first layer of a network can skip dX
        self._X: np.ndarray | None = None

    @property
    def W(self) -> np.ndarray:
        return self.params[0]

    @property
    def b(self) -> np.ndarray:
        return self.params[1]

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        W, b = self.params
        Y = self._buffer("Y", (X.shape[0], W.shape[1]), np.result_type(X, W))
        np.matmul(X, W, out=Y)
        Y += b
        self._X = X if training else None
        return Y

    def backward(self, dY: np.ndarray) -> np.ndarray:
        X = self._X
        if X is None:
            raise RuntimeError("Dense.backward needs forward(X, training=True) first")
        W = self.params[0]
        dW, db = self.grads
        np.matmul(X.T, dY, out=dW)  # a transposed view: BLAS reads it without a copy
        np.sum(dY, axis=0, out=db)
        if not self.needs_input_grad:
            return dY  # nothing upstream uses it
        dX = self._buffer("dX", X.shape, dY.dtype)
        return np.matmul(dY, W.T, out=dX)


class ReLU(Layer):
    """Rectified linear unit ``max(x, 0)``; its gradient is 1 where x > 0."""

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        Y = self._buffer("Y", X.shape, X.dtype)
        return np.maximum(X, 0, out=Y)

    def backward(self, dY: np.ndarray) -> np.ndarray:
        Y = self._buffers["Y"]
        dX = self._buffer("dX", dY.shape, dY.dtype)
        # At x == 0 the subgradient 0 is used, as every framework does.
        return np.multiply(dY, Y > 0, out=dX)


class Dropout(Layer):
    """Inverted dropout: zero each unit with probability ``p`` while training.

    Kept units are scaled by ``1 / (1 - p)`` so that inference is the identity.
    """

    def __init__(self, p: float, rng: np.random.Generator) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.rng = rng
        self._mask: np.ndarray | None = None

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        if not training or self.p == 0.0:
            self._mask = None
            return X
        keep = 1.0 - self.p
        noise = self._buffer("noise", X.shape, np.float32)
        self.rng.random(dtype=np.float32, out=noise)
        mask = self._buffer("mask", X.shape, X.dtype)
        np.less(noise, keep, out=mask, casting="unsafe")
        mask *= 1.0 / keep
        self._mask = mask
        Y = self._buffer("Y", X.shape, X.dtype)
        return np.multiply(X, mask, out=Y)

    def backward(self, dY: np.ndarray) -> np.ndarray:
        if self._mask is None:
            return dY
        dX = self._buffer("dX", dY.shape, dY.dtype)
        return np.multiply(dY, self._mask, out=dX)
