"""Composed numbers: touching pairs of every style really touch, and the report tells
segmentation errors from recognition errors, per kind of upload and per touch style."""

import json

import numpy as np
import pytest

from evaluation.composed import INK_LEVEL, TOUCH_STYLES, Case, compose, make_set
from evaluation.numbers import evaluate, main, run, tables
from imaging.kernels import label_components
from model.data import load_dataset

from conftest import SHARED_DATASETS


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("mnist", SHARED_DATASETS, download=False)
    return ds.train_images[:300], ds.train_labels[:300]


def pieces_of_ink(ink: np.ndarray) -> int:
    return int(np.unique(label_components(ink >= INK_LEVEL)).size - 1)


def test_every_touch_style_joins_the_pair(digits):
    images, labels = digits
    seen = set()
    for seed in range(200):
        i, j = 2 * seed % 300, (2 * seed + 1) % 300
        apart = compose([images[i], images[j]], [labels[i], labels[j]], np.random.default_rng(seed), touching=False)
        touching = compose([images[i], images[j]], [labels[i], labels[j]], np.random.default_rng(seed),
                           touching=True)
        assert touching.touching and touching.touch in TOUCH_STYLES and touching.text == apart.text
        # One piece of ink fewer at least: the pair meets (a slanted line may join more).
        assert pieces_of_ink(touching.ink) < pieces_of_ink(apart.ink), (seed, touching.touch)
        seen.add(touching.touch)
        if seen == set(TOUCH_STYLES):
            break
    assert seen == set(TOUCH_STYLES)


def test_numbers_whose_digits_do_not_touch_are_drawn_as_before(digits):
    """The same random draws as before touch styles: a non-touching number depends on its seed only."""
    images, labels = digits
    a = compose([images[k] for k in range(4)], [labels[k] for k in range(4)], np.random.default_rng(7), False)
    b = compose([images[k] for k in range(4)], [labels[k] for k in range(4)], np.random.default_rng(7), False)
    assert a.touch == "" and not a.touching and np.array_equal(a.ink, b.ink)


def test_make_set_marks_the_touch_style_and_honours_the_share(digits):
    images, labels = digits
    cases = make_set(images, labels, 24, seed=5, touching_share=0.5)
    assert all(isinstance(c, Case) for c in cases)
    styles = [c.touching for c in cases]
    assert set(styles) - {""} <= set(TOUCH_STYLES) and 6 <= sum(bool(s) for s in styles) <= 18
    assert make_set(images, labels, 6, seed=5, touching_share=0.0)[0].touching == ""


def test_evaluate_separates_the_two_errors_refusals_and_failures():
    cases = [Case("1234", "", "photo", b"a"), Case("1234", "overlap", "photo", b"b"),
             Case("567", "", "scan", b"c"), Case("89", "stroke", "scan", b"d"),
             Case("42", "", "canvas", b"e"), Case("77", "", "canvas", b"f")]
    answers = {b"a": "1234", b"b": "134", b"c": "561", b"d": None, b"e": "42", b"f": RuntimeError}

    def reader(data):
        got = answers[data]
        if got is RuntimeError:
            raise RuntimeError("a bug")
        return got

    r = evaluate(reader, cases)
    assert r["n"] == 6 and r["exact"] == pytest.approx(2 / 6)
    assert r["segmentation"] == pytest.approx(1 / 6) and r["recognition"] == pytest.approx(1 / 6)
    assert r["refused"] == 1 and r["failed"] == 1 and r["invalid"] == 0
    assert r["touching_n"] == 2 and r["touching_exact"] == 0.0
    # per digit: 4 + 3 (matching blocks of 1234/134) + 2 + 0 + 2 + 0 of 17
    assert r["per_digit"] == pytest.approx(11 / 17)
    assert set(r["by_kind"]) == {"photo", "scan", "canvas"} and r["by_kind"]["photo"]["exact"] == 0.5
    assert r["by_kind"]["scan"]["recognition"] == 0.5 and r["by_kind"]["canvas"]["failed"] == 1
    assert set(r["by_touch"]) == {"overlap", "stroke"} and r["by_touch"]["overlap"]["segmentation"] == 1.0
    assert r["median_ms"] >= 0 and r["p90_ms"] >= r["median_ms"]
    assert {e["truth"] for e in r["errors"]} == {"1234", "567", "89", "77"}
    text = tables({"fake": r})
    assert "| fake | 6 | 33.3% | 0.0% of 2 |" in text and "| scan |" in text and "| overlap |" in text


def test_the_command_line_prints_the_development_tables(tmp_path, capsys):
    out = tmp_path / "dev.json"
    assert main(["--dev", "--n", "4", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| mnist train | 4 |" in printed and "by upload kind" in printed
    result = json.loads(out.read_text())
    assert result["mnist train"]["n"] == 4 and {"segmentation", "recognition"} <= set(result["mnist train"])


def test_run_pools_every_source_into_all(digits):
    images, labels = digits
    sets = {"a": (images[:100], labels[:100]), "b": (images[100:], labels[100:])}
    results = run(lambda data: "1", sets, 4)
    assert set(results) == {"a", "b", "all"} and results["all"]["n"] == 8
    assert results["all"]["digits"] == results["a"]["digits"] + results["b"]["digits"]
    times = sorted(results["a"]["times_ms"] + results["b"]["times_ms"])
    assert results["all"]["median_ms"] == pytest.approx((times[3] + times[4]) / 2)
    assert "| all | 8 |" in tables(results)
