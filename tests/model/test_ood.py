"""The digit score: raw scores, their calibration, thresholds, verdicts, and the artifact's ood block."""


import numpy as np
import pytest

from model.artifact import InvalidArtifact, build_metadata, load_artifact, save_artifact
from model.data import scale_pixels
from model.negatives import draw_negative
from model.network import Network, cnn_layers
from model.inference import Predictor
from model.ood import (METHODS, Verdicts, auroc, calibrated, choose_thresholds, fit_gaussians, fit_platt,
                       fit_scorer, fpr_at_tpr, raw_scores, verdicts)

from conftest import RESOURCES, bundled_model
from test_artifact import edit_metadata, rewrite


def test_raw_scores_match_their_definitions():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (50, 11))
    z = logits[:, :10] / 2.0
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(raw_scores("msp", logits, 10, 2.0), p.max(axis=1))
    np.testing.assert_allclose(raw_scores("energy", logits, 10, 2.0), np.log(np.exp(z).sum(axis=1)))
    full = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(raw_scores("outlier", logits, 10), np.log(full[:, :10].sum(axis=1)))
    features = rng.normal(size=(50, 4))
    means, precision = rng.normal(size=(10, 4)), np.eye(4) * 2
    expected = -np.array([min(2 * ((f - m) ** 2).sum() for m in means) for f in features])
    np.testing.assert_allclose(raw_scores("mahalanobis", logits, 10, 1.0, features, (means, precision)), expected)
    with pytest.raises(ValueError, match="not a digit"):
        raw_scores("outlier", logits[:, :10], 10)
    with pytest.raises(ValueError, match="unknown method"):
        raw_scores("entropy", logits, 10)


def test_scores_are_stable_for_extreme_logits():
    logits = np.array([[1e4, -1e4] + [0.0] * 9, [-1e4] * 10 + [1e4]])
    for method in ("msp", "energy", "outlier"):
        assert np.isfinite(raw_scores(method, logits, 10)).all()
    s = calibrated(np.array([-1e300, 0.0, 1e300]), 1.0, 0.0)
    assert s.dtype == np.float32 and s.min() >= 0 and s.max() <= 1 and s[1] == 0.5


def test_fit_gaussians_recovers_means_and_precision():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 30000)
    means = np.array([[0, 0], [5, 0], [0, 5]], float)
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    X = means[labels] + rng.multivariate_normal([0, 0], cov, len(labels))
    got_means, precision = fit_gaussians(X, labels, 3, shrinkage=0.0)
    np.testing.assert_allclose(got_means, means, atol=0.05)
    np.testing.assert_allclose(precision, np.linalg.inv(cov), atol=0.05)


def test_platt_scaling_recovers_a_logistic_and_is_increasing():
    rng = np.random.default_rng(2)
    raw = rng.normal(0, 3, 200000)
    is_digit = rng.random(len(raw)) < 1 / (1 + np.exp(-(1.5 * raw - 2.0)))
    a, b = fit_platt(raw, is_digit)
    # Classes weighted equally: the slope is kept, the offset moves by the log odds of the priors.
    prior = is_digit.mean()
    assert a == pytest.approx(1.5, rel=0.05)
    assert b == pytest.approx(-2.0 - np.log(prior / (1 - prior)), abs=0.1)


def test_auroc_matches_the_pairwise_definition_with_ties():
    rng = np.random.default_rng(3)
    pos, neg = rng.integers(0, 5, 40).astype(float), rng.integers(0, 4, 30).astype(float)
    pairs = [(p > n) + 0.5 * (p == n) for p in pos for n in neg]
    assert auroc(pos, neg) == pytest.approx(np.mean(pairs))
    assert auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert fpr_at_tpr(np.arange(100.0), np.arange(100.0) - 50, 0.95) == pytest.approx(0.45)


def test_thresholds_respect_each_groups_false_reject_share_and_the_target_accuracy():
    rng = np.random.default_rng(4)
    clean, styled = rng.normal(5, 1, 5000), rng.normal(3, 1.5, 3000)
    top = np.concatenate([rng.uniform(0.3, 1.0, 5000), rng.uniform(0.3, 1.0, 3000)])
    correct = rng.random(8000) < top  # right as often as confident: calibrated
    t = choose_thresholds({"clean": (clean, 0.005), "styled": (styled, 0.02)}, top, correct, 0.99)
    assert (clean < t.not_a_digit_below).mean() <= 0.005 and (styled < t.not_a_digit_below).mean() <= 0.02
    accepted = np.concatenate([clean, styled]) >= t.not_a_digit_below
    answered = accepted & (top >= t.uncertain_below)
    assert correct[answered].mean() >= 0.99
    assert 0.9 < t.uncertain_below < 1.0  # calibrated: 99% right needs ~99% confidence


def test_verdicts_follow_the_thresholds():
    t = Verdicts(not_a_digit_below=0.3, uncertain_below=0.8)
    scores, top = np.array([0.1, 0.5, 0.5, 0.3]), np.array([0.99, 0.6, 0.95, 0.8])
    assert verdicts(scores, top, t) == ["not_a_digit", "uncertain", "digit", "digit"]


def _tiny_cnn(outputs, seed=0):
    return Network((1, 28, 28), cnn_layers(outputs, [4], [3], 8, 0.0), np.random.default_rng(seed))


@pytest.mark.parametrize("outputs", [10, 11])
def test_fit_scorer_compares_methods_and_its_choice_round_trips_through_the_artifact(tmp_path, outputs):
    net = _tiny_cnn(outputs)
    rng = np.random.default_rng(5)
    digits = rng.random((200, 784)).astype(np.float32) * (rng.random((200, 784)) < 0.2)
    labels = rng.integers(0, 10, 200)
    negatives = {"drawn": scale_pixels(np.stack([draw_negative(rng) for _ in range(60)]))}
    block, arrays, raw = fit_scorer(net, 10, {"a": (digits, labels, 0.01)}, negatives, digits, labels)
    methods = [r["method"] for r in block["comparison"]]
    assert methods == [m for m in METHODS if m != "outlier" or outputs == 11]
    assert block["method"] in methods and set(raw) == set(methods)
    assert set(arrays) == ({"ood.means", "ood.precision"} if block["method"] == "mahalanobis" else set())
    meta = build_metadata(net, "mnist", [str(i) for i in range(10)], {"name": "mnist"}, ood=block,
                          ood_arrays=arrays)
    path = save_artifact(tmp_path / "m.npz", net, meta, arrays)
    loaded = load_artifact(path)
    assert loaded.metadata.ood.thresholds.model_dump() == block["thresholds"]
    probs, scores = loaded.predictor(digits[:7])
    assert probs.shape == (7, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert scores.shape == (7,) and (scores >= 0).all() and (scores <= 1).all()
    assert np.array_equal(scores, Predictor(net, 10, loaded.scorer)(digits[:7])[1])


def _ood_artifact(tmp_path, method="energy"):
    net = _tiny_cnn(11 if method == "outlier" else 10)
    arrays = {}
    if method == "mahalanobis":
        arrays = {"ood.means": np.zeros((10, 8), np.float32), "ood.precision": np.eye(8, dtype=np.float32)}
    block = {"method": method, "platt": [0.5, 1.0], "outlier_output": method == "outlier",
             "thresholds": {"not_a_digit_below": 0.2, "uncertain_below": 0.9}}
    meta = build_metadata(net, "mnist", [str(i) for i in range(10)], {"name": "mnist"}, ood=block,
                          ood_arrays=arrays)
    return save_artifact(tmp_path / "good.npz", net, meta, arrays)


def _set(path, value):
    def edit(meta):
        target = meta
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit_metadata(edit)


TAMPERED = {
    "threshold above 1": ("energy", _set(["ood", "thresholds", "not_a_digit_below"], 1.5), "not_a_digit_below"),
    "negative threshold": ("energy", _set(["ood", "thresholds", "uncertain_below"], -0.1), "uncertain_below"),
    "thresholds missing": ("energy", _set(["ood", "thresholds"], {}), "thresholds"),
    "decreasing platt": ("energy", _set(["ood", "platt"], [-1.0, 0.0]), "platt"),
    "unknown method": ("energy", _set(["ood", "method"], "vibes"), "method"),
    "outlier without the output": ("energy", _set(["ood", "method"], "outlier"), "not a digit"),
    "extra key": ("energy", _set(["ood", "shortcut"], True), "shortcut"),
    "output flag without the output": ("energy", _set(["ood", "outlier_output"], True), "outputs"),
    "mahalanobis without its arrays": ("energy", _set(["ood", "method"], "mahalanobis"), "missing"),
    "precision changed": ("mahalanobis",
                          lambda m: m.__setitem__("ood.precision", m["ood.precision"] * np.float32(2)), "SHA-256"),
    "precision not symmetric": ("mahalanobis", lambda m: m["ood.precision"].__setitem__((0, 1), 5.0), "symmetric"),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_a_tampered_ood_block_is_rejected(tmp_path, case):
    method, change, message = TAMPERED[case]
    bad = rewrite(_ood_artifact(tmp_path, method), tmp_path / "bad.npz", change)
    with pytest.raises(InvalidArtifact, match=message):
        load_artifact(bad)


@pytest.mark.parametrize("method", ["msp", "energy", "mahalanobis", "outlier"])
def test_each_method_loads_and_scores(tmp_path, method):
    loaded = load_artifact(_ood_artifact(tmp_path, method))
    probs, scores = loaded.predictor(np.random.default_rng(0).random((3, 784), np.float32))
    assert probs.shape == (3, 10) and scores.shape == (3,) and ((0 <= scores) & (scores <= 1)).all()


def test_the_bundled_score_ranks_a_digit_above_a_scribble_above_noise():
    from PIL import Image

    loaded = bundled_model()
    assert loaded.metadata.ood is not None
    digits = scale_pixels(np.stack([np.asarray(Image.open(p)) for p in sorted(RESOURCES.glob("mnist_test_*.png"))]))
    rng = np.random.default_rng(6)
    scribbles = scale_pixels(np.stack([draw_negative(rng, "scribble") for _ in range(100)]))
    noise = rng.random((100, 784)).astype(np.float32)
    d, s, n = (loaded.predictor(x)[1] for x in (digits, scribbles, noise))
    assert all(((0 <= x) & (x <= 1)).all() for x in (d, s, n))
    assert d.min() > np.median(s) > np.median(n)
    assert auroc(d, s) > 0.95 and auroc(d, n) == 1.0
