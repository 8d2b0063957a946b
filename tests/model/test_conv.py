"""Convolution, pooling, batch normalisation and the CNN, against references.

Gradients are checked in float64 against central finite differences; im2col
and the convolution against a direct loop over output pixels.
"""

import threading

import numpy as np
import pytest

from model.conv import Conv2D, MaxPool2D, col2im, im2col
from model.layers import BatchNorm, Flatten
from model.losses import softmax
from model.inference import Predictor
from model.network import Network, cnn_layers

from test_losses import assert_layer_gradients, assert_network_gradients, numeric_grad


def direct_conv(X, W, b, stride, padding):
    """The textbook definition: every output pixel as a sum over its window."""
    N, C, H, Wd = X.shape
    F, _, k, _ = W.shape
    Xp = np.pad(X, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    Ho = (H + 2 * padding - k) // stride + 1
    Wo = (Wd + 2 * padding - k) // stride + 1
    Y = np.zeros((N, F, Ho, Wo))
    for n in range(N):
        for f in range(F):
            for y in range(Ho):
                for x in range(Wo):
                    window = Xp[n, :, y * stride:y * stride + k, x * stride:x * stride + k]
                    Y[n, f, y, x] = (window * W[f]).sum() + (b[f] if b is not None else 0.0)
    return Y


def padded_buffer(rng, shape):
    """A padded input as Conv2D stores it: a view of a buffer with one spare row."""
    N, C, Hp, Wp = shape
    storage = np.zeros(N * C * Hp * Wp + Wp)
    Xp = storage[:N * C * Hp * Wp].reshape(shape)
    Xp[...] = rng.standard_normal(shape)
    return Xp


def test_im2col_gathers_every_window_in_the_padded_width_layout():
    rng = np.random.default_rng(0)
    N, C, Hp, Wp, k = 2, 3, 7, 6, 3
    Xp = padded_buffer(rng, (N, C, Hp, Wp))
    Ho, Wo = Hp - k + 1, Wp - k + 1
    cols = im2col(Xp, k, Ho, np.empty((C, k, k, N, Ho * Wp)))
    grid = cols.reshape(C, k, k, N, Ho, Wp)
    for c in range(C):
        for i in range(k):
            for j in range(k):
                for n in range(N):
                    np.testing.assert_array_equal(grid[c, i, j, n, :, :Wo], Xp[n, c, i:i + Ho, j:j + Wo])


def test_col2im_is_the_adjoint_of_im2col():
    # <im2col(x), c> == <x, col2im(c)> for every x and c whose padded-width columns are zero.
    rng = np.random.default_rng(1)
    N, C, Hp, Wp, k = 3, 2, 6, 5, 3
    Ho, Wo = Hp - k + 1, Wp - k + 1
    Xp = padded_buffer(rng, (N, C, Hp, Wp))
    cols = im2col(Xp, k, Ho, np.empty((C, k, k, N, Ho * Wp)))
    c = rng.standard_normal((C, k, k, N, Ho, Wp))
    c[..., Wo:] = 0.0
    storage = np.zeros(N * C * Hp * Wp + Wp)
    dXp = storage[:N * C * Hp * Wp].reshape(N, C, Hp, Wp)
    col2im(c.reshape(C, k, k, N, Ho * Wp), dXp, k, Ho)
    assert (cols * c.reshape(cols.shape)).sum() == pytest.approx((Xp * dXp).sum(), rel=1e-12)
    np.testing.assert_array_equal(storage[N * C * Hp * Wp:], 0.0)  # the spare row only receives zeros


@pytest.mark.parametrize("kernel,stride,padding,bias", [(3, 1, 1, True), (5, 1, 2, False), (3, 2, 1, True),
                                                        (2, 1, 0, True), (1, 1, 0, False), (3, 2, 0, False)])
def test_conv_forward_matches_the_direct_loop(kernel, stride, padding, bias):
    rng = np.random.default_rng(2)
    layer = Conv2D(3, 4, kernel, stride, padding, bias, rng, dtype=np.float64)
    if bias:
        layer.params[1][...] = rng.standard_normal(4)
    X = rng.standard_normal((2, 3, 7, 8))
    expected = direct_conv(X, layer.params[0], layer.params[1] if bias else None, stride, padding)
    Y = layer.forward(X)
    assert Y.shape == (2, *layer.output_shape((3, 7, 8)))
    np.testing.assert_allclose(Y, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kernel,stride,padding,bias", [(3, 1, 1, True), (5, 1, 2, False), (3, 2, 1, True),
                                                        (2, 2, 0, False)])
def test_conv_gradients_match_finite_differences(kernel, stride, padding, bias):
    rng = np.random.default_rng(3)
    layer = Conv2D(2, 3, kernel, stride, padding, bias, rng, dtype=np.float64)
    X = rng.standard_normal((2, 2, 6, 7))
    G = rng.standard_normal((2, *layer.output_shape((2, 6, 7))))
    assert_layer_gradients(layer, X, G, rtol=1e-6)


def test_first_conv_layer_skips_the_input_gradient_but_not_its_weights():
    rng = np.random.default_rng(4)
    layer = Conv2D(1, 2, 3, padding=1, rng=rng, dtype=np.float64)
    layer.needs_input_grad = False
    X = rng.standard_normal((2, 1, 5, 5))
    G = rng.standard_normal((2, 2, 5, 5))
    layer.forward(X, training=True)
    layer.backward(G)
    full = Conv2D(1, 2, 3, padding=1, rng=None, dtype=np.float64)
    full.params[0][...] = layer.params[0]
    full.forward(X, training=True)
    full.backward(G)
    np.testing.assert_allclose(layer.grads[0], full.grads[0])


@pytest.mark.parametrize("shape", [(2, 3, 6, 8), (1, 2, 7, 5)])
def test_maxpool_forward_and_gradient(shape):
    rng = np.random.default_rng(5)
    layer = MaxPool2D()
    X = rng.standard_normal(shape)
    N, C, H, W = shape
    expected = X[:, :, :H // 2 * 2, :W // 2 * 2].reshape(N, C, H // 2, 2, W // 2, 2).max(axis=(3, 5))
    np.testing.assert_array_equal(layer.forward(X), expected)
    G = rng.standard_normal(expected.shape)

    def objective():
        return float((layer.forward(X, training=True) * G).sum())

    objective()
    np.testing.assert_allclose(layer.backward(G), numeric_grad(objective, X), rtol=1e-6, atol=1e-8)


def test_maxpool_sends_a_tied_window_gradient_to_exactly_one_pixel():
    layer = MaxPool2D()
    X = np.zeros((1, 1, 4, 4))
    X[0, 0, 2:, 2:] = 5.0  # all four tie
    layer.forward(X, training=True)
    dX = layer.backward(np.ones((1, 1, 2, 2)))
    assert dX.sum() == 4.0  # one unit per window, never duplicated
    assert (dX.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(4, 4).sum(axis=1) == 1).all()


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 3, 2)])
def test_batchnorm_gradients_match_finite_differences(shape):
    rng = np.random.default_rng(6)
    layer = BatchNorm(3, dtype=np.float64)
    layer.params[0][...] = rng.uniform(0.5, 2.0, 3)
    layer.params[1][...] = rng.standard_normal(3)
    X = rng.standard_normal(shape) * 3 + 1
    G = rng.standard_normal(shape)
    assert_layer_gradients(layer, X, G, rtol=1e-5)


def test_batchnorm_normalises_in_training_and_uses_running_statistics_in_inference():
    rng = np.random.default_rng(7)
    layer = BatchNorm(2, momentum=0.5)
    X = (rng.standard_normal((64, 2, 5, 5)) * np.array([2.0, 0.5]).reshape(1, 2, 1, 1) + 3).astype(np.float32)
    Y = layer.forward(X, training=True)
    np.testing.assert_allclose(Y.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(Y.std(axis=(0, 2, 3)), 1.0, atol=1e-3)
    mean, var = layer.state
    np.testing.assert_allclose(mean, 0.5 * X.mean(axis=(0, 2, 3)), rtol=1e-5)
    unbiased = X.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(var, 0.5 + 0.5 * unbiased, rtol=1e-5)
    # Inference: a fixed per-channel affine map from the running statistics.
    x = X[:1]
    expected = (x - mean.reshape(1, 2, 1, 1)) / np.sqrt(var.reshape(1, 2, 1, 1) + layer.eps)
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-5, atol=1e-6)


def test_flatten_round_trips_the_shape():
    layer = Flatten()
    X = np.arange(24.0).reshape(2, 3, 2, 2)
    Y = layer.forward(X, training=True)
    assert Y.shape == (2, 12)
    assert layer.backward(Y).shape == X.shape


def small_cnn(rng, dtype=np.float64):
    layers = cnn_layers(3, filters=(2, 3), kernels=(3, 3), dense=4, dropout=0.0)
    return Network((1, 8, 8), layers, rng, dtype=dtype)


def test_cnn_gradients_match_finite_differences():
    rng = np.random.default_rng(8)
    net = small_cnn(rng)
    X = rng.standard_normal((5, 1, 8, 8))
    y = np.array([0, 1, 2, 1, 0])
    assert_network_gradients(net, X, y, rtol=1e-4, atol=1e-7)


def test_inference_is_the_same_forward_pass_in_chunks():
    rng = np.random.default_rng(9)
    net = Network((1, 28, 28), cnn_layers(10, filters=(4, 8), kernels=(5, 3), dense=16), rng)
    net.temperature = 1.3
    X = rng.random((37, 784), dtype=np.float32)
    for _ in range(3):  # give the batch norms non-trivial running statistics
        net.forward(rng.random((16, 1, 28, 28), dtype=np.float32), training=True)
    whole = net.forward(X).copy()  # one call, no chunks
    net.infer_batch = 8
    logits, features = net.infer(X, features=True)
    np.testing.assert_allclose(logits, whole, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.infer(X[3:4])[0], logits[3:4], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.layers[-1].forward(features), logits, rtol=1e-5, atol=1e-6)
    probs, scores = Predictor(net, 10, fold=False)(X)
    np.testing.assert_allclose(probs, softmax(whole / 1.3), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(scores, probs.max(axis=1))


def test_threads_sharing_a_network_get_their_own_answers():
    rng = np.random.default_rng(10)
    net = Network((1, 28, 28), cnn_layers(10, filters=(4, 8), kernels=(3, 3), dense=16), rng)
    inputs = [rng.random((n, 784), dtype=np.float32) for n in (1, 3, 5, 7)]
    expected = [net.infer(x)[0] for x in inputs]
    failures = []

    def worker(i):
        for _ in range(30):
            if not np.allclose(net.infer(inputs[i])[0], expected[i], rtol=1e-5, atol=1e-6):
                failures.append(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_layer_list_rebuilds_the_same_network():
    rng = np.random.default_rng(11)
    net = small_cnn(rng, np.float32)
    copy = Network(net.input_shape, net.spec)
    copy.set_arrays(net.arrays())
    X = rng.random((4, 64), dtype=np.float32)
    np.testing.assert_array_equal(copy.infer(X)[0], net.infer(X)[0])
    assert net.arch == "cnn" and "conv3x3x2" in net.describe()
    assert sorted(net.arrays()) == sorted(copy.arrays())


@pytest.mark.parametrize("layers,message", [
    ([{"kind": "conv2d", "filters": 2, "kernel": 3}], "flat"),
    ([{"kind": "warp"}], "unknown kind"),
    ([{"kind": "dense", "units": 3}], "flatten first"),
    ([{"kind": "conv2d", "filters": 2, "kernel": 9}, {"kind": "flatten"}], "cannot take"),
    ([{"kind": "conv2d", "filters": 2}, {"kind": "flatten"}], "kernel"),
])
def test_inconsistent_layer_lists_are_refused(layers, message):
    with pytest.raises(ValueError, match=message):
        Network((1, 8, 8), layers)
