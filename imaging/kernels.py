"""Generic image kernels for the preprocessing pipeline: NumPy arrays and Pillow images.

Nothing here knows about digits or uploads; ``preprocessing.py`` composes
these into its pipeline. Each kernel is small, documented with its cost where
that drove the choice, and tested on its own (tests/service/test_imaging.py).

    pixels / image_of            Pillow "L"/"F" images <-> read-only NumPy arrays, without copies
    border, subsample            the frame of an image; every other pixel of a large one
    quantiles, noise_level       nearest-rank quantiles; a robust sigma of pixel noise
    otsu                         Otsu's threshold over a 256-level histogram
    window_filter, median3       separable min/max over a square window; a 3x3 median
    smoothing_resampler          area-average onto a coarse grid and interpolate back
    label_components             8-connected component labels by pointer jumping
    extent, stroke_width         the rows and columns holding ink; mean stroke width
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

from model.mnistform import area_average, stroke_width, window_filter  # shared with training

__all__ = ["area_average", "border", "extent", "image_of", "label_components", "median3", "noise_level",
           "otsu", "pixels", "quantiles", "smoothing_resampler", "stroke_width", "subsample", "window_filter"]

SAMPLE_ABOVE = 8192  # image-wide statistics use a quarter of the pixels of larger images
_LEVELS = np.arange(256, dtype=np.int64)


def pixels(image: Image.Image, dtype=np.float32) -> np.ndarray:
    """Return the pixels of an "L" (uint8) or "F" (float32) image as a read-only array.

    ``np.frombuffer`` over ``tobytes()``: a fraction of the cost of
    ``np.asarray``'s array-interface round trip on the small images here.
    """
    width, height = image.size
    return np.frombuffer(image.tobytes(), dtype).reshape(height, width)


def image_of(values: np.ndarray, mode: str = "F") -> Image.Image:
    """Return a 2-D array as an "F" (float32) or "L" (uint8) image sharing its
    memory (no copy when it already has that dtype and is contiguous)."""
    values = np.ascontiguousarray(values, dtype=np.float32 if mode == "F" else np.uint8)
    return Image.frombuffer(mode, values.shape[::-1], values, "raw", mode, 0, 1)


def border(gray: np.ndarray) -> np.ndarray:
    """Return the pixels of the outer frame (about 4% of each side, at least 1 px)."""
    h, w = gray.shape
    by, bx = max(1, h // 25), max(1, w // 25)
    return np.concatenate([gray[:by].ravel(), gray[-by:].ravel(),
                           gray[by:-by, :bx].ravel(), gray[by:-by, -bx:].ravel()])


def subsample(values: np.ndarray) -> np.ndarray:
    """Return every other row and column of a large image, for statistics over its
    pixels (histograms cost about 2 ns a pixel; a quarter of them is plenty)."""
    return values[::2, ::2] if values.size > SAMPLE_ABOVE else values


def quantiles(values: np.ndarray, *qs: float) -> list[float]:
    """Return nearest-rank quantiles (q in [0, 1]); np.partition is much cheaper
    than np.percentile on the small arrays here."""
    flat = values.ravel()
    ks = [min(flat.size - 1, max(0, int(round(q * (flat.size - 1))))) for q in qs]
    part = np.partition(flat, ks)
    return [float(part[k]) for k in ks]


def noise_level(values: np.ndarray) -> float:
    """Return a robust estimate of pixel noise: the median absolute difference of
    neighbours (slow shading cancels out), scaled to a Gaussian sigma."""
    return quantiles(np.abs(np.diff(values)), 0.5)[0] / 0.954


def otsu(values: np.ndarray) -> float:
    """Return Otsu's threshold of values in [0, 255] (maximises between-class variance).

    With cumulative counts w0 and sums m0 below each level, the between-class
    variance is proportional to (M * w0 - W * m0)^2 / (w0 * (W - w0)).
    """
    hist = np.bincount(subsample(values).astype(np.uint8).ravel(), minlength=256)  # values are in [0, 255]
    w0 = hist.cumsum()
    m0 = (hist * _LEVELS).cumsum()
    total_w, total_m = int(w0[-1]), int(m0[-1])
    numerator = (total_m * w0 - total_w * m0).astype(np.float64) ** 2
    denominator = (w0 * (total_w - w0)).astype(np.float64)
    between = np.divide(numerator, denominator, out=np.zeros(256), where=denominator > 0)
    return float(between.argmax()) + 0.5


def median3(image: np.ndarray) -> np.ndarray:
    """Return the 3x3 median filter of ``image`` (edges repeated)."""
    h, w = image.shape
    padded = np.pad(image, 1, mode="edge")
    stack = np.stack([padded[y:y + h, x:x + w] for y in range(3) for x in range(3)])
    return np.partition(stack, 4, axis=0)[4]


@functools.lru_cache(maxsize=256)
def smoothing_resampler(n: int, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (down, up): float32 matrices that area-average ``n`` samples onto
    ``cells`` (at least 2) and interpolate back, linearly between cell centres
    (clamped at the ends) after a [1, 2, 1] smoothing across cells (edges
    renormalised)."""
    position = np.clip((np.arange(n) + 0.5) * cells / n - 0.5, 0.0, cells - 1)
    below = np.minimum(position.astype(int), cells - 2)
    frac = position - below
    interp = np.zeros((n, cells))
    interp[np.arange(n), below] = 1.0 - frac
    interp[np.arange(n), below + 1] += frac
    smooth = 2.0 * np.eye(cells) + np.eye(cells, k=1) + np.eye(cells, k=-1)
    smooth /= smooth.sum(axis=1, keepdims=True)
    return area_average(n, cells), (interp @ smooth).astype(np.float32)


def label_components(mask: np.ndarray) -> np.ndarray:
    """Return 8-connected component labels of a boolean mask (0 = background).

    Every pixel starts labelled with its own index and repeatedly takes the
    smallest label in its 3x3 neighbourhood; after each step, labels jump to
    their label's label (pointer jumping), so a component converges in a
    handful of vectorised steps rather than one step per pixel of its length.
    The label of a component is 1 + the flat index of its first pixel.
    """
    h, w = mask.shape
    big = h * w
    labels = np.where(mask, np.arange(big).reshape(h, w), big)  # intp: indexes without a cast
    background = np.where(mask, 0, big)  # max() with it resets the background
    padded = np.full((h + 2, w + 2), big)
    lookup = np.empty(big + 1, dtype=labels.dtype)
    lookup[big] = big
    minimum = np.minimum
    for _ in range(big):
        padded[1:-1, 1:-1] = labels
        rows = minimum(minimum(padded[:-2], padded[1:-1]), padded[2:])
        new = minimum(minimum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])  # the 3x3 minimum
        np.maximum(new, background, out=new)
        for _ in range(2):
            lookup[:big] = new.ravel()
            new = lookup[new]
        if (new == labels).all():
            break
        labels = new
    return np.where(mask, labels + 1, 0)


def extent(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the indices of the rows and of the columns of ``mask`` that hold a True."""
    return np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
