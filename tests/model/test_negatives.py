"""Training examples of "not a digit": drawn letters, symbols, doodles and scribbles; digit pairs.

Each kind is checked for range and MNIST's form and drawn into a contact
sheet under ``tests/out/contact-sheets/`` (one row per kind) so a person can
see that none of them reads as a digit.
"""

import numpy as np
import pytest

from model.data import load_dataset, scale_pixels
from model.negatives import NEGATIVE_KINDS, NEGATIVE_NAMES, digit_pairs, draw_negative, negative_set

from conftest import SHARED_DATASETS, bundled_model, write_sheet
from test_strokes import in_mnist_form


def test_every_kind_draws_an_image_in_mnists_form():
    rng = np.random.default_rng(0)
    images, rows = [], []
    for row, name in enumerate(NEGATIVE_NAMES):
        for _ in range(6):
            image = draw_negative(rng, name)
            assert image.dtype == np.uint8 and image.shape == (28, 28) and image.max() >= 200, name
            assert in_mnist_form(image), name
            images.append(image)
            rows.append(row)
    write_sheet("negatives-drawn", np.stack(images), np.array(rows), per_row=6)


def test_drawing_is_deterministic_for_a_seed_and_covers_the_kinds():
    a = [draw_negative(np.random.default_rng(1)) for _ in range(3)]
    b = [draw_negative(np.random.default_rng(1)) for _ in range(3)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    families = {name.split("/")[0] for name in NEGATIVE_KINDS}
    assert families == {"letter", "symbol", "doodle", "scribble", "hatching"}
    assert not {"letter/O", "letter/I", "letter/l", "letter/S", "letter/Z", "letter/B"} & set(NEGATIVE_KINDS)


@pytest.fixture(scope="module")
def mnist_train():
    ds = load_dataset("mnist", SHARED_DATASETS, download=False)
    return ds.train_images[:2000], ds.train_labels[:2000]


def test_digit_pairs_hold_two_digits_side_by_side(mnist_train):
    pairs = digit_pairs(mnist_train[0], 24, np.random.default_rng(2))
    write_sheet("negatives-pairs", pairs, np.zeros(24, int), per_row=24)
    for pair in pairs:
        assert in_mnist_form(pair)
        cols = np.flatnonzero(pair.any(axis=0))
        rows = np.flatnonzero(pair.any(axis=1))
        assert cols[-1] - cols[0] > rows[-1] - rows[0]  # wider than tall: two digits in a row


def test_negative_set_mixes_the_requested_counts(mnist_train):
    clothes = np.full((50, 28, 28), 7, np.uint8)
    out = negative_set(30, clothes, 20, mnist_train[0], 10, np.random.default_rng(3))
    assert out.shape == (60, 28, 28) and out.dtype == np.uint8
    assert (out == 7).all(axis=(1, 2)).sum() == 20
    assert negative_set(0, None, 5, None, 0, np.random.default_rng(3)).shape == (0, 28, 28)


def test_the_bundled_model_says_not_a_digit_to_most_drawn_negatives():
    loaded = bundled_model()
    rng = np.random.default_rng(4)
    images = scale_pixels(np.stack([draw_negative(rng) for _ in range(300)]))
    _, scores = loaded.predictor(images)
    rejected = (scores < loaded.metadata.ood.thresholds.not_a_digit_below).mean()
    assert rejected > 0.9
