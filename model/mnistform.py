"""MNIST's form of a digit, and the two steps that put ink into it.

MNIST digits are white ink on black, scaled so the longer side of the ink's
box is ``BOX`` (20) pixels, keeping the aspect ratio, and placed in a
``FIELD`` x ``FIELD`` (28x28) image with their centre of mass at pixel
(``CENTRE``, ``CENTRE``). Synthetic training digits (``strokes.py``) and
uploads (the service's preprocessing) are brought into this form by the same
functions, so what the network trains on and what it serves look alike:

    fit_box(ink)   -> the ink scaled so its longer side is BOX pixels
    centre(digit)  -> uint8 FIELD x FIELD, centre of mass at (CENTRE, CENTRE)

NumPy only.
"""

from __future__ import annotations

import functools

import numpy as np

from .data import INPUT_SHAPE

__all__ = ["BOX", "CENTRE", "FIELD", "area_average", "centre", "fit_box", "linear_resize", "to_mnist_form"]

BOX = 20  # MNIST fits the digit in a 20x20 box...
FIELD = INPUT_SHAPE[0]  # ...inside a 28x28 field
CENTRE = 14.0  # where MNIST's centres of mass sit (measured: 13.99, 14.01)

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
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    rows = area_average(h, new_h) if new_h <= h else linear_resize(h, new_h)
    cols = area_average(w, new_w) if new_w <= w else linear_resize(w, new_w)
    return rows @ ink.astype(np.float32, copy=False) @ cols.T


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
