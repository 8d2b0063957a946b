"""Digits against not-digits: the families' images, the set as uploads, the report's arithmetic."""

import numpy as np
import pytest
from PIL import Image

from evaluation.notdigits import FAMILIES, Collected, collect, notdigit_images, report, summary_lines
from model.data import load_dataset
from model.ood import Verdicts

from conftest import SHARED_DATASETS, bundled_model, write_sheet


@pytest.fixture(scope="module")
def tests_splits():
    mnist = load_dataset("mnist", SHARED_DATASETS, download=False)
    fashion = load_dataset("fashion-mnist", SHARED_DATASETS, download=False)
    return mnist.test_images, mnist.test_labels, fashion.test_images


def test_every_family_gives_square_white_on_black_images(tests_splits):
    sheet, rows = [], []
    for row, family in enumerate(FAMILIES):
        images = notdigit_images(family, 12, 0, tests_splits[2], tests_splits[0])
        assert len(images) == 12, family
        for image in images:
            assert image.dtype == np.uint8 and image.ndim == 2 and image.shape[0] == image.shape[1] >= 28
            assert image.max() >= 128, family
            sheet.append(np.asarray(Image.fromarray(image).resize((28, 28))))
            rows.append(row)
    write_sheet("notdigits-evaluation", np.stack(sheet), np.array(rows))
    again = notdigit_images("doodles", 12, 0)
    assert all(np.array_equal(a, b) for a, b in zip(again, notdigit_images("doodles", 12, 0)))
    with pytest.raises(KeyError):
        notdigit_images("weather", 1)


def test_families_needing_data_are_empty_without_it():
    assert notdigit_images("clothing", 5) == [] and notdigit_images("numbers", 5) == []


def test_report_counts_verdicts_refusals_and_aurocs():
    # A fake predictor: the score is the image's mean brightness, the class its first pixel.
    def predict(X):
        probs = np.full((len(X), 10), 0.01, np.float32)
        probs[np.arange(len(X)), (X[:, 0] * 9).round().astype(int)] = 0.91
        return probs, X.mean(axis=1)

    bright = np.full((4, 28, 28), 200, np.uint8)
    bright[:, 0, 0] = 0  # class 0
    dark = np.full((3, 28, 28), 20, np.uint8)
    c = Collected(digits={"mnist": (bright, np.array([0, 0, 0, 1])), "other": (bright[:2], np.array([0, 0]))},
                  notdigits={"noise": dark}, refused={"mnist": 1, "other": 0, "noise": 1},
                  sent={"mnist": 5, "other": 2, "noise": 4})
    r = report(predict, c, Verdicts(not_a_digit_below=0.5, uncertain_below=0.9))
    # The refused digit scores lowest: below the dark images, tied with the refused not-digit.
    assert r["auroc"] == pytest.approx((6 * 4 + 0.5) / (7 * 4))
    assert r["false_reject_mnist"] == pytest.approx(1 / 5) and r["false_reject_other"] == 0
    assert r["notdigits_answered_digit"] == 0
    assert r["accuracy_when_digit_other"] == 1.0 and r["by_group"]["mnist"]["right_when_digit"] == 3
    assert "AUROC" in summary_lines(r)[0]
    strict = report(predict, c, Verdicts(not_a_digit_below=0.0, uncertain_below=0.95))
    assert strict["answered_digit_other"] == 0 and strict["by_group"]["noise"]["answered_uncertain"] == 0.75


def test_the_bundled_model_tells_digits_from_not_digits_as_uploads(tests_splits):
    loaded = bundled_model()
    c = collect(tests_splits[0], tests_splits[1], tests_splits[2], per_kind=1, sources=("pyclustering",))
    assert set(c.notdigits) == set(FAMILIES) and set(c.digits) == {"mnist", "pyclustering"}
    r = report(loaded.predictor, c, Verdicts(**loaded.metadata.ood.thresholds.model_dump()))
    assert r["auroc"] > 0.95
    assert r["false_reject_mnist"] <= 0.1 and r["notdigits_answered_digit"] < 0.25
