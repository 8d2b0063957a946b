"""Reading a whole handwritten number: segment, classify, decide.

One image holds one line of digits (a postcode, an amount, a year, a meter
reading). ``read`` finds the ink with the single-digit pipeline's own steps
(``preprocessing.decode_image`` and ``ink_map``, at a working resolution
fit for a line, ``READ_SIDE``), then:

    _pieces        split the line into pieces at empty columns (a 5's detached top,
                   a broken stroke that overlaps, stay with their digit)
    _straighten    a line written at a slight angle is turned level, once
    marks          pieces far shorter than the digits (a comma, a dash, a dot, a
                   smudge) are left out of the text and listed separately
    _options       each piece alone, cut into 2-4 digits where it is wide (touching
                   digits: cuts at the emptiest columns near even spacing), or joined
                   with its neighbour (a digit broken into two pieces side by side)
    classify       every candidate normalised exactly as a single upload is
                   (``preprocessing.to_mnist``) and classified in one batch
    _best_path     the segmentation whose least convincing digit is most convincing
                   (probability of its class x its digit score), then the most
                   probable; a candidate the network calls "not a digit" is a poor
                   digit, which is what splits a touching pair ("12") in two

Each digit gets its probabilities, digit score and verdict; a chosen
candidate whose verdict is ``not_a_digit`` becomes a mark. The text's
confidence is the product of its digits' probabilities (the probability that
the whole string is right, under the model). Boxes are in the upload's
pixels, after its EXIF orientation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from model.data import scale_pixels

from .kernels import image_of, otsu
from .preprocessing import ImageError, decode_image, ink_map, to_mnist

__all__ = ["MarksOnly", "READ_SIDE", "Reading", "TooManyDigits", "read", "read_image"]

READ_SIDE = 480  # a line of digits is analysed at about this many pixels on its long side
MARK_HEIGHT = 0.4  # a piece under this share of the digits' height is a mark, not a digit
SPLIT_WIDTH = 0.5  # a piece wider than this share of the digits' height may be several digits
PART_WIDTH = 0.3  # ...each at least this share of the height wide (so at most width / (0.3 h) digits)
MAX_PARTS = 4
PAIR_CUTS = 3  # a piece that may be two digits is also cut at this many of its emptiest columns
NARROWEST = 0.15  # ...each side at least this share of the height wide (a narrow 1)
CUT_HEIGHT = 0.7  # every digit cut from a piece is at least this share of the piece's height
CONVINCING = 0.9  # a piece read as one digit this strongly (probability x digit score) is not cut
CUT_WINDOW = 0.3  # a cut is looked for within this share of a part's width around even spacing
JOIN_GAP = 0.15  # neighbours closer than this share of the height, and together narrower than
JOIN_WIDTH = 0.9  # this share, may be one digit in two pieces
SPECK_SHARE = 0.02  # ink with less than this share of its piece's (or the line's inkiest piece's) is dust
TILT_MIN, TILT_MAX = 2.0, 20.0  # degrees: a line tilted within this range is turned level


class TooManyDigits(ImageError):
    """More digits in one image than ``MAX_READ_DIGITS``."""

    status = 422
    code = "too_many_digits"


class MarksOnly(ImageError):
    """Ink, but nothing that reads as a digit."""

    status = 422
    code = "no_digits"


# float32 (n, 784) -> (probabilities (n, k), digit scores (n,), verdicts): ``digits.assess``
Assess = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, list[str]]]


@dataclass(frozen=True)
class Piece:
    """Ink between two empty columns of the line, in working-resolution pixels."""

    x0: int
    x1: int  # exclusive
    y0: int
    y1: int
    mass: float

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


@dataclass
class Reading:
    """What ``read`` found: the digits (their 28x28 inputs, probabilities, scores, verdicts,
    boxes in the upload's pixels) in reading order, and the marks left out."""

    digits: list[dict]
    marks: list[dict]

    @property
    def text(self) -> str:
        return "".join(d["label"] for d in self.digits)

    @property
    def confidence(self) -> float:
        return float(np.prod([d["confidence"] for d in self.digits])) if self.digits else 0.0


def read_image(data: bytes, max_pixels: int) -> tuple[Image.Image, np.ndarray]:
    """Return the decoded upload and its ink at the reading resolution (``BlankImage`` if none)."""
    image = decode_image(data, max_pixels, READ_SIDE)
    return image, ink_map(image, READ_SIDE)


def read(image: Image.Image, ink: np.ndarray, assess: Assess, labels: list[str], max_digits: int) -> Reading:
    """Return the number written in ``image`` (its ``ink`` from ``read_image``).

    Raises ``TooManyDigits`` past ``max_digits`` and ``MarksOnly`` when nothing
    reads as a digit.
    """
    threshold = otsu(ink)
    angle, shape = 0.0, ink.shape
    pieces = _pieces(ink > threshold)
    tilt = _tilt(pieces)
    if TILT_MIN <= abs(tilt) <= TILT_MAX:
        angle = tilt
        ink = _rotate(ink, angle)
        pieces = _pieces(ink > threshold)
    height = _digit_height(pieces)
    digits_pieces = [p for p in pieces if p.height >= MARK_HEIGHT * height]
    marks = [p for p in pieces if p.height < MARK_HEIGHT * height]
    if len(digits_pieces) > max_digits:
        raise TooManyDigits(f"more than {max_digits} digits in one image (found {len(digits_pieces)} pieces)")

    mask = ink > threshold
    judge = _judge(ink, threshold, assess)
    # First each piece whole (or joined with its neighbour); then, in a second batch, cut
    # only the pieces that do not read convincingly as one digit.
    options = _options(digits_pieces, mask, height, cut=())
    judged = judge(options, {})
    doubtful = {i for i, ways in enumerate(options) if _strength(judged[ways[0][1][0]]) < CONVINCING}
    if doubtful:
        options = _options(digits_pieces, mask, height, cut=doubtful)
        judged = judge(options, judged)
    chosen = _best_path(options, judged, len(digits_pieces))
    if len(chosen) > max_digits:
        raise TooManyDigits(f"more than {max_digits} digits in one image (found {len(chosen)})")

    to_upload = _to_upload(image, shape, ink.shape, angle)
    digits, left_out = [], []
    for box in chosen:
        digit, p, score, verdict = judged[box]
        k = int(p.argmax())
        entry = {"label": labels[k], "predicted_class": k, "confidence": float(p[k]),
                 "probabilities": p.tolist(), "box": to_upload(box), "digit_score": score,
                 "verdict": verdict, "input": digit, "probs": p}
        (left_out if verdict == "not_a_digit" else digits).append(entry)
    marks_out = [{"box": to_upload((m.x0, m.x1, m.y0, m.y1)), "kind": "mark"} for m in marks]
    marks_out += [{"box": d["box"], "kind": "not_a_digit", "digit_score": d["digit_score"]} for d in left_out]
    marks_out.sort(key=lambda m: m["box"][0])
    if not digits:
        raise MarksOnly("no digit found: the ink does not read as digits"
                        + (f" ({len(marks_out)} marks that are not digits)" if marks_out else ""))
    return Reading(digits=digits, marks=marks_out)


# -- segmentation -----------------------------------------------------------------------------


def _pieces(mask: np.ndarray) -> list[Piece]:
    """Return the pieces of ink between empty columns, left to right; dust (a piece with less
    than ``SPECK_SHARE`` of the inkiest piece's ink) is left out."""
    columns = np.count_nonzero(mask, axis=0)
    filled = np.flatnonzero(columns)
    if filled.size == 0:
        return []
    starts, ends = _runs(filled)
    totals = np.add.reduceat(columns, starts)
    out = []
    for x0, x1, total in zip(starts.tolist(), ends.tolist(), totals.tolist()):
        if total < SPECK_SHARE * totals.max():
            continue
        y0, y1 = _rows(mask[:, x0:x1])
        out.append(Piece(x0, x1, y0, y1, float(total)))
    return out


def _rows(strip: np.ndarray) -> tuple[int, int]:
    """Return the rows [y0, y1) of the ink in a strip of columns, ignoring runs of rows
    (between empty rows) with less than ``SPECK_SHARE`` of its ink: dust above or below a
    digit, not a 5's detached top."""
    per_row = np.count_nonzero(strip, axis=1)
    starts, ends = _runs(np.flatnonzero(per_row))
    if len(starts) > 1:
        runs = np.add.reduceat(per_row, starts)
        kept = np.flatnonzero(runs >= SPECK_SHARE * runs.sum())
        starts, ends = starts[kept], ends[kept]
    return int(starts[0]), int(ends[-1])


def _runs(filled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the starts and (exclusive) ends of the runs of consecutive indices in ``filled``."""
    breaks = np.flatnonzero(filled[1:] - filled[:-1] > 1)
    return (np.concatenate((filled[:1], filled[breaks + 1])),
            np.concatenate((filled[breaks], filled[-1:])) + 1)


def _digit_height(pieces: list[Piece]) -> float:
    """Return the height of the line's digits: the median of the pieces at least half as tall
    as the tallest (so commas and dots do not count)."""
    tallest = max(p.height for p in pieces)
    return float(np.median([p.height for p in pieces if p.height >= 0.5 * tallest]))


def _tilt(pieces: list[Piece]) -> float:
    """Return the line's angle in degrees (positive: rising to the right), from the centres of
    its tall pieces; 0 with fewer than two."""
    if len(pieces) < 2:
        return 0.0
    height = _digit_height(pieces)
    tall = [p for p in pieces if p.height >= 0.6 * height]
    if len(tall) < 2:
        return 0.0
    x = np.array([(p.x0 + p.x1) / 2 for p in tall])
    y = np.array([(p.y0 + p.y1) / 2 for p in tall])
    if x.max() - x.min() < 2 * height:
        return 0.0
    slope = np.polyfit(x, y, 1)[0]
    return float(-math.degrees(math.atan(slope)))


def _rotate(ink: np.ndarray, angle: float) -> np.ndarray:
    """Return ``ink`` turned clockwise by ``angle`` degrees about its centre (a line rising
    by ``angle`` becomes level), enlarged to keep every pixel."""
    return np.asarray(image_of(ink).rotate(-angle, resample=Image.Resampling.BILINEAR, expand=True),
                      dtype=np.float32)


Box = tuple[int, int, int, int]  # x0, x1, y0, y1 in working pixels (x1, y1 exclusive)


def _judge(ink: np.ndarray, threshold: float, assess: Assess):
    """Return judge(options, judged): ``judged`` with every candidate box of ``options`` not
    yet in it classified, in one batch: box -> (28x28 input, probabilities, digit score, verdict)."""
    def judge(options, judged: dict) -> dict:
        boxes = sorted({box for ways in options for _, parts in ways for box in parts} - judged.keys())
        if not boxes:
            return judged
        inputs = np.stack([to_mnist(ink[y0:y1, x0:x1], threshold) for x0, x1, y0, y1 in boxes])
        probs, scores, said = assess(scale_pixels(inputs))
        return {**judged, **{box: (inputs[i], probs[i], float(scores[i]), said[i]) for i, box in enumerate(boxes)}}
    return judge


def _strength(judgement) -> float:
    """How convincingly a candidate is a digit: its top probability x its digit score."""
    _, p, score, _ = judgement
    return float(p.max()) * max(score, 1e-6)


def _options(pieces: list[Piece], mask: np.ndarray, height: float, cut) -> list[list[tuple[int, tuple[Box, ...]]]]:
    """Return, for each piece i, the ways to read from it: (pieces used, candidate boxes); the
    pieces in ``cut`` may also be cut into several digits."""
    columns = np.count_nonzero(mask, axis=0)
    out = []
    for i, p in enumerate(pieces):
        ways = [(1, (_box(mask, p.x0, p.x1),))]
        most = min(MAX_PARTS, int(p.width / (PART_WIDTH * height)))
        if i in cut and p.width > SPLIT_WIDTH * height:
            splits = [[cut] for cut in _pair_cuts(columns, p.x0, p.x1, height)]
            splits += [_cuts(columns, p.x0, p.x1, k) for k in range(2, most + 1)]
            for cuts in splits:
                edges = [p.x0, *cuts, p.x1]
                parts = tuple(_box(mask, a, b) for a, b in zip(edges, edges[1:]))
                if all(part is not None and part[3] - part[2] >= CUT_HEIGHT * p.height for part in parts) \
                        and (1, parts) not in ways:
                    ways.append((1, parts))
        if i + 1 < len(pieces):
            q = pieces[i + 1]
            if q.x0 - p.x1 < JOIN_GAP * height and q.x1 - p.x0 < JOIN_WIDTH * height:
                ways.append((2, (_box(mask, p.x0, q.x1),)))
        out.append([(n, parts) for n, parts in ways if parts[0] is not None])
    return out


def _cuts(columns: np.ndarray, x0: int, x1: int, k: int) -> list[int]:
    """Return k - 1 cut columns splitting [x0, x1) into k digits: each the emptiest column
    within ``CUT_WINDOW`` of a part's width around the even split (the nearest on ties)."""
    width = (x1 - x0) / k
    cuts = []
    for j in range(1, k):
        target = x0 + j * width
        lo = max(x0 + 1, int(target - CUT_WINDOW * width))
        hi = min(x1 - 1, int(target + CUT_WINDOW * width) + 1)
        window = columns[lo:hi].astype(np.float64) + 1e-3 * np.abs(np.arange(lo, hi) - target)
        cuts.append(lo + int(window.argmin()))
    return cuts


def _pair_cuts(columns: np.ndarray, x0: int, x1: int, height: float) -> list[int]:
    """Return up to ``PAIR_CUTS`` columns where two touching digits of unequal widths (a 4
    touching a 1) may meet: the emptiest local minima of the ink per column, each leaving at
    least ``NARROWEST`` of the height on either side, apart from each other by as much."""
    margin = max(1, int(NARROWEST * height))
    lo, hi = x0 + margin, x1 - margin
    if hi - lo < 3:
        return []
    window = columns[lo - 1:hi + 1].astype(np.float64)
    inner = window[1:-1]
    minima = np.flatnonzero((inner <= window[:-2]) & (inner <= window[2:]))
    cuts: list[int] = []
    for i in minima[np.argsort(inner[minima], kind="stable")].tolist():
        if all(abs(lo + i - c) >= margin for c in cuts):
            cuts.append(lo + i)
            if len(cuts) == PAIR_CUTS:
                break
    return cuts


def _box(mask: np.ndarray, x0: int, x1: int) -> Box | None:
    """Return the box of the ink in columns [x0, x1) (dust ignored, ``_rows``), or None for a
    sliver without ink."""
    strip = mask[:, x0:x1]
    cols = np.flatnonzero(strip.any(axis=0))
    if cols.size < 2:
        return None
    y0, y1 = _rows(strip[:, cols[0]:cols[-1] + 1])
    return (x0 + int(cols[0]), x0 + int(cols[-1]) + 1, y0, y1)


def _best_path(options, judged: dict, n: int) -> list[Box]:
    """Return the candidate boxes of the best reading of all ``n`` pieces: the path whose
    weakest digit (probability x digit score) is strongest, then the most probable."""
    def strength(box: Box) -> tuple[float, float]:
        s = _strength(judged[box])
        return s, math.log(max(s, 1e-12))

    best: list[tuple[float, float, list[Box]] | None] = [None] * (n + 1)
    best[0] = (1.0, 0.0, [])
    for i in range(n):
        if best[i] is None:
            continue
        weakest, total, path = best[i]
        for used, parts in options[i]:
            scores = [strength(b) for b in parts]
            candidate = (min([weakest] + [s for s, _ in scores]), total + sum(t for _, t in scores),
                         path + list(parts))
            j = i + used
            if best[j] is None or candidate[:2] > best[j][:2]:
                best[j] = candidate
    return best[n][2] if best[n] else []


def _to_upload(image: Image.Image, shape: tuple[int, int], turned: tuple[int, int], angle: float
               ) -> Callable[[Box], list[int]]:
    """Return the map from a box in the working ink (``turned``: its shape after levelling,
    ``shape`` before) to [x, y, w, h] in the upload's pixels, upright."""
    width, height = image.info.get("upright_size", image.size)
    (h, w), (turned_h, turned_w) = shape, turned
    sx, sy = width / w, height / h
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))

    def convert(box: Box) -> list[int]:
        x0, x1, y0, y1 = box
        corners = [(x0, y0), (x1, y0), (x0, y1), (x1, y1)]
        if angle:  # undo the turn: about the turned image's centre, back to the original's
            corners = [(w / 2 + (x - turned_w / 2) * cos + (y - turned_h / 2) * sin,
                        h / 2 - (x - turned_w / 2) * sin + (y - turned_h / 2) * cos) for x, y in corners]
        xs = [min(max(x * sx, 0.0), width) for x, _ in corners]
        ys = [min(max(y * sy, 0.0), height) for _, y in corners]
        left, top = int(math.floor(min(xs))), int(math.floor(min(ys)))
        return [left, top, int(math.ceil(max(xs))) - left, int(math.ceil(max(ys))) - top]

    return convert
