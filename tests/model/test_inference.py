"""The one inference API: Predictor, and batch normalisation folded into the layer before it."""

import numpy as np
import pytest

from model.artifact import load_artifact
from model.data import scale_pixels
from model.inference import Predictor, fold_batchnorm
from model.network import Network, cnn_layers, mlp_layers
from model.ood import Scorer, verdicts

from conftest import REPO


def _trained_looking(net: Network, rng: np.random.Generator, negative_scale: bool = False) -> Network:
    """Give every batch normalisation statistics and affine parameters far from the identity."""
    for layer in net.layers:
        if layer.kind == "batchnorm":
            gamma, beta = layer.params
            mean, var = layer.state
            gamma[...] = rng.uniform(0.5, 2.0, gamma.shape)
            if negative_scale:
                gamma[::2] *= -1  # a negative scale cannot pass through a max pooling
            beta[...] = rng.normal(0, 0.5, beta.shape)
            mean[...] = rng.normal(0, 0.3, mean.shape)
            var[...] = rng.uniform(0.2, 3.0, var.shape)
    return net


@pytest.mark.parametrize("negative_scale", [False, True])
def test_folded_network_answers_as_the_unfolded_one(negative_scale):
    rng = np.random.default_rng(0)
    net = _trained_looking(Network((1, 28, 28), cnn_layers(11, filters=(6, 8), kernels=(5, 3), dense=24), rng),
                           rng, negative_scale)
    net.temperature = 1.3
    X = rng.random((40, 784), dtype=np.float32)
    scorer = Scorer("outlier", (1.2, 0.3))
    folded, reference = Predictor(net, 10, scorer), Predictor(net, 10, scorer, fold=False)
    kinds = [layer.kind for layer in folded.net.layers]
    assert "batchnorm" not in kinds if not negative_scale else kinds.count("batchnorm") == 2
    for got, want in zip(folded(X), reference(X)):
        np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_array_equal(folded(X)[0].argmax(axis=1), reference(X)[0].argmax(axis=1))
    assert all(layer.kind == "batchnorm" for layer in net.layers[2:3])  # the trained network is untouched


def test_folding_a_dense_layers_normalisation_and_every_kind_left_alone():
    rng = np.random.default_rng(1)
    layers = mlp_layers([16], 10)[:1] + [{"kind": "batchnorm"}, {"kind": "relu"}, {"kind": "dense", "units": 10}]
    net = _trained_looking(Network((784,), layers, rng), rng)
    spec, arrays = fold_batchnorm(net.spec, net.arrays())
    assert [layer["kind"] for layer in spec] == ["dense", "relu", "dense"]
    assert set(arrays) == {"0.W", "0.b", "2.W", "2.b"}
    X = rng.random((5, 784), dtype=np.float32)
    np.testing.assert_allclose(Predictor(net, 10)(X)[0], Predictor(net, 10, fold=False)(X)[0], atol=1e-6)
    plain = Network((784,), mlp_layers([16], 10), rng)
    assert fold_batchnorm(plain.spec, plain.arrays())[0] == plain.spec  # nothing to fold


@pytest.mark.parametrize("version", ["2", "3"])
def test_bundled_cnns_fold_within_1e5_on_3000_mnist_test_images(version, mnist_test):
    images, _ = mnist_test
    loaded = load_artifact(REPO / "artifacts" / "mnist" / version / "model.npz")
    X = scale_pixels(images[:3000])
    folded = loaded.predictor
    reference = Predictor(loaded.net, len(loaded.labels), loaded.scorer, fold=False)
    (p, s), (p0, s0) = folded(X), reference(X)
    assert np.abs(p - p0).max() <= 1e-5 and np.abs(s - s0).max() <= 1e-5
    np.testing.assert_array_equal(p.argmax(axis=1), p0.argmax(axis=1))
    assert "bn" not in folded.net.describe() and "bn" in loaded.net.describe()


def test_answers_are_probabilities_and_scores_one_per_input_in_any_batch_size():
    loaded = load_artifact(REPO / "artifacts" / "mnist" / "3" / "model.npz")
    X = np.random.default_rng(2).random((70, 784), dtype=np.float32)
    loaded.predictor.net.infer_batch = 16  # chunked inference gives the same answers
    probs, scores = loaded.predictor(X)
    assert probs.shape == (70, 10) and scores.shape == (70,) and probs.dtype == scores.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    for i in (0, 33, 69):
        one_p, one_s = loaded.predictor(X[i:i + 1])
        np.testing.assert_allclose(one_p[0], probs[i], atol=1e-6)
        np.testing.assert_allclose(one_s[0], scores[i], atol=1e-6)
    probs, scores, said = loaded.predictor.assess(X, loaded.thresholds)
    assert said == verdicts(scores, probs.max(axis=1), loaded.thresholds)


def test_a_model_without_a_score_answers_its_confidence_as_the_score():
    loaded = load_artifact(REPO / "artifacts" / "mnist" / "1" / "model.npz")
    probs, scores = loaded.predictor(np.random.default_rng(3).random((4, 784), dtype=np.float32))
    np.testing.assert_array_equal(scores, probs.max(axis=1))
