"""Network: a stack of layers ending in logits, and the two recipes (MLP, CNN).

A network is built from an input shape and a *layer list*, plain data such as
``[{"kind": "conv2d", "filters": 32, "kernel": 5, "padding": 2}, {"kind":
"relu"}, ...]``; the same list is stored in the artifact, so a loaded network
is rebuilt exactly. ``forward`` is the one pass through the layers, used for
training (``training=True``: batch statistics, dropout, caches for
``backward``) and for inference (``infer``: running statistics, no caches,
in chunks; ``inference.Predictor`` turns its logits into answers). Serving shortcuts (a sparse first layer for one upload, buffer
reuse) live inside the layers.

``mlp_layers`` and ``cnn_layers`` return the layer lists of the two
architectures ``train.py --arch`` offers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from . import conv  # noqa: F401 - registers Conv2D and MaxPool2D in LAYERS
from .layers import LAYERS, Layer, ReLU
from .losses import softmax_cross_entropy

__all__ = ["ACTIVATIONS", "DEFAULT_CNN", "Network", "cnn_layers", "mlp_layers"]

ACTIVATIONS = {"relu": ReLU}
# The inference batch is split into chunks of about this many floats of the
# largest intermediate, so serving a big batch keeps its buffers small.
_CHUNK_FLOATS = 4_000_000


def mlp_layers(hidden: Sequence[int], n_classes: int, dropout: float = 0.0,
               activation: str = "relu") -> list[dict]:
    """Return the layer list of a multi-layer perceptron: (dense, activation[, dropout])
    per hidden width, then a dense output layer."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
    layers: list[dict] = []
    for units in hidden:
        layers += [{"kind": "dense", "units": int(units)}, {"kind": activation}]
        if dropout:
            layers.append({"kind": "dropout", "p": float(dropout)})
    return layers + [{"kind": "dense", "units": int(n_classes)}]


# The bundled default: three blocks of convolution, 2x2 max pooling (28 -> 14 -> 7 -> 3),
# batch normalisation and ReLU, then a dense layer. Pooling the last block too keeps the
# dense layer small (864 inputs, not 4,704), which matters most for one upload's latency.
DEFAULT_CNN = {"filters": (16, 32, 96), "kernels": (5, 3, 3), "dense": 128,
               "dropout": 0.25}


def cnn_layers(n_classes: int, filters: Sequence[int] = DEFAULT_CNN["filters"],
               kernels: Sequence[int] = DEFAULT_CNN["kernels"], dense: int = DEFAULT_CNN["dense"],
               dropout: float = DEFAULT_CNN["dropout"], pools: Sequence[bool] | None = None) -> list[dict]:
    """Return the layer list of a convolutional network.

    Each ``filters[i]`` gives a block: a ``kernels[i]`` "same" convolution
    (no bias: batch normalisation follows), 2x2 max pooling where
    ``pools[i]`` (default: every block while the image is at least 4 pixels
    on a side), batch normalisation, ReLU.
    Pooling comes before normalisation: the per-pixel layers then see a
    quarter of the pixels. Then flatten, a ``dense``-unit hidden layer with
    batch normalisation and ReLU (none if 0), dropout, and the output.
    """
    pools = tuple(pools) if pools is not None else tuple(28 >> (i + 1) >= 3 for i in range(len(filters)))
    if len(filters) != len(kernels) or len(pools) != len(filters) or not filters:
        raise ValueError(f"need one kernel size and pooling choice per convolution, got {filters}, "
                         f"{kernels} and {pools}")
    layers: list[dict] = []
    for f, k, pool in zip(filters, kernels, pools):
        if k % 2 == 0:
            raise ValueError(f"kernel sizes must be odd ('same' padding), got {k}")
        layers.append({"kind": "conv2d", "filters": int(f), "kernel": int(k), "padding": k // 2, "bias": False})
        if pool:
            layers.append({"kind": "maxpool2d", "size": 2})
        layers += [{"kind": "batchnorm"}, {"kind": "relu"}]
    layers += [{"kind": "flatten"}]
    if dense:
        layers += [{"kind": "dense", "units": int(dense)}, {"kind": "batchnorm"}, {"kind": "relu"}]
    if dropout:
        layers.append({"kind": "dropout", "p": float(dropout)})
    return layers + [{"kind": "dense", "units": int(n_classes)}]


class Network:
    """A feed-forward stack of layers whose output is class logits.

    Parameters
    ----------
    input_shape : shape of one example: ``(784,)`` for an MLP, ``(1, 28, 28)``
        for a CNN. Inputs may also come flat, ``(n, 784)``, as the service
        sends them.
    layers : layer list (see ``mlp_layers``, ``cnn_layers``); each entry is
        ``{"kind": ..., **config}`` with a kind from ``layers.LAYERS``.
    rng : generator for initialisation and dropout masks; ``None`` gives
        zero weights (to be filled by ``set_arrays``, as when loading).
    temperature : the calibration temperature (``inference.Predictor`` divides the
        logits by it).
    """

    def __init__(self, input_shape: Sequence[int], layers: Iterable[Mapping], rng=None,
                 temperature: float = 1.0, dtype: np.dtype = np.float32) -> None:
        self.input_shape = tuple(int(s) for s in input_shape)
        self._input_size = int(np.prod(self.input_shape))
        self.temperature = float(temperature)
        self.dtype = np.dtype(dtype)
        self.layers: list[Layer] = []
        self.shapes: list[tuple[int, ...]] = []  # each layer's input shape (one example)
        shape = self.input_shape
        largest = int(np.prod(shape))
        for i, entry in enumerate(layers):
            config = dict(entry)
            kind = config.pop("kind", None)
            if kind not in LAYERS:
                raise ValueError(f"layer {i}: unknown kind {kind!r}; known: {sorted(LAYERS)}")
            try:
                layer = LAYERS[kind].build(shape, rng, self.dtype, **config)
                self.shapes.append(shape)
                shape = layer.output_shape(shape)
            except TypeError as exc:  # unknown or missing settings
                raise ValueError(f"layer {i} ({kind}): {exc}") from None
            self.layers.append(layer)
            largest = max(largest, int(np.prod(shape)) * (getattr(layer, "kernel", 1) ** 2))
        if len(shape) != 1 or not self.layers:
            raise ValueError(f"the network must end in a flat (classes,) output, got {shape}")
        self.n_outputs = shape[0]
        # Backpropagation stops at the first layer with parameters: nothing before it learns.
        trainable = [i for i, layer in enumerate(self.layers) if layer.params]
        self._first_trainable = trainable[0] if trainable else len(self.layers)
        if trainable and hasattr(self.layers[trainable[0]], "needs_input_grad"):
            self.layers[trainable[0]].needs_input_grad = False
        self.infer_batch = int(np.clip(_CHUNK_FLOATS // largest, 16, 1024))

    # -- description --------------------------------------------------------

    @property
    def spec(self) -> list[dict]:
        """Return the layer list that rebuilds this network."""
        return [{"kind": layer.kind, **layer.config()} for layer in self.layers]

    @property
    def arch(self) -> str:
        """Return "cnn" for a network with convolutions, else "mlp"."""
        return "cnn" if any(layer.kind == "conv2d" for layer in self.layers) else "mlp"

    def describe(self) -> str:
        """Return a one-line summary, e.g. ``conv5x5x32 bn relu pool2 ... dense10``."""
        return " ".join(layer.describe() for layer in self.layers)

    def macs(self) -> int:
        """Return the multiply-adds of one example's forward pass."""
        return sum(layer.macs(shape) for layer, shape in zip(self.layers, self.shapes))

    # -- parameters ---------------------------------------------------------

    @property
    def params(self) -> list[np.ndarray]:
        """Return the trainable arrays in layer order (the live arrays)."""
        return [p for layer in self.layers for p in layer.params]

    @property
    def grads(self) -> list[np.ndarray]:
        """Return the gradients aligned with ``params``."""
        return [g for layer in self.layers for g in layer.grads]

    @property
    def decay_mask(self) -> list[bool]:
        """Return which params get weight decay: weights yes; biases and norms no."""
        return [d for layer in self.layers for d in layer.decays]

    @property
    def n_params(self) -> int:
        return sum(p.size for p in self.params)

    def arrays(self) -> dict[str, np.ndarray]:
        """Return every stored array, params and state, named ``"{layer}.{name}"`` in layer order."""
        out = {}
        for i, layer in enumerate(self.layers):
            for name, a in zip((*layer.param_names, *layer.state_names), (*layer.params, *layer.state)):
                out[f"{i}.{name}"] = a
        return out

    def array_shapes(self) -> dict[str, tuple[int, ...]]:
        """Return the shape of every stored array, by name (what an artifact must hold)."""
        return {name: a.shape for name, a in self.arrays().items()}

    def set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Copy named arrays (as ``arrays()`` names them) into the network, checking shapes."""
        mine = self.arrays()
        if set(arrays) != set(mine):
            raise ValueError(f"expected arrays {sorted(mine)}, got {sorted(arrays)}")
        for name, target in mine.items():
            if arrays[name].shape != target.shape:
                raise ValueError(f"array {name}: expected shape {target.shape}, got {arrays[name].shape}")
            target[...] = arrays[name]

    def get_state(self) -> list[np.ndarray]:
        """Return copies of every array (params and state), for ``set_state``."""
        return [a.copy() for a in self.arrays().values()]

    def set_state(self, arrays: Sequence[np.ndarray]) -> None:
        """Restore what ``get_state`` returned."""
        for target, a in zip(self.arrays().values(), arrays, strict=True):
            target[...] = a

    def copy(self) -> Network:
        """Return an independent network with the same arrays and temperature."""
        other = Network(self.input_shape, self.spec, None, self.temperature, self.dtype)
        other.set_arrays(self.arrays())
        return other

    # -- the forward pass ---------------------------------------------------

    def _batch(self, X: np.ndarray) -> np.ndarray:
        """Return ``X`` as (n, *input_shape) in the network's dtype (flat rows accepted)."""
        X = np.asarray(X)
        if X.shape[1:] != self.input_shape:
            if X.ndim < 2 or X[0].size != self._input_size:
                raise ValueError(f"expected inputs of shape (n, {', '.join(map(str, self.input_shape))}) "
                                 f"or (n, {self._input_size}), got {X.shape}")
            X = X.reshape(X.shape[0], *self.input_shape)
        if X.dtype != self.dtype:
            X = X.astype(self.dtype)
        return X

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        """Return logits of shape (n, k) for inputs (n, *input_shape) or (n, d).

        The result lives in a layer buffer: copy it to keep it across calls.
        """
        X = self._batch(X)
        for layer in self.layers:
            X = layer.forward(X, training)
        return X

    def backward(self, dlogits: np.ndarray) -> None:
        """Backpropagate ``dL/dlogits``; leaves gradients in ``grads``."""
        d = dlogits
        for layer in reversed(self.layers[self._first_trainable:]):
            d = layer.backward(d)

    def loss_and_grads(self, X: np.ndarray, y: np.ndarray, smoothing: float = 0.0) -> tuple[float, np.ndarray]:
        """Run a training forward and backward pass; return (loss, logits) (``smoothing``: label
        smoothing, ``losses.softmax_cross_entropy``)."""
        logits = self.forward(X, training=True)
        loss, dlogits = softmax_cross_entropy(logits, y, smoothing)
        self.backward(dlogits)
        return loss, logits

    # -- inference ----------------------------------------------------------

    def infer(self, X: np.ndarray, features: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Return (logits (n, k), the last layer's inputs (n, d) or None) for inputs (n,
        *input_shape) or (n, d): inference (running statistics, no caches), in chunks of
        ``infer_batch`` rows, into fresh arrays. ``model.inference.Predictor`` turns
        logits into answers; the features are what a Mahalanobis score compares.
        """
        X = self._batch(X)
        n, step = X.shape[0], self.infer_batch
        if n <= step and not features:
            return self.forward(X).copy(), None
        logits = np.empty((n, self.n_outputs), dtype=self.dtype)
        feats = np.empty((n, int(np.prod(self.shapes[-1]))), dtype=self.dtype) if features else None
        body, last = self.layers[:-1], self.layers[-1]
        for start in range(0, n, step):
            h = X[start:start + step]
            for layer in body:
                h = layer.forward(h, False)
            if feats is not None:
                feats[start:start + step] = h.reshape(len(h), -1)
            logits[start:start + step] = last.forward(h, False)
        return logits, feats

    def __repr__(self) -> str:
        return f"Network({self.input_shape}, {self.describe()}, {self.n_params:,} params)"
