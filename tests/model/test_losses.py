import numpy as np
import pytest

from model.losses import log_softmax, softmax, softmax_cross_entropy


def numeric_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        up = f()
        x[i] = old - eps
        down = f()
        x[i] = old
        g[i] = (up - down) / (2 * eps)
    return g


def assert_layer_gradients(layer, X, G, rtol, atol=1e-8):
    """The layer's input and parameter gradients of sum(forward(X) * G) match finite differences."""
    def objective():
        return float((layer.forward(X, training=True) * G).sum())

    objective()
    dX = layer.backward(G).copy()
    grads = [g.copy() for g in layer.grads]
    np.testing.assert_allclose(dX, numeric_grad(objective, X), rtol=rtol, atol=atol)
    for p, g in zip(layer.params, grads):
        np.testing.assert_allclose(g, numeric_grad(objective, p), rtol=rtol, atol=atol)


def assert_network_gradients(net, X, y, rtol, atol):
    """The network's parameter gradients of its training loss match finite differences."""
    def objective():
        return softmax_cross_entropy(net.forward(X, training=True), y)[0]

    net.loss_and_grads(X, y)
    analytic = [g.copy() for g in net.grads]
    for p, g in zip(net.params, analytic):
        np.testing.assert_allclose(g, numeric_grad(objective, p), rtol=rtol, atol=atol)


@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e3, 1e30, 5e37])
def test_softmax_is_finite_and_sums_to_one(scale):
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((64, 10)) * scale).astype(np.float32)
    probs = softmax(logits)
    assert np.isfinite(probs).all()
    assert ((probs >= 0) & (probs <= 1)).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)


def test_softmax_extremes_exact():
    logits = np.array([[1e30, -1e30, 0.0], [-3e38, -3e38, -3e38], [88.0, 89.0, -1e4],
                       [3e38, -3e38, 0.0]], np.float32)
    probs = softmax(logits)
    np.testing.assert_array_equal(probs[3], [1, 0, 0])
    np.testing.assert_allclose(probs[0], [1, 0, 0])
    np.testing.assert_allclose(probs[1], [1 / 3] * 3, rtol=1e-6)
    np.testing.assert_allclose(probs[2], [1 / (1 + np.e), np.e / (1 + np.e), 0], rtol=1e-6)


def test_softmax_is_shift_invariant_and_matches_definition():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((5, 7))
    expected = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(softmax(z), expected, rtol=1e-12)
    np.testing.assert_allclose(softmax(z + 1000.0), expected, rtol=1e-12)
    np.testing.assert_allclose(np.exp(log_softmax(z)), expected, rtol=1e-12)


def test_cross_entropy_value_and_gradient_is_probs_minus_onehot():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((6, 4))
    y = np.array([0, 1, 2, 3, 1, 0])
    loss, dz = softmax_cross_entropy(z.copy(), y)
    p = softmax(z)
    assert loss == pytest.approx(-np.log(p[np.arange(6), y]).mean(), rel=1e-12)
    onehot = np.eye(4)[y]
    np.testing.assert_allclose(dz, (p - onehot) / 6, rtol=1e-10, atol=1e-14)
    num = numeric_grad(lambda: softmax_cross_entropy(z, y)[0], z)
    np.testing.assert_allclose(dz, num, rtol=1e-5, atol=1e-9)


def test_cross_entropy_stays_finite_for_confident_wrong_answers():
    z = np.array([[1e4, -1e4]], np.float32)
    loss, dz = softmax_cross_entropy(z, np.array([1]))
    assert loss == pytest.approx(2e4, rel=1e-6)
    assert np.isfinite(dz).all()


def test_cross_entropy_rejects_bad_label_shape():
    with pytest.raises(ValueError, match="labels must have shape"):
        softmax_cross_entropy(np.zeros((3, 2)), np.zeros((2,), int))
