"""Digits as old scanning systems stored them: stretched to fill a cell, binarised, coarse.

Real collections of handwritten digits were often normalised before anyone
saw them: each digit stretched to fill a fixed cell whatever its shape (a 1
becomes a slab as wide as a 0), stored at 16x16 or below, sometimes as one
bit per pixel. ``STYLES`` renders an evaluation digit (``handwriting``'s:
square uint8, white ink on black) the way such a system would have stored
it, at the system's own resolution, framed as ``handwriting.frame`` frames
digits, so it can be classified as drawn or rendered as any kind of upload:

    drawn        as the source gives it
    fill16       stretched to fill a 16x16 cell, gray
    fill16_bits  the same, one bit per pixel
    tall         stretched to fill a 12x16 (width x height) cell, gray
    low12        12 pixels on its longer side, aspect kept, gray
    bits16_big   16 pixels on its longer side, one bit per pixel, enlarged 4x by repeating pixels

For evaluation only, like every source it is applied to: nothing here trains
or selects a model except through ``selection``'s leave-one-source-out rule.
Pillow and NumPy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from .handwriting import frame

__all__ = ["STYLES", "restyle"]

INK = 24  # pixels above this are the digit's ink when cropping
BITS_LEVEL = 0.43  # a one-bit pixel is ink when its gray level is above this share of the brightest


def _crop(digit: np.ndarray) -> np.ndarray:
    mask = digit > INK
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float32)


def _resized(ink: np.ndarray, width: int, height: int) -> np.ndarray:
    """Return ``ink`` resized to (height, width): area averaging to shrink, bilinear to enlarge,
    then stretched so its brightest pixel is full ink."""
    h, w = ink.shape
    method = Image.Resampling.BOX if width <= w and height <= h else Image.Resampling.BILINEAR
    out = np.asarray(Image.fromarray(np.clip(ink, 0, 255).astype(np.uint8)).resize((width, height), method),
                     np.float32)
    return out * (255.0 / max(float(out.max()), 1.0))


def _bits(ink: np.ndarray) -> np.ndarray:
    return np.where(ink > BITS_LEVEL * float(ink.max()), 255.0, 0.0).astype(np.float32)


def _longer_side(ink: np.ndarray, side: int) -> np.ndarray:
    h, w = ink.shape
    scale = side / max(h, w)
    return _resized(ink, max(1, round(w * scale)), max(1, round(h * scale)))


STYLES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "drawn": lambda ink: ink,
    "fill16": lambda ink: _resized(ink, 16, 16),
    "fill16_bits": lambda ink: _bits(_resized(ink, 16, 16)),
    "tall": lambda ink: _resized(ink, 12, 16),
    "low12": lambda ink: _longer_side(ink, 12),
    "bits16_big": lambda ink: np.kron(_bits(_longer_side(ink, 16)), np.ones((4, 4), np.float32)),
}


def restyle(digit: np.ndarray, style: str) -> np.ndarray:
    """Return ``digit`` (square uint8, white on black) as ``style`` stores it, framed (square
    uint8, white on black, at the style's own resolution)."""
    if style == "drawn":
        return digit
    return frame(STYLES[style](_crop(digit)))
