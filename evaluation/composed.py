"""Whole numbers written by hand, as people would send them: the sets that judge ``/v1/read``.

``compose`` writes a number from single digit images (MNIST's, or a source of
``handwriting``): 2 to 6 digits, each rescaled to a slightly different
height, on an uneven baseline, with gaps of varying width. In about one
number in seven two neighbours touch, in one of ``TOUCH_STYLES``:

    overlap  the right digit slid left until its ink overlaps the left one's by 1-4 px
    stroke   a connecting stroke (a cursive join) from one digit to the next, 2-5 px apart
    slant    overlapping, then the whole line written at a slant: the contact is not
             vertical and the other neighbours overlap in columns without touching
    heights  one digit of the pair 65-85% as tall as the other, overlapping

(1-4 px at a digit height of ``UNIT`` = 28 px: MNIST's scale). ``render``
then makes the file a person would upload:

    canvas   a wide browser canvas: transparent with the ink in alpha, or white with dark strokes
    photo    a phone photo of the number on paper: tilted a little, shaded, JPEG; some stored
             sideways with an EXIF orientation
    scan     a grayscale scan: dark ink on light paper, a little noise and dust, PNG
    screen   white digits on black (or the reverse), enlarged, PNG

``make_set`` builds a set of uploads from digit images: the MNIST *training*
split for the development set that the reader was tuned on, the test split
and other handwriting for what is reported; ``evaluation.numbers`` reads
them and reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageFilter

from .uploads import composite, encode, paper_colour, pen_colour, rotate, to_uint8

__all__ = ["INK_LEVEL", "KINDS", "TOUCHING_SHARE", "TOUCH_STYLES", "UNIT", "Case", "Number", "compose", "make_set",
           "photo", "render"]

KINDS = ("canvas", "photo", "scan", "screen")
TOUCH_STYLES = ("overlap", "stroke", "slant", "heights")
UNIT = 28  # composed numbers are written with digits about this many pixels high
TOUCHING_SHARE = 1 / 7
INK_LEVEL = 0.35  # a composed pixel this dark or more is ink, where two digits are made to touch
OVERLAP_PX = (1, 4)  # touching digits' ink overlaps by this many pixels (at UNIT), both included
JOIN_GAP_PX = (2, 5)  # digits joined by a stroke are this far apart where they are closest
JOIN_WIDTH_PX = (1.8, 3.0)  # ...and the stroke is this wide (MNIST's strokes: about 2-3 px)
SLANT = (0.15, 0.35)  # a slanted line shifts its tops by this share of their height
SMALLER = (0.65, 0.85)  # the smaller digit of a pair of unequal heights, against the other
MAX_TUCK = 0.25  # a touching digit's box reaches at most this share of the narrower's width into the other's


@dataclass(frozen=True)
class Number:
    """One composed number: its ink (float32, 0..1, bright on dark), text, whether two digits
    touch and how (``TOUCH_STYLES``; "" when none do)."""

    ink: np.ndarray
    text: str
    touching: bool
    touch: str = ""


class Case(NamedTuple):
    """One upload of a set: the number's text, its touch style ("" when no digits touch: the
    field reads as whether they do), the kind of upload and the file."""

    text: str
    touching: str
    kind: str
    data: bytes


def _ink_of(digit: np.ndarray) -> np.ndarray:
    """Return a digit image's ink, cropped to it, as float32 in [0, 1]."""
    rows, cols = np.flatnonzero(digit.max(axis=1) > 20), np.flatnonzero(digit.max(axis=0) > 20)
    return digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float32) / 255.0


def _resized(ink: np.ndarray, height: float) -> np.ndarray:
    """Return ``ink`` resized to ``height`` pixels, keeping its proportions."""
    w = max(2, round(ink.shape[1] * height / ink.shape[0]))
    return np.asarray(Image.fromarray(ink).resize((w, round(height)), Image.Resampling.BILINEAR), np.float32)


def _profiles(part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return each row's first and last ink column (-1 where a row has no ink)."""
    ink = part >= INK_LEVEL
    has = ink.any(axis=1)
    first = np.where(has, ink.argmax(axis=1), -1)
    last = np.where(has, part.shape[1] - 1 - ink[:, ::-1].argmax(axis=1), -1)
    return first, last


def _contact(left: np.ndarray, left_xy: tuple[int, int], right: np.ndarray, right_y: int
             ) -> tuple[int, np.ndarray]:
    """Return the column where ``right`` (its top at row ``right_y``) first touches ``left``
    (placed at ``left_xy``) when slid in from the right, and the canvas rows where both have
    ink (those that set it). Without such rows, the column where their boxes meet."""
    (x0, y0), (_, last), (first, _) = left_xy, _profiles(left), _profiles(right)
    rows = np.arange(max(y0, right_y), min(y0 + left.shape[0], right_y + right.shape[0]))
    rows = rows[(last[rows - y0] >= 0) & (first[rows - right_y] >= 0)] if rows.size else rows
    if rows.size == 0:
        return x0 + left.shape[1], rows
    return int((x0 + last[rows - y0] - first[rows - right_y]).max()), rows


def _draw_stroke(canvas: np.ndarray, p0: tuple[float, float], p1: tuple[float, float], width: float) -> None:
    """Draw an anti-aliased straight stroke of ``width`` pixels from ``p0`` to ``p1`` (x, y) on
    ``canvas``, in place."""
    (x0, y0), (x1, y1) = p0, p1
    r = width / 2 + 1
    top, bottom = max(0, int(min(y0, y1) - r)), min(canvas.shape[0], int(max(y0, y1) + r) + 2)
    left, right = max(0, int(min(x0, x1) - r)), min(canvas.shape[1], int(max(x0, x1) + r) + 2)
    yy, xx = np.mgrid[top:bottom, left:right].astype(np.float32)
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / max(dx * dx + dy * dy, 1e-6), 0.0, 1.0)
    distance = np.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy))
    region = canvas[top:bottom, left:right]
    np.maximum(region, np.clip(width / 2 + 0.5 - distance, 0.0, 1.0), out=region)


def _slanted(ink: np.ndarray, shear: float) -> np.ndarray:
    """Return ``ink`` sheared so that its top moves ``shear`` x its height to the right (left
    when negative), widened to keep every pixel."""
    h, w = ink.shape
    extra = int(np.ceil(abs(shear) * h))
    offset = -shear * (h - 1) if shear > 0 else 0.0  # output x = input x + shear * (h - 1 - y)
    out = Image.fromarray(ink).transform((w + extra, h), Image.Transform.AFFINE, (1, shear, offset, 0, 1, 0),
                                         Image.Resampling.BILINEAR)
    return np.clip(np.asarray(out, np.float32), 0.0, 1.0)


def compose(digits: list[np.ndarray], labels: list[int], rng: np.random.Generator,
            touching: bool | None = None) -> Number:
    """Return the number written with ``digits`` (square uint8 images, white on black, any size);
    ``touching``: whether two neighbours touch (default: at random, ``TOUCHING_SHARE``).

    A number whose digits do not touch is drawn exactly as before touch styles existed (the
    same random draws), so sets of such numbers are unchanged.
    """
    touching = bool(rng.random() < TOUCHING_SHARE) if touching is None else touching
    touch_at = int(rng.integers(len(digits) - 1)) if touching else -1
    style = TOUCH_STYLES[int(rng.integers(len(TOUCH_STYLES)))] if touching else ""
    parts = []
    for digit in digits:
        ink = _ink_of(digit)
        # Digits as tall as each other within 15%, whatever the source's resolution
        # (one wider than tall keeps its proportions).
        parts.append(_resized(ink, max(8.0, UNIT * rng.uniform(0.85, 1.15) * ink.shape[0] / max(ink.shape))))
    if style == "heights":
        j = touch_at + int(rng.integers(2))
        parts[j] = _resized(parts[j], max(8.0, parts[j].shape[0] * rng.uniform(*SMALLER)))
    height = max(p.shape[0] for p in parts) + 2 * 4 + 6
    width = sum(p.shape[1] for p in parts) + 12 * len(parts) + 16
    canvas = np.zeros((height, width), np.float32)
    x, placed = 8, []
    bottom = height - 6
    for i, part in enumerate(parts):
        h, w = part.shape
        y = bottom - h + int(rng.integers(-2, 3))  # an uneven baseline
        y = min(max(y, 0), height - h)
        if touching and i == touch_at + 1:
            x = _touch(canvas, parts[touch_at], placed[-1], part, y, style, rng)
        region = canvas[y:y + h, x:x + w]
        np.maximum(region, part, out=region)
        placed.append((x, y))
        x += w + int(rng.integers(3, 10))  # the gap to the next digit (which a touching one ignores)
    canvas = canvas[:, :x + 8]
    if style == "slant":
        shear = rng.uniform(*SLANT) * (1 if rng.random() < 0.75 else -1)
        canvas = np.pad(_slanted(canvas, shear), ((0, 0), (8, 8)))
    return Number(np.clip(canvas, 0.0, 1.0), "".join(str(int(v)) for v in labels), touching, style)


def _touch(canvas: np.ndarray, left: np.ndarray, left_xy: tuple[int, int], right: np.ndarray, right_y: int,
           style: str, rng: np.random.Generator) -> int:
    """Return the column at which to draw ``right`` (its top at ``right_y``) so that it touches
    ``left`` (drawn at ``left_xy``) in ``style``; a joining stroke is drawn on ``canvas``.

    A digit that would slide far under its neighbour (a short digit under a 7's bar) to touch
    it stops at ``MAX_TUCK`` of the narrower digit's width inside the other's box, and a
    stroke joins them instead.
    """
    contact, rows = _contact(left, left_xy, right, right_y)
    (x0, y0), (_, last), (first, _) = left_xy, _profiles(left), _profiles(right)
    limit = x0 + left.shape[1] - int(MAX_TUCK * min(left.shape[1], right.shape[1]))
    x = contact - int(rng.integers(OVERLAP_PX[0], OVERLAP_PX[1] + 1)) + 1
    if rows.size == 0 or (style != "stroke" and x >= limit):
        return x
    x = max(contact, limit) + int(rng.integers(JOIN_GAP_PX[0], JOIN_GAP_PX[1] + 1))
    # A cursive join leaves the left digit low (its lower two thirds) and meets the next
    # digit a few rows higher or lower.
    low = rows[rows >= rows[0] + (rows[-1] - rows[0]) // 3]
    start = int(low[int(rng.integers(low.size))])
    ends = rows[np.abs(rows - start - int(rng.integers(-3, 4))) <= 2]
    end = int(ends[int(rng.integers(ends.size))]) if ends.size else start
    _draw_stroke(canvas, (x0 + last[start - y0] - 0.5, start), (x + first[end - right_y] + 0.5, end),
                 rng.uniform(*JOIN_WIDTH_PX))
    return x


def _scaled(ink: np.ndarray, digit_height: float) -> np.ndarray:
    """Return ``ink`` enlarged so its digits are about ``digit_height`` pixels high."""
    scale = digit_height / UNIT
    h, w = ink.shape
    return np.clip(np.asarray(Image.fromarray(ink).resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                                          Image.Resampling.BICUBIC), np.float32), 0.0, 1.0)


def _on_canvas(ink: np.ndarray, rng: np.random.Generator, margin: float) -> np.ndarray:
    """Return ``ink`` placed at a random spot on a canvas ``margin`` times larger each way."""
    h, w = ink.shape
    H, W = round(h * (1 + margin * rng.uniform(0.5, 1.0))), round(w * (1 + margin * rng.uniform(0.3, 0.8)))
    out = np.zeros((H, W), np.float32)
    y0, x0 = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
    out[y0:y0 + h, x0:x0 + w] = ink
    return out


def render(number: Number, kind: str, rng: np.random.Generator) -> bytes:
    """Return the number as an uploaded file of ``kind``."""
    if kind == "canvas":
        ink = _on_canvas(_scaled(number.ink, rng.uniform(70, 140)), rng, 0.4)
        ink = np.where(ink > 0.5, 1.0, ink * 2 * ink)  # canvas strokes are crisp
        if rng.random() < 0.5:
            rgba = np.zeros((*ink.shape, 4), np.uint8)
            rgba[..., 3] = to_uint8(ink * 255)
            return encode(Image.fromarray(rgba, "RGBA"), "PNG")
        return encode(Image.fromarray(to_uint8(255 - ink * 255)).convert("RGB"), "PNG")
    if kind == "photo":
        return photo(number, rng)
    if kind == "scan":
        ink = _on_canvas(_scaled(number.ink, rng.uniform(40, 90)), rng, 0.8)
        gray = 255.0 - ink * rng.uniform(170, 220) - rng.uniform(5, 20)
        gray += rng.normal(0, 3, gray.shape)
        dust = rng.random(gray.shape) < 0.0005
        gray[dust] -= 120
        return encode(Image.fromarray(to_uint8(gray)), "PNG")
    if kind == "screen":
        ink = _on_canvas(_scaled(number.ink, rng.uniform(28, 80)), rng, 0.5)
        pixels = ink * 255 if rng.random() < 0.5 else 255 - ink * 255
        return encode(Image.fromarray(to_uint8(pixels)), "PNG")
    raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")


def photo(number: Number, rng: np.random.Generator, size: tuple[int, int] | None = None) -> bytes:
    """Return a phone photo of the number on paper (JPEG): tilted a little, shaded, soft and
    noisy; some stored sideways with the EXIF tag that turns them upright. ``size``: the
    picture's (width, height), the number filling about 60% of its width (default: random)."""
    if size is None:
        ink = _on_canvas(_scaled(number.ink, rng.uniform(60, 160)) * rng.uniform(0.85, 1.0), rng, 1.2)
    else:
        width, height = size
        scaled = _scaled(number.ink, UNIT * 0.6 * width / number.ink.shape[1]) * rng.uniform(0.85, 1.0)
        ink = np.zeros((height, width), np.float32)
        h, w = min(scaled.shape[0], height), min(scaled.shape[1], width)
        y0, x0 = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        ink[y0:y0 + h, x0:x0 + w] = scaled[:h, :w]
    ink = rotate(ink, rng.uniform(-4.0, 4.0)) if size is None else ink
    rgb = composite(ink, paper_colour(rng), pen_colour(rng))
    h, w = ink.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    shade = (xx / w) * np.cos(theta) + (yy / h) * np.sin(theta)
    shade = (shade - shade.min()) / max(np.ptp(shade), 1e-6)
    rgb *= (1.0 - rng.uniform(0.2, 0.35) * shade)[..., None]
    img = Image.fromarray(to_uint8(rgb)).filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.0)))
    noisy = np.asarray(img, np.float32) + rng.normal(0, rng.uniform(2, 5), (h, w, 3))
    img = Image.fromarray(to_uint8(noisy))
    if size is None and rng.random() < 0.3:  # stored sideways, with the tag that turns it upright
        exif = Image.Exif()
        exif[0x0112] = 6
        return encode(img.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=int(rng.integers(70, 92)),
                       exif=exif)
    return encode(img, "JPEG", quality=int(rng.integers(70, 92)))


def make_set(images, labels, n: int, seed: int = 0, lengths=(2, 6), kinds=KINDS,
             touching_share: float = TOUCHING_SHARE) -> list[Case]:
    """Return ``n`` numbers written with random ``images`` (uint8 squares, any size) as uploads,
    the same for a seed; kinds take turns, and about ``touching_share`` of them have a
    touching pair."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        length = int(rng.integers(lengths[0], lengths[1] + 1))
        pick = rng.choice(len(images), length, replace=length > len(images))
        # At the default share, compose itself draws whether two digits touch, as it always did.
        touching = None if touching_share == TOUCHING_SHARE else bool(rng.random() < touching_share)
        number = compose([images[j] for j in pick], [int(labels[j]) for j in pick], rng, touching)
        kind = kinds[i % len(kinds)]
        out.append(Case(number.text, number.touch, kind, render(number, kind, rng)))
    return out
