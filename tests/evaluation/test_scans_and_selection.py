"""Scanner styles of evaluation digits, and choosing a recipe by leaving one source out."""

from dataclasses import replace

import numpy as np
import pytest

from evaluation.scans import STYLES, restyle
from evaluation.selection import BEFORE, CANDIDATES, choose, recipe_of
from model.augment import STYLE
from model.recipes import RECIPES


def _a_one() -> np.ndarray:
    digit = np.zeros((40, 40), np.uint8)
    digit[6:34, 18:22] = 255  # a tall thin stroke: a 1
    return digit


@pytest.mark.parametrize("style", list(STYLES))
def test_every_style_gives_a_framed_white_on_black_digit(style):
    out = restyle(_a_one(), style)
    assert out.dtype == np.uint8 and out.ndim == 2 and out.shape[0] == out.shape[1] >= 8
    assert out.max() >= 200 and out[0].max() == 0 and out[:, 0].max() == 0  # ink inside a black frame


def test_filled_cells_stretch_a_one_into_a_slab_and_bits_have_two_levels():
    filled = restyle(_a_one(), "fill16")
    ink = filled > 24
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    assert abs(len(rows) - len(cols)) <= 1  # as wide as it is tall
    tall = restyle(_a_one(), "tall") > 24
    assert tall.any(axis=0).sum() < tall.any(axis=1).sum()
    assert set(np.unique(restyle(_a_one(), "fill16_bits"))) <= {0, 255}
    big = restyle(_a_one(), "bits16_big")
    assert set(np.unique(big)) <= {0, 255} and big.shape[0] > 40


def test_leaving_one_source_out_chooses_by_the_other_sources():
    def result(**figures):
        return {"sources": {s: {"accuracy": a} for s, a in figures.items()}}

    results = {"base": result(a=0.90, b=0.80, c=0.70),
               "fits_a": result(a=0.99, b=0.79, c=0.69),  # best only where it was chosen
               "general": result(a=0.92, b=0.83, c=0.72)}
    folds = {f["held_out"]: f for f in choose(results)}
    assert {k: f["chosen"] for k, f in folds.items()} == {"a": "general", "b": "fits_a", "c": "fits_a"}
    # fits_a wins the folds that can see source a, and loses to the baseline where it is judged:
    assert folds["b"]["chosen_accuracy"] == 0.79 < folds["b"]["baseline_accuracy"] == 0.80
    assert folds["a"]["chosen_accuracy"] == 0.92 > folds["a"]["baseline_accuracy"] == 0.90


def test_candidates_are_the_cnn_recipe_with_named_changes():
    assert recipe_of("base", 3) == replace(BEFORE, epochs=3)
    assert BEFORE.augment == STYLE and BEFORE.fragments == 0
    scanned = recipe_of("scanned", 6)
    assert scanned.augment.fill == 0.15 and scanned.augment.rotate_deg == STYLE.rotate_deg
    # the bundled recipe is the candidate chosen, with fragments
    chosen = replace(recipe_of("scanned_more", RECIPES["cnn"].epochs), fragments=1500)
    assert chosen == RECIPES["cnn"]
    assert set(CANDIDATES) >= {"base", "scanned"}
