import numpy as np
import pytest

from model.augment import AugmentConfig, Augmenter, thicken
from model.calibration import expected_calibration_error, fit_temperature, nll
from model.data import split_validation
from model.losses import softmax
from model.network import Network, cnn_layers, mlp_layers
from model.training import TrainConfig, evaluate, train


@pytest.fixture(scope="module")
def small_split(mnist_dataset):
    ds = mnist_dataset
    images, labels = ds.train_images[:4000], ds.train_labels[:4000]
    return split_validation(images, labels, 1000, seed=0)


def run(split, seed, augment=None, epochs=3, dropout=0.0):
    tri, trl, vai, val = split
    net = Network((784,), mlp_layers([64], 10, dropout=dropout), np.random.default_rng(seed))
    config = TrainConfig(epochs=epochs, batch_size=64, lr=3e-3, schedule="cosine",
                         augment=augment, seed=seed)
    seen = []
    result = train(net, tri, trl, vai, val, config, on_epoch=seen.append)
    return net, result, seen


def test_short_seeded_run_learns(small_split):
    net, result, seen = run(small_split, seed=0)
    assert [s.epoch for s in seen] == [1, 2, 3]
    assert result.history[-1].train_loss < result.history[0].train_loss
    loss, accuracy, _ = evaluate(net, small_split[2], small_split[3])
    assert accuracy >= 0.88 and loss <= 0.45, (accuracy, loss)


def test_training_is_bit_for_bit_reproducible(small_split):
    aug = AugmentConfig(elastic_alpha=1.0)
    a, _, _ = run(small_split, seed=7, augment=aug, epochs=1, dropout=0.1)
    b, _, _ = run(small_split, seed=7, augment=aug, epochs=1, dropout=0.1)
    c, _, _ = run(small_split, seed=8, augment=aug, epochs=1, dropout=0.1)
    for pa, pb in zip(a.params, b.params):
        np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(a.params[0], c.params[0])


def test_keep_best_restores_best_validation_epoch(small_split):
    net, result, seen = run(small_split, seed=1, epochs=3)
    best = max(seen, key=lambda s: s.val_accuracy)
    assert result.best_epoch == best.epoch
    _, accuracy, _ = evaluate(net, small_split[2], small_split[3])
    assert accuracy == pytest.approx(best.val_accuracy)


def test_augmenter_identity_and_determinism():
    rng = np.random.default_rng(0)
    images = (rng.random((5, 28, 28)) * 255).astype(np.uint8)
    identity = Augmenter(AugmentConfig(0, 0, 0, 0, elastic_alpha=0, thickness=0))(images, rng)
    np.testing.assert_allclose(identity, images, atol=1e-3)
    aug = Augmenter(AugmentConfig(elastic_alpha=1.5))
    one = aug(images, np.random.default_rng(3))
    two = aug(images, np.random.default_rng(3))
    np.testing.assert_array_equal(one, two)
    assert one.dtype == np.float32 and one.shape == images.shape
    assert one.min() >= 0 and one.max() <= 255


def test_augmenter_shift_moves_content():
    image = np.zeros((1, 28, 28), np.uint8)
    image[0, 10:14, 10:14] = 255
    shifted = Augmenter(AugmentConfig(0, 0, 0, shift_px=3.0, elastic_alpha=0, thickness=0))(
        image, np.random.default_rng(0))
    ys, xs = np.nonzero(shifted[0] > 127)
    assert (ys.mean(), xs.mean()) != pytest.approx((11.5, 11.5), abs=0.5)
    assert shifted.sum() == pytest.approx(image.sum(dtype=float), rel=0.05)  # content kept


def test_hflip_mirrors_about_half_of_the_images():
    rng = np.random.default_rng(0)
    images = (rng.random((200, 28, 28)) * 255).astype(np.float32)
    config = AugmentConfig(0, 0, 0, 0, elastic_alpha=0, thickness=0, hflip=True)
    out = Augmenter(config)(images, np.random.default_rng(1))
    same = [np.allclose(o, i, atol=1e-2) for o, i in zip(out, images)]
    mirrored = [np.allclose(o, i[:, ::-1], atol=1e-2) for o, i in zip(out, images)]
    assert all(a != b for a, b in zip(same, mirrored))
    assert 70 < sum(mirrored) < 130


def test_thickness_augmentation_thickens_and_thins():
    image = np.zeros((2, 28, 28), np.float32)
    image[:, 8:20, 13:15] = 255.0  # a 2-px vertical stroke
    out = thicken(image, np.array([1.0, -1.0], np.float32))
    assert out[0].sum() > image[0].sum() * 1.5  # dilated: wider
    assert out[1].sum() < image[1].sum() * 0.5  # eroded: thinner
    half = thicken(image, np.array([0.5, 0.0], np.float32))
    np.testing.assert_allclose(half[0], (image[0] + out[0]) / 2)
    np.testing.assert_array_equal(half[1], image[1])


def test_temperature_scaling_recovers_known_temperature():
    rng = np.random.default_rng(0)
    true_logits = rng.standard_normal((20000, 10)) * 3
    probs = softmax(true_logits)
    y = np.array([rng.choice(10, p=p) for p in probs])
    overconfident = true_logits * 2.5  # a model that is 2.5x too sure
    T = fit_temperature(overconfident, y)
    assert T == pytest.approx(2.5, rel=0.05)
    assert nll(overconfident, y, T) < nll(overconfident, y, 1.0)
    before = expected_calibration_error(softmax(overconfident), y)
    after = expected_calibration_error(softmax(overconfident / T), y)
    assert after < 0.02 < before


def test_ece_by_hand():
    # Two bins used: confidence 0.9 (correct, correct) and 0.6 (wrong).
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6]])
    y = np.array([0, 0, 0])
    # bin 0.9: acc 1, conf 0.9 -> 2/3 * 0.1; bin 0.6: acc 0, conf 0.6 -> 1/3 * 0.6
    assert expected_calibration_error(probs, y) == pytest.approx(2 / 3 * 0.1 + 1 / 3 * 0.6)


def run_cnn(split, seed, epochs=2, average=0.0):
    tri, trl, vai, val = split
    net = Network((1, 28, 28), cnn_layers(10, filters=(8, 16), kernels=(5, 3), dense=32, dropout=0.1),
                  np.random.default_rng(seed))
    config = TrainConfig(epochs=epochs, batch_size=50, lr=3e-3, schedule="onecycle",
                         augment=AugmentConfig(rotate_deg=8, shift_px=1.5, elastic_alpha=0, coarse=0.1),
                         average=average, seed=seed)
    result = train(net, tri, trl, vai, val, config)
    return net, result


def test_short_seeded_cnn_run_learns_and_is_reproducible(small_split):
    a, result = run_cnn(small_split, seed=3)
    _, accuracy, _ = evaluate(a, small_split[2], small_split[3])
    assert accuracy >= 0.85, accuracy
    assert result.history[-1].train_loss < result.history[0].train_loss
    b, _ = run_cnn(small_split, seed=3)
    for x, y in zip(a.arrays().values(), b.arrays().values()):  # weights and running statistics
        np.testing.assert_array_equal(x, y)
    c, _ = run_cnn(small_split, seed=4)
    assert not np.array_equal(a.params[0], c.params[0])


def test_weight_average_is_what_gets_evaluated_and_kept(small_split):
    net, result = run_cnn(small_split, seed=5, epochs=2, average=0.9)
    _, accuracy, _ = evaluate(net, small_split[2], small_split[3])
    best = max(result.history, key=lambda s: s.val_accuracy)
    assert accuracy == pytest.approx(best.val_accuracy)  # the averaged weights of the best epoch
    assert accuracy >= 0.8
