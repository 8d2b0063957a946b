"""Inference: the one way to turn network inputs into answers.

    predictor = Predictor(net, n_digits, scorer)     # once per loaded version (LoadedModel.predictor)
    probabilities, digit_scores = predictor(X)       # X: float32 (n, 784) or (n, 1, 28, 28), scaled pixels
    probabilities, digit_scores, verdicts = predictor.assess(X, thresholds)

``probabilities`` are the calibrated class probabilities over the digits
(softmax of the digit logits divided by the temperature; a "not a digit"
output only informs the score), ``digit_scores`` how much each input looks
like a digit the model knows (``ood.Scorer``), or, for a model without a
fitted score, its top probability. The service, training's evaluations,
``evaluation/``, the ONNX export's parity check and the benchmarks all call
this; nothing else computes an answer.

A ``Predictor`` runs its own copy of the network, prepared for inference
when it is built (``fold_batchnorm``): each batch normalisation is folded
into the convolution or dense layer before it (its running statistics are
fixed at inference, so it is a per-channel multiply-add that the layer's
weights and bias can absorb), so a forward pass has fewer layers and no
per-call arithmetic on statistics. Inputs of any batch size are run in
chunks (``Network.infer``), so a large batch keeps its buffers small.
NumPy only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .losses import softmax
from .network import Network
from .ood import Scorer, Verdicts, verdicts

__all__ = ["Predictor", "fold_batchnorm"]


def _foldable(layers: Sequence[Mapping], i: int) -> int | None:
    """Return the index of the layer ``layers[i]`` (a batchnorm) folds into, or None.

    The batch normalisation must directly follow a convolution or dense layer,
    or follow one through a max pooling (which commutes with the per-channel
    map when its scale is not negative; checked on the arrays).
    """
    j = i - 1
    if j >= 0 and layers[j]["kind"] == "maxpool2d":
        j -= 1
    if j >= 0 and layers[j]["kind"] in ("conv2d", "dense"):
        return j
    return None


def fold_batchnorm(layers: Sequence[Mapping], arrays: Mapping[str, np.ndarray]
                   ) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Return an equivalent inference network (layer list, arrays named as ``Network.arrays``)
    with every foldable batch normalisation merged into the layer before it.

    At inference a batch normalisation computes ``y = x * s + t`` per channel,
    with ``s = gamma / sqrt(running_var + eps)`` and ``t = beta - running_mean * s``.
    Following ``z = W x (+ b)`` it is ``z' = (W * s) x + (b * s + t)``: the
    weights are scaled per output channel and the layer gains a bias. Through
    a 2x2 max pooling this holds for ``s >= 0`` (max(s * a) = s * max(a));
    a normalisation with a negative scale stays a layer of its own. Arrays are
    computed in float64 and stored in the network's float32.
    """
    layers = [dict(layer) for layer in layers]
    names = {i: {k.split(".", 1)[1]: v for k, v in arrays.items() if k.split(".", 1)[0] == str(i)}
             for i in range(len(layers))}
    folded: set[int] = set()
    for i, layer in enumerate(layers):
        if layer["kind"] != "batchnorm":
            continue
        j = _foldable(layers, i)
        if j is None:
            continue
        bn = names[i]
        scale = bn["gamma"].astype(np.float64) / np.sqrt(bn["running_var"].astype(np.float64)
                                                          + layer.get("eps", 1e-5))
        shift = bn["beta"].astype(np.float64) - bn["running_mean"].astype(np.float64) * scale
        if j != i - 1 and (scale < 0).any():
            continue
        target, W = names[j], names[j]["W"].astype(np.float64)
        b = target.get("b", np.zeros(scale.shape)).astype(np.float64)
        if layers[j]["kind"] == "conv2d":
            target["W"] = (W * scale[:, None, None, None]).astype(np.float32)
            layers[j]["bias"] = True
        else:
            target["W"] = (W * scale[None, :]).astype(np.float32)
        target["b"] = (b * scale + shift).astype(np.float32)
        folded.add(i)
    kept = [i for i in range(len(layers)) if i not in folded]
    out_layers = [layers[i] for i in kept]
    out_arrays = {f"{new}.{name}": a for new, i in enumerate(kept) for name, a in names[i].items()}
    return out_layers, out_arrays


class Predictor:
    """Answers for float32 network inputs: (probabilities (n, n_digits), digit scores (n,)).

    Parameters
    ----------
    net : the trained network (its temperature set); it is copied, folded,
        and never touched again.
    n_digits : the classes answered; a network with ``n_digits + 1``
        outputs has a "not a digit" output that only informs the score.
    scorer : the fitted digit score (``ood.Scorer``), or None: the top
        probability stands in for it.
    fold : fold batch normalisations (``fold_batchnorm``); False runs the
        network as trained (the reference the folded one is checked against).
    """

    def __init__(self, net: Network, n_digits: int, scorer: Scorer | None = None, fold: bool = True) -> None:
        layers, arrays = fold_batchnorm(net.spec, net.arrays()) if fold else (net.spec, net.arrays())
        self.net = Network(net.input_shape, layers, None, net.temperature, net.dtype)
        self.net.set_arrays(arrays)
        self.n_digits = int(n_digits)
        self.scorer = scorer
        self.temperature = net.temperature
        self._inverse_temperature = np.float32(1.0 / net.temperature)
        self._features = scorer is not None and scorer.method == "mahalanobis"

    @property
    def input_size(self) -> int:
        """Return the number of floats in one input (784)."""
        return int(np.prod(self.net.input_shape))

    def __call__(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (calibrated probabilities float32 (n, n_digits), digit scores float32 (n,))
        for inputs (n, 784) scaled as in training; fresh arrays, one forward pass."""
        logits, features = self.net.infer(X, features=self._features)
        z = logits[:, :self.n_digits] if logits.shape[1] > self.n_digits else logits
        z = np.multiply(z, self._inverse_temperature, dtype=np.float32)  # a fresh, contiguous copy
        probs = softmax(z, out=z)
        if self.scorer is None:
            return probs, np.max(probs, axis=1)
        scores = self.scorer(logits, self.n_digits, self.temperature, features)
        return probs, scores.astype(np.float32, copy=False)

    def assess(self, X: np.ndarray, thresholds: Verdicts) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Return (probabilities, digit scores, verdicts) for inputs (n, 784): ``__call__``
        and each answer's verdict under ``thresholds`` (``ood.verdicts``)."""
        probs, scores = self(X)
        return probs, scores, verdicts(scores, np.max(probs, axis=1), thresholds)
