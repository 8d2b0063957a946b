"""Export a loaded artifact to ONNX: the network and the service's answer, in one graph.

``export_onnx`` writes an ONNX model that answers exactly what the service
answers for the same pixels, so the trained model can be served by standard
runtimes (onnxruntime, Triton's onnxruntime backend, KServe's Triton runtime):

    input          FP32 [N, 1, 28, 28]  pixels as the service scales them: uint8 * float32(1/255)
                                        (model.data.scale_pixels), white digit on black, already
                                        MNIST-like (centred, 20x20 box), as the V2 ``images`` tensor
    probabilities  FP32 [N, 10]         softmax of the digit logits / temperature
    predicted_class INT64 [N]           argmax of ``probabilities`` (first on a tie, as NumPy)
    digit_score    FP32 [N]             the artifact's digit score (``ood.py``): sigmoid(a * raw + b),
                                        a * raw + b clipped to [-60, 60]; the top probability for an
                                        artifact without one (as ``service.digits`` answers)

The graph is built with ``onnx.helper`` from the layer list the service runs
(``LoadedModel.predictor``: each batch normalisation folded into the layer
before it, ``inference.fold_batchnorm``), one translation per layer kind
(``LAYER_OPS``); a kind without one raises ``UnsupportedLayer`` naming the
layer. A batch normalisation that cannot be folded is exported as the
per-channel multiply-add ``BatchNorm.forward`` computes at inference, with the
same float32 scale and shift, not as the ONNX operator (whose arithmetic
differs in rounding). Dropout is the identity at inference and adds no node.
The batch dimension is dynamic. The same artifact always gives the same bytes.

Where the network has a "not a digit" output, it only informs the digit score
(``inference.Predictor``): ``probabilities`` covers the digits. The score is computed
in float32 (float64 for ``mahalanobis``, which the service computes in
float64 from the stored class means and precision).

``onnx`` is imported inside the functions, so importing ``model`` never needs
it; ``onnx_session`` and ``run_onnx`` need ``onnxruntime``. The parity check
against the service and the CLI are ``evaluation/export_cli.py``'s.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .atomic import write_atomic
from .artifact import LoadedModel
from .data import INPUT_SHAPE, PIXEL_SCALE

__all__ = ["INPUT_NAME", "IR_VERSION", "LAYER_OPS", "OPSET", "OUTPUTS", "UnsupportedLayer", "build_onnx",
           "export_onnx", "onnx_session", "run_onnx"]

# Opset 17 runs on onnxruntime >= 1.13 and on Triton's onnxruntime backend since release 22.12;
# IR version 8 is the one it came with (onnx 1.12), so older readers accept the file too.
OPSET = 17
IR_VERSION = 8
INPUT_NAME = "input"
INPUT_SHAPE_NCHW = (1, *INPUT_SHAPE)
OUTPUTS = ("probabilities", "predicted_class", "digit_score")
BATCH = "N"
PRODUCER = "mnist-service"
SCORE_CLIP = 60.0  # ood.calibrated clips a * raw + b to [-60, 60] before the sigmoid


class UnsupportedLayer(ValueError):
    """A layer of the network has no ONNX translation here."""


class _Graph:
    """Nodes and initializers being built, with names derived from the layer index."""

    def __init__(self) -> None:
        import onnx

        self.onnx = onnx
        self.nodes: list = []
        self.initializers: list = []

    def const(self, name: str, array: np.ndarray) -> str:
        """Add ``array`` (kept in its dtype) as an initializer; return its name."""
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        """Add one ``op`` node writing ``output``; return ``output``."""
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [output], name=output, **attrs))
        return output


# -- one translation per layer kind: (graph, layer, its input, input shape, prefix) -> output ----


def _dense(g: _Graph, layer, x: str, shape: tuple[int, ...], p: str) -> str:
    W, b = layer.params
    return g.node("Gemm", [x, g.const(f"{p}.W", W), g.const(f"{p}.b", b)], f"{p}.dense")


def _relu(g: _Graph, layer, x: str, shape: tuple[int, ...], p: str) -> str:
    return g.node("Relu", [x], f"{p}.relu")


def _dropout(g: _Graph, layer, x: str, shape: tuple[int, ...], p: str) -> str:
    return x  # the identity at inference (Dropout.forward with training=False)


def _flatten(g: _Graph, layer, x: str, shape: tuple[int, ...], p: str) -> str:
    return g.node("Flatten", [x], f"{p}.flatten", axis=1)


def _batchnorm(g: _Graph, layer, x: str, shape: tuple[int, ...], p: str) -> str:
    scale, shift = layer.inference_affine()  # the arrays BatchNorm.forward uses at inference
    per_channel = (-1,) + (1,) * (len(shape) - 1)  # (C,) for (n, C); (C, 1, 1) for (n, C, H, W)
    y = g.node("Mul", [x, g.const(f"{p}.scale", scale.reshape(per_channel))], f"{p}.bn_scaled")
    return g.node("Add", [y, g.const(f"{p}.shift", shift.reshape(per_channel))], f"{p}.batchnorm")


def _conv2d(g: _Graph, layer, x: str, shape: tuple[int, ...], p: str) -> str:
    inputs = [x, g.const(f"{p}.W", layer.params[0])]
    if layer.bias:
        inputs.append(g.const(f"{p}.b", layer.params[1]))
    k, s, pad = layer.kernel, layer.stride, layer.padding
    return g.node("Conv", inputs, f"{p}.conv", kernel_shape=[k, k], strides=[s, s], pads=[pad] * 4)


def _maxpool2d(g: _Graph, layer, x: str, shape: tuple[int, ...], p: str) -> str:
    # Floor mode (ceil_mode 0) drops an odd last row or column, as MaxPool2D does.
    size = layer.size
    return g.node("MaxPool", [x], f"{p}.maxpool", kernel_shape=[size, size], strides=[size, size])


LAYER_OPS: dict[str, Callable] = {"dense": _dense, "relu": _relu, "dropout": _dropout, "flatten": _flatten,
                                  "batchnorm": _batchnorm, "conv2d": _conv2d, "maxpool2d": _maxpool2d}


# -- the answer: probabilities, class, digit score ---------------------------------------------


def _axis1(g: _Graph, op: str, x: str, output: str) -> str:
    """Reduce ``x`` over axis 1 with ``op`` (an opset-17 reduction taking ``axes`` as an attribute)."""
    return g.node(op, [x], output, axes=[1], keepdims=0)


def _calibrated(g: _Graph, raw: str, platt: tuple[float, float], dtype: type) -> str:
    """Return ``sigmoid(clip(a * raw + b, -60, 60))`` as float32 (``ood.calibrated``)."""
    a, b = platt
    t = g.node("Mul", [raw, g.const("score.a", np.array(a, dtype))], "score.a_raw")
    t = g.node("Add", [t, g.const("score.b", np.array(b, dtype))], "score.logit")
    t = g.node("Clip", [t, g.const("score.min", np.array(-SCORE_CLIP, dtype)),
                        g.const("score.max", np.array(SCORE_CLIP, dtype))], "score.clipped")
    if dtype is np.float32:
        return g.node("Sigmoid", [t], "digit_score")
    t = g.node("Sigmoid", [t], "score.sigmoid")
    return g.node("Cast", [t], "digit_score", to=g.onnx.TensorProto.FLOAT)


def _raw_score(g: _Graph, loaded: LoadedModel, logits: str, digits: str, probs: str,
               features: str, n_digits: int) -> tuple[str, type]:
    """Return (the raw score of ``loaded``'s method, (n,), its dtype), as ``ood.raw_scores``."""
    method = loaded.scorer.method
    if method == "msp":
        return _axis1(g, "ReduceMax", probs, "score.raw"), np.float32
    if method == "energy":
        return _axis1(g, "ReduceLogSumExp", digits, "score.raw"), np.float32
    if method == "outlier":  # log p(any digit) = logsumexp(digit logits) - logsumexp(all logits)
        log_probs = g.node("LogSoftmax", [logits], "score.log_probs", axis=1)
        digit_log_probs = _first(g, log_probs, n_digits, "score.digit_log_probs")
        return _axis1(g, "ReduceLogSumExp", digit_log_probs, "score.raw"), np.float32
    if method == "mahalanobis":  # float64, as the service: -min_k (f - mu_k)' P (f - mu_k)
        means, precision = loaded.scorer.gaussians
        f = g.node("Cast", [features], "score.features64", to=g.onnx.TensorProto.DOUBLE)
        f = g.node("Unsqueeze", [f, g.const("score.axis1", np.array([1], np.int64))], "score.features_n1d")
        diff = g.node("Sub", [f, g.const("ood.means", means.astype(np.float64))], "score.diff")
        t = g.node("MatMul", [diff, g.const("ood.precision", precision.astype(np.float64))], "score.diff_p")
        t = g.node("Mul", [t, diff], "score.terms")
        d = g.node("ReduceSum", [t, g.const("score.axis2", np.array([2], np.int64))], "score.distances",
                   keepdims=0)
        return g.node("Neg", [_axis1(g, "ReduceMin", d, "score.nearest")], "score.raw"), np.float64
    raise UnsupportedLayer(f"the digit score method {method!r} has no ONNX translation")


def _first(g: _Graph, x: str, n: int, output: str) -> str:
    """Return columns ``[0, n)`` of the (N, k) tensor ``x``."""
    return g.node("Slice", [x, g.const(f"{output}.starts", np.array([0], np.int64)),
                            g.const(f"{output}.ends", np.array([n], np.int64)),
                            g.const(f"{output}.axes", np.array([1], np.int64))], output)


def build_onnx(loaded: LoadedModel, opset: int = OPSET):
    """Return the ``onnx.ModelProto`` of ``loaded``: network, probabilities, class and digit score.

    Raises
    ------
    UnsupportedLayer : a layer kind (or digit score method) with no translation.
    """
    import onnx
    from onnx import TensorProto, helper

    if opset < 13 or opset > 17:
        # 13: Softmax over one axis, Slice/Unsqueeze/ReduceSum/Clip with tensor inputs;
        # 18 moved the other reductions' axes to inputs, which this graph does not write.
        raise ValueError(f"opset {opset} is not supported: choose 13 to 17")
    net, meta = loaded.predictor.net, loaded.metadata  # as the service runs it: batch norms folded
    n_digits = len(loaded.labels)
    g = _Graph()
    x = INPUT_NAME
    if net.input_shape != INPUT_SHAPE_NCHW:  # an MLP: flat pixels, row-major as scale_pixels gives
        x = g.node("Flatten", [x], "input.flat", axis=1)
    features = x
    for i, (layer, shape) in enumerate(zip(net.layers, net.shapes)):
        translate = LAYER_OPS.get(layer.kind)
        if translate is None:
            raise UnsupportedLayer(f"layer {i} ({layer.kind!r}) has no ONNX translation; supported kinds: "
                                   f"{', '.join(sorted(LAYER_OPS))}")
        if i == len(net.layers) - 1:
            features = x if len(shape) == 1 else g.node("Flatten", [x], "features", axis=1)
        x = translate(g, layer, x, shape, f"layer{i}")
    logits = x
    digits = _first(g, logits, n_digits, "digit_logits") if net.n_outputs > n_digits else logits
    if net.temperature != 1.0:  # inference.Predictor: z * (1 / T) in float32
        inverse_t = np.float32(1.0 / net.temperature)
        digits = g.node("Mul", [digits, g.const("inverse_temperature", np.array(inverse_t))], "scaled_logits")
    probs = g.node("Softmax", [digits], "probabilities", axis=1)
    g.node("ArgMax", [probs], "predicted_class", axis=1, keepdims=0)
    if loaded.scorer is None:
        g.node("ReduceMax", [probs], "digit_score", axes=[1], keepdims=0)
    else:
        raw, dtype = _raw_score(g, loaded, logits, digits, probs, features, n_digits)
        _calibrated(g, raw, loaded.scorer.platt, dtype)

    n = BATCH
    graph = helper.make_graph(
        g.nodes, f"{meta.name}", [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT,
                                                                 [n, *INPUT_SHAPE_NCHW])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [n, n_digits]),
         helper.make_tensor_value_info("predicted_class", TensorProto.INT64, [n]),
         helper.make_tensor_value_info("digit_score", TensorProto.FLOAT, [n])],
        initializer=g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name=PRODUCER, ir_version=IR_VERSION, doc_string=_contract(loaded))
    helper.set_model_props(model, _properties(loaded))
    onnx.checker.check_model(model, full_check=True)
    return model


def _contract(loaded: LoadedModel) -> str:
    return (f"{loaded.metadata.name} {loaded.net.arch.upper()} {loaded.net.describe()}. input: float32 "
            f"[N,1,28,28], uint8 pixels * float32({PIXEL_SCALE:.8g}), white digit on black, MNIST-like. "
            "probabilities: float32 [N,10] over the labels; predicted_class: int64 [N]; digit_score: "
            "float32 [N] in [0,1] (higher: more like a digit).")


def _properties(loaded: LoadedModel) -> dict[str, str]:
    """Return the model's metadata_props: what a caller needs to use the outputs as the service does."""
    meta = loaded.metadata
    ood = meta.ood
    return {
        "name": meta.name,
        "labels": json.dumps(meta.labels),
        "weights_sha256": meta.weights_sha256,
        "temperature": repr(meta.temperature),
        "digit_score": ood.method if ood is not None else "top_probability",
        "platt": json.dumps(list(ood.platt)) if ood is not None else "",
        "thresholds": json.dumps(dataclasses.asdict(loaded.thresholds)),
        "input_scale": repr(PIXEL_SCALE),
    }


def export_onnx(loaded: LoadedModel, path: str | os.PathLike, opset: int = OPSET) -> dict:
    """Write ``loaded`` as ONNX to ``path`` atomically; return the export's facts.

    Returns
    -------
    dict with ``format``, ``opset``, ``ir_version``, ``file``, ``bytes``,
    ``sha256`` (of the file), ``weights_sha256`` (of the artifact), ``onnx``
    (the package's version), ``inputs`` and ``outputs`` (name, datatype, shape;
    ``-1`` is the batch dimension).

    Raises
    ------
    UnsupportedLayer : see ``build_onnx``.
    """
    import onnx

    path = Path(path)
    data = build_onnx(loaded, opset).SerializeToString(deterministic=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: f.write(data), mode=0o644)
    n_digits = len(loaded.labels)
    return {
        "format": "onnx",
        "opset": opset,
        "ir_version": IR_VERSION,
        "file": str(path),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "weights_sha256": loaded.metadata.weights_sha256,
        "onnx": onnx.__version__,
        "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, *INPUT_SHAPE_NCHW]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, n_digits]},
                    {"name": "predicted_class", "datatype": "INT64", "shape": [-1]},
                    {"name": "digit_score", "datatype": "FP32", "shape": [-1]}],
    }


def onnx_session(path: str | os.PathLike, threads: int | None = None):
    """Return an onnxruntime CPU session for ``path`` (``threads``: intra-op threads, None: its default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(session, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (probabilities (n, k), predicted classes (n,), digit scores (n,)) of an exported model.

    ``X``: float32 pixels scaled as ``scale_pixels`` does, (n, 784), (n, 28, 28) or (n, 1, 28, 28).
    """
    X = np.ascontiguousarray(X, dtype=np.float32).reshape(-1, *INPUT_SHAPE_NCHW)
    probs, classes, scores = session.run(list(OUTPUTS), {INPUT_NAME: X})
    return probs, classes, scores
