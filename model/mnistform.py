"""MNIST's form of a digit, and the two steps that put ink into it.

MNIST digits are white ink on black, scaled so the longer side of the ink's
box is ``BOX`` (20) pixels, keeping the aspect ratio, and placed in a
``FIELD`` x ``FIELD`` (28x28) image with their centre of mass at pixel
(``CENTRE``, ``CENTRE``). Synthetic training digits (``strokes.py``) and
uploads (the service's preprocessing) are brought into this form by the same
functions, so what the network trains on and what it serves look alike:

    fit_box(ink)   -> the ink scaled so its longer side is BOX pixels
    centre(digit)  -> uint8 FIELD x FIELD, centre of mass at (CENTRE, CENTRE)
    even_strokes(crop, scale) -> a large drawing's strokes brought into MNIST's width range
                      (uploads are, and training's filled cells as large uploads would be)

NumPy only.
"""

from __future__ import annotations

import functools

import numpy as np

from .data import INPUT_SHAPE

__all__ = ["BOX", "CENTRE", "FIELD", "MAX_STROKE_PX", "MIN_STROKE_PX", "area_average", "centre", "even_strokes",
           "fit_box", "linear_resize", "resize", "stroke_width", "to_mnist_form", "window_filter"]

BOX = 20  # MNIST fits the digit in a 20x20 box...
FIELD = INPUT_SHAPE[0]  # ...inside a 28x28 field
CENTRE = 14.0  # where MNIST's centres of mass sit (measured: 13.99, 14.01)

# MNIST strokes are 1.2 to 2.9 px wide (5th-95th percentile at 28x28). A drawing enlarged or
# reduced by more than STROKE_CHECK_BELOW whose strokes come out of this band once scaled is
# thickened or thinned first (``even_strokes``); smaller ones keep their strokes.
MIN_STROKE_PX = 1.6
MAX_STROKE_PX = 3.2
STROKE_CHECK_BELOW = 0.5
MAX_STROKE_FILTER = 15  # the largest window (px) a stroke is grown or thinned by

_POSITIONS = np.arange(FIELD, dtype=np.float32)


@functools.lru_cache(maxsize=1024)
def area_average(n: int, cells: int) -> np.ndarray:
    """Return the float32 (cells, n) matrix that averages ``n`` samples onto ``cells``
    by overlap (what Pillow's BOX filter computes when reducing)."""
    edges = np.linspace(0.0, n, cells + 1)
    left, right = edges[:-1, None], edges[1:, None]
    pixel = np.arange(n, dtype=np.float64)[None, :]
    overlap = np.clip(np.minimum(right, pixel + 1) - np.maximum(left, pixel), 0.0, None)
    return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


@functools.lru_cache(maxsize=1024)
def linear_resize(n: int, size: int) -> np.ndarray:
    """Return the float32 (size, n) matrix of linear interpolation from ``n`` samples to
    ``size`` (pixel centres aligned, edges clamped), as Pillow's BILINEAR enlarges."""
    position = np.clip((np.arange(size) + 0.5) * n / size - 0.5, 0.0, n - 1)
    below = np.minimum(position.astype(int), max(n - 2, 0))
    frac = position - below
    out = np.zeros((size, n))
    out[np.arange(size), below] = 1.0 - frac
    if n > 1:
        out[np.arange(size), below + 1] += frac
    return out.astype(np.float32)


def fit_box(ink: np.ndarray) -> np.ndarray:
    """Return ``ink`` (2-D float, cropped to the digit) resized so its longer side is
    ``BOX`` pixels: area averaging to shrink, linear interpolation to enlarge."""
    h, w = ink.shape
    scale = BOX / max(h, w)
    return resize(ink.astype(np.float32, copy=False), max(1, round(h * scale)), max(1, round(w * scale)))


def resize(ink: np.ndarray, height: int, width: int) -> np.ndarray:
    """Return 2-D ``ink`` resized to (height, width), each axis on its own: area averaging
    to shrink, linear interpolation to enlarge (two small matrix products)."""
    h, w = ink.shape
    rows = area_average(h, height) if height <= h else linear_resize(h, height)
    cols = area_average(w, width) if width <= w else linear_resize(w, width)
    return rows @ ink @ cols.T


def centre(digit: np.ndarray) -> np.ndarray:
    """Return a 28x28 uint8 field with ``digit`` (values in [0, 255], at most 28 a side)
    placed so its centre of mass is at (14, 14), to the nearest pixel."""
    h, w = digit.shape
    rows = digit.sum(axis=1)
    mass = float(rows.sum())
    cy = float(rows @ _POSITIONS[:h]) / mass
    cx = float(digit.sum(axis=0) @ _POSITIONS[:w]) / mass
    top = min(max(round(CENTRE - cy), 0), FIELD - h)
    left = min(max(round(CENTRE - cx), 0), FIELD - w)
    field = np.zeros(INPUT_SHAPE, dtype=np.uint8)
    field[top:top + h, left:left + w] = digit + 0.5  # rounds to nearest on the cast
    return field


def to_mnist_form(ink: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Return any 2-D ink image (bright ink, values in [0, 255]) in MNIST's form:
    cropped to the pixels above ``threshold``, fitted to the box, centred.

    Raises ValueError for an image without ink.
    """
    rows = np.flatnonzero((ink > threshold).any(axis=1))
    cols = np.flatnonzero((ink > threshold).any(axis=0))
    if rows.size == 0:
        raise ValueError("no ink to put into MNIST form")
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return centre(np.clip(fit_box(crop), 0.0, 255.0))


def window_filter(image: np.ndarray, reduce, size: int) -> np.ndarray:
    """Return ``reduce`` (np.minimum or np.maximum) over a size x size window, separably.

    Windows are clipped at the edges (the same as repeating the border for a
    minimum or maximum). Far cheaper than Pillow's rank filters, which sort
    every window.
    """
    r = size // 2
    out = image
    for axis in (0, 1):
        src = out
        out = src.copy()
        for k in range(1, r + 1):
            if axis == 0:
                reduce(out[k:], src[:-k], out=out[k:])
                reduce(out[:-k], src[k:], out=out[:-k])
            else:
                reduce(out[:, k:], src[:, :-k], out=out[:, k:])
                reduce(out[:, :-k], src[:, k:], out=out[:, :-k])
    return out


def stroke_width(mask: np.ndarray) -> float:
    """Return the mean stroke width of a binary drawing, ~ 2 * area / perimeter."""
    area = float(mask.sum())
    edges = (np.count_nonzero(mask[1:] != mask[:-1]) + np.count_nonzero(mask[:, 1:] != mask[:, :-1]))
    edges += np.count_nonzero(mask[0]) + np.count_nonzero(mask[-1])
    edges += np.count_nonzero(mask[:, 0]) + np.count_nonzero(mask[:, -1])
    return 2.0 * area / max(edges, 1)


def even_strokes(crop: np.ndarray, scale: float) -> np.ndarray:
    """Return a drawing (float, full ink 255, cropped to the digit) that will be scaled by
    ``scale`` with its strokes grown or thinned into MNIST's width range, where the scaling
    is strong (below ``STROKE_CHECK_BELOW``): a fine pen on a big image would fade to a
    hairline, a marker would blot out the loops."""
    if scale >= STROKE_CHECK_BELOW:
        return crop
    width = stroke_width(crop > 127.0)
    if width * scale < MIN_STROKE_PX:
        k = int(np.ceil(MIN_STROKE_PX / scale - width)) | 1
        return window_filter(crop, np.maximum, min(max(k, 3), MAX_STROKE_FILTER))
    if width * scale > MAX_STROKE_PX:
        k = int(round(width - 0.5 * (MIN_STROKE_PX + MAX_STROKE_PX) / scale)) | 1
        return window_filter(crop, np.minimum, min(max(k, 3), MAX_STROKE_FILTER))
    return crop
