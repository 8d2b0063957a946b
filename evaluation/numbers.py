"""Whole numbers written by hand, as people would send them, to judge ``/v1/read``.

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
and other handwriting for what is reported. ``evaluate`` reads a set through
a reader (bytes -> text) and separates the two ways to be wrong:

    segmentation   the wrong number of digits (a touching pair read as one, a digit cut in two)
    recognition    the right number of digits, one or more of them wrong

beside exact matches (all, and numbers with touching digits), per-digit
accuracy (position by position on strings of the right length, otherwise
through the longest matching blocks), refusals (the 4xx: blank, no digits,
too many), failures (an exception: a 5xx) and the reading time; overall, per
upload kind and per touch style. ``python -m evaluation.numbers --dev`` or
``--report`` prints the tables. Nothing here trains anything.
"""

from __future__ import annotations

import difflib
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageFilter

from .card import markdown_table
from .uploads import composite, encode, paper_colour, pen_colour, rotate, to_uint8

__all__ = ["KINDS", "TOUCH_STYLES", "Case", "Number", "compose", "evaluate", "make_set", "photo", "reader_for",
           "render", "run", "sets_for", "tables"]

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


def _digits_right(truth: str, read: str) -> int:
    if len(truth) == len(read):
        return sum(a == b for a, b in zip(truth, read))
    return sum(block.size for block in difflib.SequenceMatcher(None, truth, read).get_matching_blocks())


@dataclass(frozen=True)
class _Outcome:
    """What the reader did with one case."""

    truth: str
    read: str | None  # None: refused (a 4xx) or failed
    failed: bool  # raised: the service would answer 5xx
    kind: str
    touch: str
    seconds: float


def _summary(outcomes: Sequence[_Outcome]) -> dict:
    """Return the shares of exact reads, segmentation and recognition errors, refusals and
    failures, per-digit accuracy and the reading time (ms) of ``outcomes``."""
    n = len(outcomes)
    if n == 0:
        return {"n": 0}
    answered = [o for o in outcomes if o.read is not None]
    exact = [o for o in answered if o.read == o.truth]
    touching = [o for o in outcomes if o.touch]
    digits = sum(len(o.truth) for o in outcomes)
    ms = sorted(1000 * o.seconds for o in outcomes)
    return {
        "n": n,
        "digits": digits,
        "exact": len(exact) / n,
        "touching_n": len(touching),
        "touching_exact": sum(o.read == o.truth for o in touching) / len(touching) if touching else None,
        "per_digit": sum(_digits_right(o.truth, o.read or "") for o in outcomes) / digits,
        "segmentation": sum(len(o.read) != len(o.truth) for o in answered) / n,
        "recognition": sum(len(o.read) == len(o.truth) and o.read != o.truth for o in answered) / n,
        "refused": sum(o.read is None and not o.failed for o in outcomes),
        "failed": sum(o.failed for o in outcomes),
        "invalid": sum(not (o.read.isdigit() and o.read.isascii()) for o in answered),
        "median_ms": statistics.median(ms),
        "p90_ms": _p90(ms),
        "times_ms": [round(t, 3) for t in ms],
    }


def _p90(ms: Sequence[float]) -> float:
    """Return the 90th percentile of sorted ``ms`` (nearest rank)."""
    return ms[min(len(ms) - 1, int(0.9 * len(ms)))]


def evaluate(reader: Callable[[bytes], str | None], cases: Sequence[tuple[str, str | bool, str, bytes]]) -> dict:
    """Return how ``reader`` (bytes -> text, None when it refuses the upload) reads ``cases``
    (from ``make_set``): ``_summary``'s figures overall, ``by_kind`` (kind of upload) and
    ``by_touch`` (touch style), and the first misreadings (``errors``). An exception from the
    reader is a failure (the service would answer 5xx), counted, not raised."""
    outcomes = []
    for text, touch, kind, data in cases:
        start = time.perf_counter()
        try:
            got, failed = reader(data), False
        except Exception:  # noqa: BLE001 - counted: the service would answer 500
            got, failed = None, True
        outcomes.append(_Outcome(text, got, failed, kind, str(touch or ""), time.perf_counter() - start))
    report = _summary(outcomes)
    report["by_kind"] = {kind: _summary([o for o in outcomes if o.kind == kind])
                         for kind in dict.fromkeys(o.kind for o in outcomes)}
    report["by_touch"] = {style: _summary([o for o in outcomes if o.touch == style])
                          for style in dict.fromkeys(o.touch for o in outcomes if o.touch)}
    report["errors"] = [{"truth": o.truth, "read": o.read, "kind": o.kind, "touching": o.touch, "failed": o.failed}
                        for o in outcomes if o.read != o.truth][:30]
    return report


# -- tables and the command line ---------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}%"


def _row(name: str, r: dict) -> list[str]:
    touching = f"{_pct(r['touching_exact'])} of {r['touching_n']}" if r["touching_n"] else "-"
    return [name, str(r["n"]), _pct(r["exact"]), touching, _pct(r["per_digit"]), _pct(r["segmentation"]),
            _pct(r["recognition"]), str(r["refused"]), str(r["failed"]), f"{r['median_ms']:.1f}", f"{r['p90_ms']:.1f}"]


def tables(results: dict[str, dict]) -> str:
    """Return Markdown tables of ``evaluate``'s results per source (``results``: source ->
    report): one row per source, then one per upload kind and one per touch style."""
    header = ["", "numbers", "exact", "touching", "per digit", "segmentation", "recognition", "4xx", "5xx",
              "median ms", "p90 ms"]
    lines = markdown_table(["source", *header[1:]], [_row(name, r) for name, r in results.items()])
    for key, title in (("by_kind", "upload kind"), ("by_touch", "touch style")):
        for name, r in results.items():
            if len(results) > 1 and name == "all":
                continue
            lines += ["", f"**{name}, by {title}**", ""]
            lines += markdown_table([title, *header[1:]], [_row(k, v) for k, v in r[key].items()])
    return "\n".join(lines)


def reader_for(model, max_pixels: int = 40_000_000, **options) -> Callable[[bytes], str | None]:
    """Return bytes -> the text the service reads (``imaging.numbers``) with a loaded artifact,
    None where it refuses the upload (a 4xx); ``options`` go to ``read``."""
    from imaging.numbers import read, read_image
    from imaging.decode import ImageError

    def assess(X):
        return model.predictor.assess(X, model.thresholds)

    def reader(data: bytes) -> str | None:
        try:
            image, ink = read_image(data, max_pixels)
            return read(image, ink, assess, model.labels, 32, **options).text
        except ImageError:
            return None

    return reader


def sets_for(which: str, data_dir: str) -> dict[str, tuple[Sequence[np.ndarray], np.ndarray]]:
    """Return the digit sources of the development set ("dev": MNIST's training split) or of
    the report ("report": MNIST's test split and every available source of ``handwriting``)."""
    from model.data import load_dataset

    from .handwriting import SOURCES, SourceUnavailable, load_source

    mnist = load_dataset("mnist", data_dir, download=False, progress=False)
    if which == "dev":
        return {"mnist train": (mnist.train_images, mnist.train_labels)}
    sets = {"mnist test": (mnist.test_images, mnist.test_labels)}
    for name in SOURCES:
        try:
            source = load_source(name)
        except SourceUnavailable as exc:
            print(f"{name}: unavailable ({exc})")
            continue
        sets[name] = (source.images, source.labels)
    return sets


def run(reader: Callable[[bytes], str | None], sets: dict, n: int, seed: int = 0,
        touching_share: float = TOUCHING_SHARE) -> dict[str, dict]:
    """Return ``evaluate``'s report for ``n`` numbers of each set (source -> (images, labels)),
    and for all of them together ("all") when there are several."""
    results = {}
    for i, (name, (images, labels)) in enumerate(sets.items()):
        results[name] = evaluate(reader, make_set(images, labels, n, seed=seed + i, touching_share=touching_share))
    if len(results) > 1:
        results["all"] = _pooled(list(results.values()))
    return results


def _pooled(reports: list[dict]) -> dict:
    """Return the figures of several reports taken together."""
    n = sum(r["n"] for r in reports)
    t = sum(r["touching_n"] for r in reports)
    ms = sorted(x for r in reports for x in r["times_ms"])
    out = {"n": n, "touching_n": t,
           "touching_exact": sum((r["touching_exact"] or 0) * r["touching_n"] for r in reports) / t if t else None,
           "median_ms": statistics.median(ms), "p90_ms": _p90(ms), "by_kind": {}, "by_touch": {}}
    for key in ("exact", "segmentation", "recognition"):
        out[key] = sum(r[key] * r["n"] for r in reports) / n
    for key in ("refused", "failed", "invalid"):
        out[key] = sum(r[key] for r in reports)
    out["digits"] = sum(r["digits"] for r in reports)
    out["per_digit"] = sum(r["per_digit"] * r["digits"] for r in reports) / out["digits"]
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    p = argparse.ArgumentParser(
        prog="python -m evaluation.numbers",
        description="Read composed handwritten numbers through the service's reader (imaging.numbers); "
                    "run with OPENBLAS_NUM_THREADS=1, as a gunicorn worker does, for its timing.")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--dev", action="store_true",
                       help="numbers of MNIST *training* digits: what the reader is tuned on")
    which.add_argument("--report", action="store_true",
                       help="numbers of MNIST test digits and of every source of other handwriting (the default)")
    p.add_argument("--artifact", help="model.npz or a version directory (default: the newest bundled)")
    p.add_argument("--data-dir", default="../shared/datasets")
    p.add_argument("--n", type=int, default=600, help="numbers per digit source")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--touching-share", type=float, default=TOUCHING_SHARE,
                   help="share of numbers with a touching pair (default 1/7)")
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args(argv)
    from model.artifact import load_artifact
    from model.store import ARTIFACT_FILE, ArtifactStore

    path = args.artifact or ArtifactStore("artifacts", "mnist").latest().path
    reader = reader_for(load_artifact(path if str(path).endswith(".npz") else f"{path}/{ARTIFACT_FILE}"))
    results = run(reader, sets_for("dev" if args.dev else "report", args.data_dir), args.n, args.seed,
                  args.touching_share)
    print(tables(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
