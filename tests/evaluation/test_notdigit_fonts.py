"""The not-digit families drawn in fonts: only the listed fonts, each used for the characters it
has, exactly the number of images asked for whatever else is installed, and named in the report."""

import shutil

import numpy as np
import pytest

from evaluation import handwriting, notdigits
from evaluation.handwriting import draw_glyph, draws, font_paths, has_ink
from evaluation.notdigits import (BUNDLED_FONT_DIR, FAMILIES, FONT_FAMILIES, KANA, PRINT_FONTS, SYMBOLS,
                                  collect, family_fonts, glyph_pool, notdigit_images, report, summary_lines)
from model.data import load_dataset

from conftest import SHARED_DATASETS

DEJAVU = BUNDLED_FONT_DIR / "DejaVuSans.ttf"  # matplotlib's copy: on every machine


@pytest.fixture(scope="module")
def test_splits():
    mnist = load_dataset("mnist", SHARED_DATASETS, download=False)
    fashion = load_dataset("fashion-mnist", SHARED_DATASETS, download=False)
    return fashion.test_images, mnist.test_images


def _all_families(splits, n=12) -> dict[str, list[np.ndarray]]:
    return {family: notdigit_images(family, n, 0, *splits) for family in FAMILIES}


@pytest.mark.parametrize("system_fonts", ["none", "installed"])
@pytest.mark.parametrize("n", [1, 12, 40])
def test_font_families_give_exactly_the_count_asked_for(monkeypatch, system_fonts, n):
    # "none": the machine had none of the Japanese fonts, and symbols came back 8 of 12.
    if system_fonts == "none":
        monkeypatch.setattr(handwriting, "FONT_DIRS", ())
    for family in FONT_FAMILIES:
        images = notdigit_images(family, n, 3)
        assert len(images) == n, family
        assert all(im.dtype == np.uint8 and im.shape[0] == im.shape[1] >= 28 and has_ink(im) for im in images)
    if system_fonts == "none":
        assert family_fonts("letters") == list(PRINT_FONTS) and family_fonts("symbols") == ["DejaVuSans.ttf"]
        assert set(glyph_pool("symbols")) == set(SYMBOLS)  # DejaVu has no kana; symbols take their place


def test_an_extra_installed_font_changes_no_family(monkeypatch, tmp_path, test_splits):
    before = _all_families(test_splits)
    fonts_before = {family: family_fonts(family) for family in FONT_FAMILIES}
    # Searched first: a font of no list, and another font under a listed name (DejaVu Serif as
    # DejaVuSans.ttf, as a system may carry another version of a font matplotlib ships).
    (tmp_path / "handwriting").mkdir()
    shutil.copy(BUNDLED_FONT_DIR / "DejaVuSerif-Bold.ttf", tmp_path / "handwriting" / "SomeHand-Regular.ttf")
    shutil.copy(BUNDLED_FONT_DIR / "DejaVuSerif.ttf", tmp_path / "DejaVuSans.ttf")
    monkeypatch.setattr(handwriting, "FONT_DIRS", (tmp_path, *handwriting.FONT_DIRS))
    after = _all_families(test_splits)
    for family in FAMILIES:
        assert len(after[family]) == len(before[family]) == 12, family
        assert all(np.array_equal(a, b) for a, b in zip(after[family], before[family])), family
    assert {family: family_fonts(family) for family in FONT_FAMILIES} == fonts_before


def test_a_font_is_not_used_for_characters_it_lacks(monkeypatch, tmp_path):
    box = draw_glyph(DEJAVU, "あ")  # DejaVu has no kana: it draws its .notdef box, plenty of ink
    assert has_ink(box) and not draws(DEJAVU, "あ")
    assert draws(DEJAVU, "A") and not draws(DEJAVU, " ")  # a space draws nothing
    # A listed Japanese font that has the symbols but none of the kana (DejaVu under kiloji's name).
    shutil.copy(DEJAVU, tmp_path / "kiloji.ttf")
    monkeypatch.setattr(handwriting, "FONT_DIRS", (tmp_path,))
    pool = glyph_pool("symbols")
    assert set(pool) == set(SYMBOLS) and not set(KANA) & set(pool)
    assert [p.name for p in pool["+"]] == ["DejaVuSans.ttf", "kiloji.ttf"]
    assert family_fonts("symbols") == ["DejaVuSans.ttf", "kiloji.ttf"]
    assert len(notdigit_images("symbols", 30, 1)) == 30


def test_no_listed_font_gives_no_images_and_a_reason(monkeypatch, tmp_path):
    monkeypatch.setattr(notdigits, "BUNDLED_FONT_DIR", tmp_path)
    monkeypatch.setattr(handwriting, "FONT_DIRS", (tmp_path,))
    shutil.copy(DEJAVU, tmp_path / "NotListed.ttf")
    assert notdigit_images("letters", 5) == [] and family_fonts("symbols") == []
    mnist = np.zeros((4, 28, 28), np.uint8)
    mnist[:, 8:20, 12:16] = 255  # four 1s
    c = collect(mnist, np.ones(4, np.int64), None, per_kind=1, sources=(), kinds=("canvas_png",))
    assert c.fonts == {"letters": [], "symbols": []}
    assert c.unavailable["letters"] == c.unavailable["symbols"] == "no font of its list is installed"


def test_the_report_names_each_familys_fonts():
    mnist = np.zeros((4, 28, 28), np.uint8)
    mnist[:, 8:20, 12:16] = 255
    c = collect(mnist, np.ones(4, np.int64), None, per_kind=1, sources=(), kinds=("canvas_png",))
    assert c.fonts == {family: family_fonts(family) for family in FONT_FAMILIES}
    assert "DejaVuSans.ttf" in c.fonts["symbols"] and set(PRINT_FONTS) <= set(c.fonts["letters"])

    def predict(X):
        return np.full((len(X), 10), 0.1, np.float32), X.mean(axis=1)

    r = report(predict, c)
    assert r["fonts"] == c.fonts
    lines = summary_lines(r)
    assert any(line.startswith(f"symbols drawn in {len(c.fonts['symbols'])} font(s): DejaVuSans.ttf")
               for line in lines)


def test_font_paths_takes_the_first_copy_of_a_name_in_sorted_order(tmp_path):
    for folder in ("a/z", "a/b", "c"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "x.ttf").write_bytes(b"")
    (tmp_path / "c" / "y.ttf").write_bytes(b"")
    (tmp_path / "c" / "other.ttf").write_bytes(b"")
    found = font_paths(("y.ttf", "x.ttf", "missing.ttf"), (tmp_path / "a", tmp_path / "c"))
    assert found == [tmp_path / "c" / "y.ttf", tmp_path / "a" / "b" / "x.ttf"]
