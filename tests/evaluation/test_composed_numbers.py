"""Composed numbers for judging /v1/read: composition, every kind of upload, the report's arithmetic."""

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from evaluation.composed import KINDS, compose, make_set, photo, render
from evaluation.numbers import evaluate
from model.data import load_dataset

from conftest import SHARED_DATASETS


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("mnist", SHARED_DATASETS, download=False)
    return ds.train_images[:500], ds.train_labels[:500]


def columns_with_ink(ink: np.ndarray) -> np.ndarray:
    return ink.max(axis=0) > 0.2


def runs(mask: np.ndarray) -> int:
    return int(np.count_nonzero(np.diff(mask.astype(int)) == 1) + mask[0])


def test_compose_writes_the_digits_in_order_with_gaps_or_touching(digits):
    images, labels = digits
    rng = np.random.default_rng(0)
    apart = compose([images[i] for i in range(4)], [labels[i] for i in range(4)], rng, touching=False)
    assert apart.text == "".join(str(v) for v in labels[:4]) and not apart.touching
    assert apart.ink.dtype == np.float32 and 0 <= apart.ink.min() and apart.ink.max() <= 1
    assert runs(columns_with_ink(apart.ink)) >= 4  # gaps between the digits (a digit may split too)
    touching = compose([images[i] for i in range(4)], [labels[i] for i in range(4)], rng, touching=True)
    assert touching.touching and runs(columns_with_ink(touching.ink)) < runs(columns_with_ink(apart.ink))


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_a_legible_upload(digits, kind):
    images, labels = digits
    rng = np.random.default_rng(1)
    number = compose([images[i] for i in range(3)], [labels[i] for i in range(3)], rng)
    data = render(number, kind, rng)
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    assert image.width > image.height  # a line of digits, upright
    assert len(data) < 2_000_000


def test_a_sized_photo_has_that_size(digits):
    images, labels = digits
    rng = np.random.default_rng(2)
    number = compose([images[i] for i in range(4)], [labels[i] for i in range(4)], rng)
    assert Image.open(io.BytesIO(photo(number, rng, size=(1155, 866)))).size == (1155, 866)


def test_make_set_is_deterministic_and_evaluate_counts(digits):
    images, labels = digits
    a, b = make_set(images, labels, 8, seed=3), make_set(images, labels, 8, seed=3)
    assert [x[:3] for x in a] == [x[:3] for x in b] and all(x[3] == y[3] for x, y in zip(a, b))
    assert {kind for _, _, kind, _ in a} == set(KINDS) and all(2 <= len(t) <= 6 for t, *_ in a)
    truth = {data: text for text, _, _, data in a}
    wrong_first = a[0][3]
    r = evaluate(lambda data: None if data == wrong_first else truth[data], a)
    assert r["n"] == 8 and r["exact"] == pytest.approx(7 / 8)
    assert r["per_digit"] == pytest.approx(1 - len(a[0][0]) / sum(len(t) for t, *_ in a))
    assert r["errors"][0]["truth"] == a[0][0] and r["errors"][0]["read"] is None
