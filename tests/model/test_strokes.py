"""Stroke-drawn digits, edits of MNIST digits and the capture-style augmentations.

Every kind is checked for range and form, and drawn into a contact sheet under
``tests/out/contact-sheets/`` (one row per label) so a person can see that each
still reads as its label; the bundled model must read most of each kind.
"""

from dataclasses import replace

import numpy as np
import pytest

from model.augment import STYLE, AugmentConfig, Augmenter, coarsen, cut_off
from model.data import load_dataset, scale_pixels
from model.mnistform import CENTRE, centre, fit_box, to_mnist_form
from model.strokes import ALLOGRAPHS, ALLOGRAPH_NAMES, draw, edit_mnist, extend_training_set, synthesize

from conftest import SHARED_DATASETS, bundled_model, write_sheet

def mass_centre(digit: np.ndarray) -> tuple[float, float]:
    ys, xs = np.mgrid[0:28, 0:28]
    mass = digit.sum(dtype=np.float64)
    return float((ys * digit).sum() / mass), float((xs * digit).sum() / mass)


def in_mnist_form(digit: np.ndarray) -> bool:
    rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
    longest = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
    cy, cx = mass_centre(digit.astype(np.float64))
    return 19 <= longest <= 22 and abs(cy - CENTRE) <= 1.0 and abs(cx - CENTRE) <= 1.0


@pytest.fixture(scope="module")
def mnist_test():
    ds = load_dataset("mnist", SHARED_DATASETS, download=False)
    return ds.test_images, ds.test_labels


def read_share(images: np.ndarray, labels: np.ndarray) -> float:
    probs, _ = bundled_model().predictor(scale_pixels(np.clip(images, 0, 255).astype(np.uint8)))
    return float((probs.argmax(axis=1) == labels).mean())


def test_mnist_form_puts_any_ink_in_a_20_px_box_centred_by_mass():
    ink = np.zeros((90, 40))
    ink[10:80, 15:22] = 255.0  # a tall bar, far off-centre
    digit = to_mnist_form(ink)
    assert digit.dtype == np.uint8 and digit.shape == (28, 28) and in_mnist_form(digit)
    assert fit_box(np.ones((5, 50))).shape == (2, 20)
    assert mass_centre(centre(np.full((6, 6), 200.0)).astype(float)) == pytest.approx((14.0, 14.0), abs=0.5)
    with pytest.raises(ValueError, match="no ink"):
        to_mnist_form(np.zeros((5, 5)))


@pytest.mark.parametrize("allograph", ALLOGRAPH_NAMES)
def test_each_allograph_draws_a_digit_in_mnist_form(allograph):
    label = int(allograph[0])
    rng = np.random.default_rng(sum(map(ord, allograph)))
    images = np.stack([draw(label, rng, allograph) for _ in range(60)])
    assert images.dtype == np.uint8 and images.shape == (60, 28, 28)
    assert all(in_mnist_form(im) for im in images)
    assert (images.max(axis=(1, 2)) >= 150).all()  # strokes reach (near) full ink; a 1.3 px pen straddles pixels
    write_sheet(f"strokes-{allograph}", images, np.full(60, label))
    # A 1 with a long flag shades into a 7 (the steepest flags are drawn, but a hand's
    # slant flattens some): three in four is the bar there, four in five elsewhere.
    assert read_share(images, np.full(60, label)) >= (0.75 if allograph == "1/long_flag" else 0.8), allograph


def test_drawing_is_deterministic_and_balanced():
    a, la = synthesize(40, np.random.default_rng(5))
    b, lb = synthesize(40, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    assert np.bincount(la, minlength=10).tolist() == [4] * 10
    assert set(ALLOGRAPHS) == set(range(10))


def test_continental_edits_of_mnist_digits(mnist_test):
    images, labels = mnist_test
    pick = np.flatnonzero(np.isin(labels, (1, 7)))[:60]
    edited = edit_mnist(images[pick], labels[pick], np.random.default_rng(0))
    changed = [not np.array_equal(a, b) for a, b in zip(edited, images[pick])]
    assert sum(changed) >= 55  # nearly all of them got a flag, foot or crossbar
    assert all(in_mnist_form(im) for im in edited)
    # A flag widens a 1: its ink's box is wider than the original's.
    ones = labels[pick] == 1
    widths = [np.ptp(np.flatnonzero(im.any(axis=0))) for im in edited[ones]]
    before = [np.ptp(np.flatnonzero(im.any(axis=0))) for im in images[pick][ones]]
    assert np.mean(widths) > np.mean(before) + 2
    write_sheet("edits-1-and-7", edited, labels[pick])
    assert read_share(edited, labels[pick]) >= 0.9
    others = np.flatnonzero(labels == 3)[:5]
    np.testing.assert_array_equal(edit_mnist(images[others], labels[others], np.random.default_rng(0)),
                                  images[others])


def test_extended_training_set_adds_what_it_says(mnist_test):
    images, labels = mnist_test[0][:500], mnist_test[1][:500]
    out, out_labels, counts = extend_training_set(images, labels, 30, 0.5, np.random.default_rng(1))
    assert counts["mnist"] == 500 and counts["synthetic"] == 30
    assert 0 < counts["edited"] <= np.isin(labels, (1, 7)).sum()
    assert len(out) == len(out_labels) == 500 + 30 + counts["edited"]
    np.testing.assert_array_equal(out[:500], images)


AUGMENT_KINDS = {
    "style": STYLE,
    "coarse": replace(STYLE, coarse=1.0, cut=0.0),
    "cut": replace(STYLE, cut=1.0, coarse=0.0),
    "flat-nib": replace(STYLE, nib=1.0, thickness=1.0, coarse=0.0, cut=0.0),
    "narrow": AugmentConfig(0, 0, 0, 0, elastic_alpha=0, thickness=0, aspect=0.6),
    "slant": AugmentConfig(0, 0, shear=0.4, shift_px=0, elastic_alpha=0, thickness=0),
}


@pytest.mark.parametrize("kind", sorted(AUGMENT_KINDS))
def test_each_augmentation_kind_keeps_range_and_label(kind, mnist_test):
    images, labels = mnist_test[0][:240], mnist_test[1][:240]
    out = Augmenter(AUGMENT_KINDS[kind])(images, np.random.default_rng(3))
    assert out.dtype == np.float32 and out.shape == images.shape
    assert out.min() >= 0.0 and out.max() <= 255.0 + 1e-3
    assert np.isfinite(out).all()
    write_sheet(f"augment-{kind}", out, labels)
    assert read_share(out, labels) >= 0.93, kind


def test_coarse_capture_is_blurred_or_blocky_and_cut_removes_one_side(mnist_test):
    digit = mnist_test[0][0].astype(np.float32)
    smooth, blocky = coarsen(digit, 8, False), coarsen(digit, 8, True)
    assert smooth.max() == pytest.approx(255.0) and blocky.max() == pytest.approx(255.0)
    # Blocky: neighbouring pixels repeat (runs of about 28/11 pixels); smooth: they rarely do.
    assert (np.diff(blocky, axis=1) == 0).mean() > (np.diff(smooth, axis=1) == 0).mean() + 0.1
    cut = cut_off(digit, 0, 0.12)
    assert in_mnist_form(cut.astype(np.uint8)) and not np.array_equal(cut, digit)


def test_style_augmentation_is_deterministic():
    images = (np.random.default_rng(0).random((16, 28, 28)) * 255).astype(np.uint8)
    a = Augmenter(STYLE)(images, np.random.default_rng(9))
    b = Augmenter(STYLE)(images, np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)
