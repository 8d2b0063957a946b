"""The generic image kernels (imaging/kernels.py), each against a plain reference."""

from collections import deque

import numpy as np
import pytest
from PIL import Image

from imaging.kernels import (area_average, border, extent, image_of, label_components, median3, noise_level,
                             otsu, pixels, quantiles, smoothing_resampler, stroke_width, subsample,
                             window_filter)


def bfs_components(mask: np.ndarray) -> list[set]:
    """The textbook 8-connected components, as sets of (y, x)."""
    seen, out = set(), []
    h, w = mask.shape
    for start in zip(*np.nonzero(mask)):
        if start in seen:
            continue
        part, todo = set(), deque([start])
        seen.add(start)
        while todo:
            y, x = todo.popleft()
            part.add((y, x))
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    n = (y + dy, x + dx)
                    if 0 <= n[0] < h and 0 <= n[1] < w and mask[n] and n not in seen:
                        seen.add(n)
                        todo.append(n)
        out.append(part)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_component_labels_match_a_breadth_first_search(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((23, 31)) < 0.35
    mask[5, :] = True  # one long component across the image
    labels = label_components(mask)
    assert (labels > 0).tolist() == mask.tolist()
    found = {}
    for y, x in zip(*np.nonzero(labels)):
        found.setdefault(labels[y, x], set()).add((y, x))
    assert sorted(map(sorted, found.values())) == sorted(map(sorted, bfs_components(mask)))


def test_window_filters_match_the_brute_force_min_and_max():
    rng = np.random.default_rng(1)
    image = rng.random((12, 15)).astype(np.float32)
    for size in (3, 5):
        r = size // 2
        padded_max = np.pad(image, r, mode="edge")
        expected = np.array([[padded_max[y:y + size, x:x + size].max() for x in range(15)] for y in range(12)])
        np.testing.assert_array_equal(window_filter(image, np.maximum, size), expected)
        expected = np.array([[padded_max[y:y + size, x:x + size].min() for x in range(15)] for y in range(12)])
        np.testing.assert_array_equal(window_filter(image, np.minimum, size), expected)


def test_median3_matches_the_brute_force_median():
    rng = np.random.default_rng(2)
    image = rng.random((9, 11)).astype(np.float32)
    padded = np.pad(image, 1, mode="edge")
    expected = np.array([[np.median(padded[y:y + 3, x:x + 3]) for x in range(11)] for y in range(9)])
    np.testing.assert_allclose(median3(image), expected)


def test_otsu_splits_two_levels_and_quantiles_are_nearest_rank():
    values = np.concatenate([np.full(900, 30.0), np.full(100, 200.0)]).reshape(20, 50)
    assert 30 < otsu(values) < 200
    data = np.arange(101, dtype=np.float32)
    assert quantiles(data, 0.0, 0.5, 0.9, 1.0) == [0.0, 50.0, 90.0, 100.0]
    noisy = np.random.default_rng(3).normal(100, 5, (60, 60))
    assert noise_level(noisy) == pytest.approx(5.0, rel=0.1)  # the sigma of Gaussian noise


def test_frame_extent_and_subsample():
    image = np.zeros((50, 100))
    assert border(image).size == 2 * 2 * 100 + 2 * (50 - 4) * 4  # 2 rows and 4 columns a side
    mask = np.zeros((6, 7), bool)
    mask[2:4, 1:5] = True
    rows, cols = extent(mask)
    assert rows.tolist() == [2, 3] and cols.tolist() == [1, 2, 3, 4]
    big = np.arange(200 * 100).reshape(200, 100)
    assert subsample(big).shape == (100, 50) and subsample(big[:10, :10]).shape == (10, 10)


@pytest.mark.parametrize("width", [2, 4, 7])
def test_stroke_width_of_a_bar(width):
    mask = np.zeros((100, 60), bool)
    mask[10:90, 20:20 + width] = True
    assert stroke_width(mask) == pytest.approx(width, rel=0.1)


def test_resamplers_average_and_interpolate():
    down = area_average(10, 4)
    np.testing.assert_allclose(down.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(down @ np.full(10, 7.0), 7.0, rtol=1e-6)
    down, up = smoothing_resampler(40, 8)
    assert down.shape == (8, 40) and up.shape == (40, 8)
    np.testing.assert_allclose(up @ (down @ np.full(40, 3.0)), 3.0, rtol=1e-5)  # a flat level survives


def test_pixels_and_images_share_memory_both_ways():
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    image = image_of(values)
    assert image.mode == "F" and image.size == (4, 3)
    np.testing.assert_array_equal(pixels(image), values)
    gray = Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4))
    assert pixels(gray, np.uint8).tolist() == np.arange(12).reshape(3, 4).tolist()
