"""Layers of the network: Dense, ReLU, Dropout, Flatten and BatchNorm.

(The convolutional layers, Conv2D and MaxPool2D, are in ``conv.py``.)

Each layer follows one pattern. ``forward(X, training)`` returns the output and,
when training, keeps what ``backward`` needs; ``backward(dY)`` returns the
gradient with respect to the input and leaves the parameter gradients in
``grads``, aligned with ``params``. Layers never change their own parameters:
an optimizer applies ``grads`` to ``params``. Arrays a layer stores but does
not train (batch normalisation's running statistics) are its ``state``.

Arrays are batch-major: ``(n, features)`` or, for images, ``(n, channels,
height, width)``. Outputs and gradients are written into buffers owned by the
layer and reused while the shape stays the same, so a training step allocates
almost nothing; a caller that wants to keep an output across calls must copy
it. Buffers and caches are per thread, so one network can serve several
threads at once; the training path is single-threaded.

Every layer describes itself, so adding a kind means writing its class and
nothing else: ``kind`` and ``config()`` rebuild it (``LAYERS[kind].build(input_shape,
**config)``), ``settings`` bound each setting (the artifact's schema is made
from them, ``artifact.py``), ``output_shape`` follows the shapes through a
network, ``describe()`` names it in one word (``conv5x5x16``), ``macs`` counts
its multiply-adds, and ``param_names``/``state_names`` name its arrays in an
artifact.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

__all__ = ["LAYERS", "BatchNorm", "Dense", "Dropout", "Flatten", "Layer", "ReLU", "Setting", "register"]

Shape = tuple[int, ...]
LAYERS: dict[str, type[Layer]] = {}
SPARSE_SHARE = 0.3  # a single input row with fewer non-zeros than this share takes the sparse product


REQUIRED = object()


@dataclass(frozen=True)
class Setting:
    """The bounds of one setting of a layer kind: its type, default (``REQUIRED``: none), and
    inclusive (``ge``, ``le``) or exclusive (``gt``, ``lt``) limits, or the only ``choices``."""

    type: type
    default: object = REQUIRED
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple | None = None


def register(cls: type[Layer]) -> type[Layer]:
    """Class decorator: make the layer buildable from its ``kind`` (see ``LAYERS``)."""
    LAYERS[cls.kind] = cls
    return cls


class Layer:
    """Base class: no parameters; per-thread buffers and caches."""

    kind: ClassVar[str] = ""
    param_names: ClassVar[tuple[str, ...]] = ()
    state_names: ClassVar[tuple[str, ...]] = ()
    decays: ClassVar[tuple[bool, ...]] = ()  # which params get weight decay, aligned with params
    settings: ClassVar[dict[str, Setting]] = {}  # what ``config()`` holds, with its bounds

    params: list[np.ndarray]
    grads: list[np.ndarray]
    state: list[np.ndarray]

    def __init__(self) -> None:
        self.params = []
        self.grads = []
        self.state = []
        self._local = threading.local()

    @classmethod
    def build(cls, input_shape: Shape, rng: np.random.Generator | None = None,
              dtype: np.dtype = np.float32, **config) -> Layer:
        """Return the layer for inputs of ``input_shape`` (one example, no batch axis)."""
        return cls(**config)

    def config(self) -> dict:
        """Return the keyword arguments that rebuild this layer (with ``build``)."""
        return {}

    def output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def describe(self) -> str:
        """Return the layer in one word, e.g. ``dense128`` (the kind, for layers without settings)."""
        return self.kind

    def macs(self, input_shape: Shape) -> int:
        """Return the multiply-adds one example costs in this layer (0: cheap elementwise work)."""
        return 0

    # -- per-thread storage -------------------------------------------------

    def _buffer(self, name: str, shape: Shape, dtype: np.dtype = np.float32) -> np.ndarray:
        """Return this thread's reusable uninitialised array of this shape and dtype."""
        store = self._local.__dict__
        buf = store.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = store[name] = np.empty(shape, dtype=dtype)
        return buf

    def _keep(self, **cache) -> None:
        """Keep what ``backward`` needs (this thread's training cache)."""
        self._local.__dict__.update(cache)

    def _kept(self, name: str):
        value = self._local.__dict__.get(name)
        if value is None:
            raise RuntimeError(f"{type(self).__name__}.backward needs forward(X, training=True) first")
        return value

    # -- the pattern --------------------------------------------------------

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dY: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


@register
class Dense(Layer):
    """Affine layer ``Y = X @ W + b`` with ``W`` of shape (fan_in, fan_out).

    He initialisation: ``W ~ N(0, 2 / fan_in)``, ``b = 0``; the variance keeps
    activations from shrinking or growing through ReLU layers.
    """

    kind = "dense"
    param_names = ("W", "b")
    decays = (True, False)
    settings = {"units": Setting(int, ge=1, le=1_000_000)}

    def __init__(self, fan_in: int, fan_out: int, rng: np.random.Generator | None = None,
                 dtype: np.dtype = np.float32) -> None:
        super().__init__()
        if rng is None:
            W = np.zeros((fan_in, fan_out), dtype=dtype)
        else:
            W = (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(dtype)
        b = np.zeros(fan_out, dtype=dtype)
        self.params = [W, b]
        self.grads = [np.zeros_like(W), np.zeros_like(b)]
        self.needs_input_grad = True  # the first layer of a network can skip dX

    @classmethod
    def build(cls, input_shape, rng=None, dtype=np.float32, *, units: int) -> Dense:
        if len(input_shape) != 1:
            raise ValueError(f"dense takes (features,) inputs, got {input_shape}: flatten first")
        return cls(input_shape[0], units, rng, dtype)

    def config(self) -> dict:
        return {"units": self.params[0].shape[1]}

    def output_shape(self, input_shape: Shape) -> Shape:
        return (self.params[0].shape[1],)

    def describe(self) -> str:
        return f"dense{self.params[0].shape[1]}"

    def macs(self, input_shape: Shape) -> int:
        return self.params[0].size

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        W, b = self.params
        if not training and X.shape[0] == 1:
            # One mostly-blank upload (the service's usual request): only the rows
            # of W for non-zero inputs matter, and gathering those beats reading all
            # of W when few are (raw pixels: ~20%; hidden activations are denser).
            x = X[0]
            nz = np.flatnonzero(x)
            if nz.size < SPARSE_SHARE * x.size:
                y = x[nz] @ W[nz]
                y += b
                return y[None]
        Y = self._buffer("Y", (X.shape[0], W.shape[1]), np.result_type(X, W))
        np.matmul(X, W, out=Y)
        Y += b
        if training:
            self._keep(X=X)
        return Y

    def backward(self, dY: np.ndarray) -> np.ndarray:
        X = self._kept("X")
        W = self.params[0]
        dW, db = self.grads
        np.matmul(X.T, dY, out=dW)  # a transposed view: BLAS reads it without a copy
        np.add.reduce(dY, axis=0, out=db)
        if not self.needs_input_grad:
            return dY  # nothing upstream uses it
        dX = self._buffer("dX", X.shape, dY.dtype)
        return np.matmul(dY, W.T, out=dX)


@register
class ReLU(Layer):
    """Rectified linear unit ``max(x, 0)``; its gradient is 1 where x > 0."""

    kind = "relu"

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        Y = self._buffer("Y", X.shape, X.dtype)
        np.maximum(X, 0, out=Y)
        if training:
            self._keep(Y=Y)
        return Y

    def backward(self, dY: np.ndarray) -> np.ndarray:
        Y = self._kept("Y")
        dX = self._buffer("dX", dY.shape, dY.dtype)
        # At x == 0 the subgradient 0 is used, as every framework does.
        mask = self._buffer("mask", Y.shape, np.bool_)
        np.greater(Y, 0, out=mask)
        return np.multiply(dY, mask, out=dX)


@register
class Dropout(Layer):
    """Inverted dropout: zero each unit with probability ``p`` while training.

    Kept units are scaled by ``1 / (1 - p)`` so that inference is the identity.
    """

    kind = "dropout"
    settings = {"p": Setting(float, ge=0.0, lt=1.0)}

    def __init__(self, p: float, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        if p and rng is None:
            rng = np.random.default_rng()  # only a loaded network (never trained) gets here
        self.p = float(p)
        self.rng = rng

    @classmethod
    def build(cls, input_shape, rng=None, dtype=np.float32, *, p: float) -> Dropout:
        return cls(p, rng)

    def config(self) -> dict:
        return {"p": self.p}

    def describe(self) -> str:
        return f"dropout{self.p:g}"

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        if not training or self.p == 0.0:
            self._keep(mask=False)
            return X
        keep = 1.0 - self.p
        noise = self._buffer("noise", X.shape, np.float32)
        self.rng.random(dtype=np.float32, out=noise)
        mask = self._buffer("scaled_mask", X.shape, X.dtype)
        np.less(noise, keep, out=mask, casting="unsafe")
        mask *= 1.0 / keep
        self._keep(mask=mask)
        Y = self._buffer("Y", X.shape, X.dtype)
        return np.multiply(X, mask, out=Y)

    def backward(self, dY: np.ndarray) -> np.ndarray:
        mask = self._kept("mask")
        if mask is False:
            return dY
        dX = self._buffer("dX", dY.shape, dY.dtype)
        return np.multiply(dY, mask, out=dX)


@register
class Flatten(Layer):
    """Reshape ``(n, c, h, w)`` to ``(n, c * h * w)`` (a view when contiguous)."""

    kind = "flatten"

    def output_shape(self, input_shape: Shape) -> Shape:
        return (int(np.prod(input_shape)),)

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        if training:
            self._keep(shape=X.shape)
        return X.reshape(X.shape[0], -1)

    def backward(self, dY: np.ndarray) -> np.ndarray:
        return dY.reshape(self._kept("shape"))


@register
class BatchNorm(Layer):
    """Batch normalisation (Ioffe & Szegedy 2015) over ``(n, c)`` or ``(n, c, h, w)``.

    Training: each channel is normalised by the mean and (biased) variance of
    the batch (over n, or n, h and w), then scaled by ``gamma`` and shifted by
    ``beta``; the running mean and unbiased variance follow the batches with
    ``momentum`` (PyTorch's convention). Inference: the running statistics are
    used, which makes the layer one per-channel multiply-add.
    """

    kind = "batchnorm"
    param_names = ("gamma", "beta")
    state_names = ("running_mean", "running_var")
    decays = (False, False)
    settings = {"momentum": Setting(float, 0.1, gt=0.0, le=1.0), "eps": Setting(float, 1e-5, gt=0.0, le=1.0)}

    def __init__(self, channels: int, momentum: float = 0.1, eps: float = 1e-5,
                 dtype: np.dtype = np.float32) -> None:
        super().__init__()
        if not 0.0 < momentum <= 1.0 or not eps > 0.0:
            raise ValueError(f"need 0 < momentum <= 1 and eps > 0, got {momentum}, {eps}")
        self.channels = int(channels)
        self.momentum = float(momentum)
        self.eps = float(eps)
        gamma, beta = np.ones(channels, dtype), np.zeros(channels, dtype)
        self.params = [gamma, beta]
        self.grads = [np.zeros_like(gamma), np.zeros_like(beta)]
        self.state = [np.zeros(channels, dtype), np.ones(channels, dtype)]

    @classmethod
    def build(cls, input_shape, rng=None, dtype=np.float32, *, momentum: float = 0.1,
              eps: float = 1e-5) -> BatchNorm:
        return cls(input_shape[0], momentum, eps, dtype)

    def config(self) -> dict:
        return {"momentum": self.momentum, "eps": self.eps}

    def describe(self) -> str:
        return "bn"

    def _shape(self, X: np.ndarray) -> tuple[int, ...]:
        """Return the broadcast shape of a per-channel vector for ``X``."""
        if X.ndim < 2 or X.shape[1] != self.channels:
            raise ValueError(f"batchnorm over {self.channels} channels got input {X.shape}")
        return (1, self.channels) + (1,) * (X.ndim - 2)

    def _channel_sums(self, X: np.ndarray) -> np.ndarray:
        """Return the float64 per-channel sums of X over every axis but the channel one.

        Through a (n * c, rest) matrix times a ones vector: BLAS, several times
        faster than ``sum(axis=(0, 2))``; each row's sum has at most h * w terms.
        """
        n = X.shape[0]
        rows = X.reshape(n * self.channels, -1)
        ones = self._ones(rows.shape[1], X.dtype)
        return (rows @ ones).reshape(n, self.channels).sum(axis=0, dtype=np.float64)

    def _ones(self, size: int, dtype: np.dtype) -> np.ndarray:
        ones = self._local.__dict__.get("ones")
        if ones is None or ones.shape != (size,) or ones.dtype != dtype:
            ones = self._local.__dict__["ones"] = np.ones(size, dtype)
        return ones

    def inference_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (scale, shift) per channel: inference is ``X * scale + shift`` (the ONNX
        export writes the same arrays)."""
        gamma, beta = self.params
        running_mean, running_var = self.state
        scale = gamma / np.sqrt(running_var + self.eps)
        return scale, beta - running_mean * scale

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        gamma, beta = self.params
        shape = self._shape(X)
        Y = self._buffer("Y", X.shape, X.dtype)
        if not training:
            scale, shift = self.inference_affine()
            np.multiply(X, scale.reshape(shape), out=Y)
            Y += shift.reshape(shape)
            return Y
        m = X.size // self.channels
        mean = self._channel_sums(X) / m
        xhat = self._buffer("xhat", X.shape, X.dtype)
        np.subtract(X, mean.astype(X.dtype).reshape(shape), out=xhat)
        # Two passes (centre, then square) rather than E[x^2] - E[x]^2, which cancels.
        rows = xhat.reshape(X.shape[0] * self.channels, -1)
        var = np.vecdot(rows, rows).reshape(X.shape[0], self.channels).sum(axis=0, dtype=np.float64) / m
        inv_std = (1.0 / np.sqrt(var + self.eps)).astype(X.dtype)
        xhat *= inv_std.reshape(shape)
        np.multiply(xhat, gamma.reshape(shape), out=Y)
        Y += beta.reshape(shape)
        running_mean, running_var = self.state
        running_mean += self.momentum * (mean.astype(X.dtype) - running_mean)
        unbiased = var * m / max(m - 1, 1)
        running_var += self.momentum * (unbiased.astype(X.dtype) - running_var)
        self._keep(xhat=xhat, inv_std=inv_std)
        return Y

    def backward(self, dY: np.ndarray) -> np.ndarray:
        xhat, inv_std = self._kept("xhat"), self._kept("inv_std")
        gamma = self.params[0]
        dgamma, dbeta = self.grads
        shape = self._shape(dY)
        n = dY.shape[0]
        m = dY.size // self.channels
        sum_dy_xhat = np.vecdot(dY.reshape(n * self.channels, -1), xhat.reshape(n * self.channels, -1))
        sum_dy_xhat = sum_dy_xhat.reshape(n, self.channels).sum(axis=0, dtype=np.float64)
        sum_dy = self._channel_sums(dY)
        dgamma[...] = sum_dy_xhat
        dbeta[...] = sum_dy
        # dX = gamma * inv_std / m * (m * dY - sum(dY) - xhat * sum(dY * xhat))
        dX = self._buffer("dX", dY.shape, dY.dtype)
        np.multiply(xhat, (sum_dy_xhat / m).astype(dY.dtype).reshape(shape), out=dX)
        dX += (sum_dy / m).astype(dY.dtype).reshape(shape)
        np.subtract(dY, dX, out=dX)
        dX *= (gamma * inv_std).reshape(shape)
        return dX
