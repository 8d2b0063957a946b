import numpy as np
import pytest

from model.layers import Dense, Dropout, ReLU
from model.network import Network, mlp_layers

from test_losses import assert_network_gradients, numeric_grad


def test_dense_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    layer = Dense(5, 3, rng, dtype=np.float64)
    X = rng.standard_normal((4, 5))
    G = rng.standard_normal((4, 3))  # upstream gradient; objective = sum(G * Y)

    def objective():
        return float((layer.forward(X, training=True) * G).sum())

    objective()
    dX = layer.backward(G).copy()
    dW, db = (g.copy() for g in layer.grads)
    np.testing.assert_allclose(dX, numeric_grad(objective, X), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(dW, numeric_grad(objective, layer.params[0]), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(db, numeric_grad(objective, layer.params[1]), rtol=1e-6, atol=1e-9)


def test_relu_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    layer = ReLU()
    X = rng.standard_normal((6, 4))
    X[np.abs(X) < 1e-3] = 0.5  # keep away from the kink
    G = rng.standard_normal((6, 4))

    def objective():
        return float((layer.forward(X, training=True) * G).sum())

    objective()
    np.testing.assert_allclose(layer.backward(G), numeric_grad(objective, X), rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(layer.forward(X), np.maximum(X, 0))


def test_dense_uses_he_initialisation():
    layer = Dense(1000, 500, np.random.default_rng(0))
    W, b = layer.params
    assert W.dtype == np.float32 and W.shape == (1000, 500)
    assert W.std() == pytest.approx(np.sqrt(2 / 1000), rel=0.02)
    assert not b.any()


def test_dropout_is_identity_at_inference_and_unbiased_in_training():
    rng = np.random.default_rng(0)
    layer = Dropout(0.25, rng)
    X = np.ones((200, 500), np.float32)
    assert layer.forward(X, training=False) is X
    Y = layer.forward(X, training=True)
    assert set(np.unique(Y)) == {0.0, np.float32(1 / 0.75)}
    assert Y.mean() == pytest.approx(1.0, abs=0.01)
    G = np.full_like(X, 2.0)
    np.testing.assert_array_equal(layer.backward(G), 2.0 * Y)  # same mask as forward


@pytest.mark.parametrize("hidden", [(), (7,), (6, 5)])
def test_network_gradients_match_finite_differences(hidden):
    rng = np.random.default_rng(3)
    net = Network((8,), mlp_layers(hidden, 4), rng, dtype=np.float64)
    X = rng.standard_normal((5, 8))
    y = np.array([0, 1, 2, 3, 1])
    assert_network_gradients(net, X, y, rtol=1e-5, atol=1e-8)


def test_single_sparse_row_matches_the_dense_path():
    rng = np.random.default_rng(4)
    net = Network((784,), mlp_layers([64], 10), rng)
    X = np.zeros((3, 784), np.float32)
    X[:, rng.choice(784, 120, replace=False)] = rng.random((3, 120), dtype=np.float32)
    dense = net.infer(X)[0]  # batch of 3: dense GEMM
    for i in range(3):
        single = net.infer(X[i:i + 1])[0]  # one row, 15% ink: sparse path
        np.testing.assert_allclose(single, dense[i:i + 1], rtol=1e-5, atol=1e-6)
    full = rng.random((1, 784), dtype=np.float32)  # dense row: the ordinary path
    np.testing.assert_allclose(net.infer(full)[0], net.infer(np.repeat(full, 2, 0))[0][:1], rtol=1e-5, atol=1e-6)
