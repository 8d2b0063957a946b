"""Reading a whole handwritten number: over-segment, classify, choose by recognition.

One image holds one line of digits (a postcode, an amount, a year, a meter
reading). ``read`` finds the ink with the single-digit pipeline's own steps
(``preprocessing.decode_image`` and ``ink_map``, at a working resolution
fit for a line, ``READ_SIDE``), then:

    _pieces        split the line into pieces at empty columns (a 5's detached top,
                   a broken stroke that overlaps, stay with their digit)
    _straighten    a line written at a slight angle is turned level, once
    marks          pieces far shorter than the digits (a comma, a dash, a dot, a
                   smudge) are left out of the text and listed separately
    cut_paths      over-segmentation: a piece that may hold several digits is cut
                   along every plausible path that follows the ink: vertical cuts at
                   the emptiest columns, drop-falls from the top and from the bottom
                   (``drop_fall``) started in the valleys of its upper and lower
                   outlines, and the paths through the least ink in a band
                   (``cheapest_cuts``). Touching digits rarely meet along a vertical
                   line, and digits written at a slant overlap in columns without
                   touching: the pieces of ink between two paths (the primitives)
                   are split along the paths, not at columns.
    candidates     every run of adjacent primitives that may be one digit (across a
                   small gap too: a digit broken into two pieces), each normalised
                   exactly as a single upload is (``preprocessing.to_mnist``) and
                   classified in one batch
    best_segmentation
                   the path through the graph of candidates (nodes: the cuts, edges:
                   the candidates) that maximises the sum of the digits' scores, less
                   the cost of the cuts it makes through ink: log p(class) + 4 log(digit
                   score), a per-digit bonus and a prior on the digit's proportions for
                   its class (``Scoring``): the product of probabilities and digit
                   scores with a width prior, as a standard dynamic program

The first batch reads every piece whole (and joined with a close neighbour)
and cuts the pieces surely wider than one digit; a piece that does not read
convincingly as one digit, or reads as a 1 too wide for one, is cut and its
candidates classified in a second batch, so a line of digits apart costs one
small batch. A touching pair read as one confident digit loses to two
confident digits through the per-digit bonus and the proportions prior; a
model that gives cut fragments and pairs a low digit score makes a wrong cut
lose by its own account, through the digit score's weight.

Each digit gets its probabilities, digit score and verdict; a chosen
candidate whose verdict is ``not_a_digit`` becomes a mark. The text's
confidence is the product of its digits' probabilities (the probability that
the whole string is right, under the model). Boxes are in the upload's
pixels, after its EXIF orientation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from model.data import scale_pixels

from .kernels import image_of, otsu, stroke_width
from .decode import ImageError, decode_image
from .preprocessing import ink_map, to_mnist

__all__ = ["READ_SIDE", "MarksOnly", "Reading", "Scoring", "TooManyDigits", "best_segmentation", "cheapest_cuts",
           "cut_paths", "drop_fall", "read", "read_image"]

READ_SIDE = 480  # a line of digits is analysed at about this many pixels on its long side
MARK_HEIGHT = 0.4  # a piece under this share of the digits' height is a mark, not a digit
SPECK_SHARE = 0.02  # ink with less than this share of its piece's (or the line's inkiest piece's) is dust
TILT_MIN, TILT_MAX = 2.0, 20.0  # degrees: a line tilted within this range is turned level

# Over-segmentation (shares of the line's digit height unless said otherwise)
SURE_SPLIT = 1.1  # a piece wider than this is cut at once (two digits, or a slanted line)
CONVINCING = 0.9  # a narrower piece read as one digit this strongly (probability x digit score)...
ONE_WIDTH = 0.45  # ...is not cut, unless it reads as a 1 wider than this (a touching "11", "17")
NARROWEST = 0.1  # a cut leaves at least this much of the piece on either side (a narrow 1)
BAND = 0.25  # a cheapest cut strays at most this far from its start column
ROLL = 1.0  # a drop-fall rolls at most this many stroke widths along a row before it cuts through
DIGIT_WIDTH = 0.6  # a digit's usual width, to count how many a piece may hold
STARTS_PER_DIGIT = 2  # vertical cuts, and drop-falls from each outline, per digit it may hold...
MAX_STARTS = 12  # ...and at most this many of each in one piece
CUTS_PER_DIGIT = 2  # cuts kept per digit it may hold...
MAX_CUTS = 9  # ...and at most this many in one piece
MAX_CUT_STROKES = 4.0  # a cut through more strokes than this (``_strokes``) is not kept
PART_INK = 0.06  # each side of a cut keeps at least this share of the piece's ink
RUN_STROKES = 3.0  # a cut through ink counts one stroke per run of ink up to this many stroke widths long
SAME_CUT = 0.03  # cuts that assign all but this share of the piece's ink alike are one cut
# Candidates
# log(width / height) of each digit's ink (mean, standard deviation), from MNIST training digits
# written as numbers and read as the service reads them (``evaluation.numbers --dev``)
DIGIT_ASPECTS = ((-0.10, 0.24), (-1.02, 0.45), (-0.10, 0.22), (-0.25, 0.24), (-0.25, 0.24),
                 (-0.09, 0.28), (-0.37, 0.21), (-0.30, 0.21), (-0.30, 0.24), (-0.44, 0.20))
MAX_SPAN = 8  # a candidate digit is at most this many adjacent primitives (or one whole piece)...
MAX_WIDTH = 1.5  # ...at most this wide...
JOIN_GAP = 0.15  # ...and spans no gap between pieces wider than this


@dataclass(frozen=True)
class Scoring:
    """How a candidate digit and a segmentation are scored (``best_segmentation``'s weights).

    A candidate reading as class k with probability p and digit score s, its box w x h in a
    line of digit height H, scores ``log p + score_weight * log max(s, score_floor) +
    digit_bonus`` less its priors: ``aspect_weight`` x z^2 / 2 where z is how many standard
    deviations its log(w / h) lies from class k's (``DIGIT_ASPECTS``), beyond the first
    ``aspect_free``; ``wide_penalty`` per H of width beyond ``wide`` x H; ``short_penalty``
    per H of height short of ``short`` x H; ``cut_one`` for a 1 with a cut through ink on
    either side (a sliver of a digit reads as a 1 all too easily). A segmentation scores the
    sum over its digits, less ``cut_cost`` per stroke that its cuts go through and
    ``cut_fixed`` per cut through ink. Tuned on composed numbers of MNIST *training* digits
    (``evaluation.numbers --dev``).
    """

    digit_bonus: float = 0.75
    score_weight: float = 4.0
    score_floor: float = 1e-4
    aspect_weight: float = 1.0
    aspect_free: float = 1.5
    wide: float = 1.4
    wide_penalty: float = 6.0
    short: float = 0.8
    short_penalty: float = 8.0
    cut_one: float = 0.5
    cut_cost: float = 0.25
    cut_fixed: float = 0.25


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
Box = tuple[int, int, int, int]  # x0, x1, y0, y1 in working pixels (x1, y1 exclusive)


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


def read(image: Image.Image, ink: np.ndarray, assess: Assess, labels: list[str], max_digits: int,
         scoring: Scoring | None = None) -> Reading:
    """Return the number written in ``image`` (its ``ink`` from ``read_image``).

    Raises ``TooManyDigits`` past ``max_digits`` and ``MarksOnly`` when nothing
    reads as a digit. ``scoring``: the weights of the choice (default: ``Scoring()``).
    """
    scoring = scoring or Scoring()
    threshold = otsu(ink)
    shape = ink.shape
    ink, pieces, angle = _straighten(ink, threshold)
    height = _digit_height(pieces)
    digit_pieces = [p for p in pieces if p.height >= MARK_HEIGHT * height]
    marks = [p for p in pieces if p.height < MARK_HEIGHT * height]
    if len(digit_pieces) > max_digits:
        raise TooManyDigits(f"more than {max_digits} digits in one image (found {len(digit_pieces)} pieces)")

    line = _Line(ink, threshold, digit_pieces, height)
    judge = _Judge(line, assess)
    # First the pieces whole, joined with a close neighbour, and cut where a piece is surely
    # wider than one digit: one batch. Then, in a second batch, the cuts of the pieces that
    # do not read convincingly as one digit.
    sure = {i for i, p in enumerate(digit_pieces) if p.width > SURE_SPLIT * height}
    cuts = line.cuts(sure)
    judge(line.candidates(cuts))
    doubtful = {i for i, p in enumerate(digit_pieces) if i not in sure and _doubtful(judge.whole(i), p, height)}
    if doubtful:
        cuts = line.cuts(sure | doubtful)
        judge(line.candidates(cuts))
    chosen = _choose(line, cuts, judge, scoring)
    if len(chosen) > max_digits:
        raise TooManyDigits(f"more than {max_digits} digits in one image (found {len(chosen)})")

    to_upload = _to_upload(image, shape, ink.shape, angle)
    digits, left_out = [], []
    for judgement in chosen:
        p, k = judgement.probs, int(judgement.probs.argmax())
        entry = {"label": labels[k], "predicted_class": k, "confidence": float(p[k]),
                 "probabilities": p.tolist(), "box": to_upload(judgement.box), "digit_score": judgement.score,
                 "verdict": judgement.verdict, "input": judgement.digit, "probs": p}
        (left_out if judgement.verdict == "not_a_digit" else digits).append(entry)
    marks_out = [{"box": to_upload((m.x0, m.x1, m.y0, m.y1)), "kind": "mark"} for m in marks]
    marks_out += [{"box": d["box"], "kind": "not_a_digit", "digit_score": d["digit_score"]} for d in left_out]
    marks_out.sort(key=lambda m: m["box"][0])
    if not digits:
        raise MarksOnly("no digit found: the ink does not read as digits"
                        + (f" ({len(marks_out)} marks that are not digits)" if marks_out else ""))
    return Reading(digits=digits, marks=marks_out)


# -- pieces, marks and the line's tilt -----------------------------------------------------------


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


def _straighten(ink: np.ndarray, threshold: float) -> tuple[np.ndarray, list[Piece], float]:
    """Return the line levelled (``_tilt``, ``_rotate``), its pieces, and the angle it was
    turned by."""
    angle = 0.0
    pieces = _pieces(ink > threshold)
    tilt = _tilt(pieces)
    if TILT_MIN <= abs(tilt) <= TILT_MAX:
        angle = tilt
        ink = _rotate(ink, angle)
        pieces = _pieces(ink > threshold)
    return ink, pieces, angle


def _rotate(ink: np.ndarray, angle: float) -> np.ndarray:
    """Return ``ink`` turned clockwise by ``angle`` degrees about its centre (a line rising
    by ``angle`` becomes level), enlarged to keep every pixel."""
    return np.asarray(image_of(ink).rotate(-angle, resample=Image.Resampling.BILINEAR, expand=True),
                      dtype=np.float32)


# -- cut paths -------------------------------------------------------------------------------------


def drop_fall(mask: np.ndarray, x: int, from_bottom: bool = False, lean: int = -1,
              lo: int = 0, hi: int | None = None, roll: int | None = None) -> np.ndarray:
    """Return the path of a drop falling through ``mask`` from column ``x``: int (h,), the
    column it leaves each row at; ink left of it is on the left.

    Parameters
    ----------
    mask : bool (h, w), ink True.
    x : the column the drop starts at, above the first row (below the last ``from_bottom``).
    from_bottom : fall upwards from the bottom row (a cut started in a valley of the lower outline).
    lean : -1 the drop rolls left first, +1 right first.
    lo, hi : the columns it may use (``hi`` exclusive; default all).
    roll : the most columns it rolls sideways along one row (default: as far as it can).

    Like a drop of water, it moves on to the next row straight on, else diagonally (the
    ``lean`` side first), else sideways along the row (never back, at most ``roll``
    columns), and cuts through the ink when it is stuck.
    """
    m = mask[::-1] if from_bottom else mask
    h, w = m.shape
    hi = w if hi is None else min(hi, w)
    lo = max(lo, 0)
    rows = m.tolist()
    x = min(max(x, lo), hi - 1)
    path = [0] * h
    steps = hi - lo if roll is None else roll
    for y in range(h):
        below = rows[y + 1] if y + 1 < h else None
        here = rows[y]
        came = 0  # the direction of the last sideways move in this row (never go back)
        for _ in range(steps):
            if below is None or not below[x]:
                break
            for dx in (lean, -lean):
                if lo <= x + dx < hi and not below[x + dx]:
                    x += dx
                    break
            else:
                for dx in (lean, -lean):
                    if dx != -came and lo <= x + dx < hi and not here[x + dx]:
                        x += dx
                        came = dx
                        break
                else:
                    break  # stuck: cut straight down through the ink
                continue
            break
        path[y] = x
    out = np.array(path, np.int32)
    return out[::-1].copy() if from_bottom else out


def cheapest_cuts(cost: np.ndarray, starts: Sequence[int], band: int, step: float = 0.1) -> list[np.ndarray]:
    """Return, for each start column, the top-to-bottom path through ``cost`` (float (h, w))
    of least total cost within ``band`` columns of the start: int (h,) columns, moving at most
    one column per row, each sideways step costing ``step`` more (straight on wins ties).
    A dynamic program, row by row, for all the bands at once."""
    h, w = cost.shape
    n, width = len(starts), 2 * band + 1
    offsets = np.asarray(starts, np.int64)[:, None] - band + np.arange(width)[None, :]  # (n, width)
    c = np.where((offsets >= 0) & (offsets < w), cost[:, np.clip(offsets, 0, w - 1)], np.inf)  # (h, n, width)
    total = np.full((n, width + 2), np.inf)
    total[:, 1:-1] = c[0]
    moves = np.zeros((h, n, width), np.int8)  # 0 straight on, 1 from the left, 2 from the right
    for y in range(1, h):
        options = np.stack((total[:, 1:-1], total[:, :-2] + step, total[:, 2:] + step))
        moves[y] = options.argmin(axis=0)
        total[:, 1:-1] = np.take_along_axis(options, moves[y][None].astype(np.intp), 0)[0] + c[y]
    j = total[:, 1:-1].argmin(axis=1)
    every = np.arange(n)
    path = np.empty((h, n), np.int64)
    for y in range(h - 1, -1, -1):
        path[y] = j
        j = j + _MOVE[moves[y, every, j]]
    return list(offsets[every[:, None], path.T].astype(np.int32))


_MOVE = np.array([0, -1, 1])  # the column a path came from, for each move of ``cheapest_cuts``


def cut_paths(mask: np.ndarray, height: float, stroke: float) -> list[tuple[np.ndarray, float]]:
    """Return plausible cuts of one piece (``mask``: bool (h, w), its ink) into digits, left
    to right: (the column of the cut in each row, the strokes it goes through).

    Three kinds: vertical cuts at the emptiest columns; drop-falls from the top and from the
    bottom, leaning either way, started in the valleys of the upper and lower outlines;
    and the cheapest path (least ink) in a band around columns spread evenly across the
    piece. A cut keeps ``PART_INK`` of the ink on either side and goes through at most
    ``MAX_CUT_STROKES``; of cuts that split the ink alike the cheapest is kept; the
    cheapest are kept, up to ``CUTS_PER_DIGIT`` per digit the width allows, made not to
    cross.
    """
    h, w = mask.shape
    margin = max(2, round(NARROWEST * height))
    lo, hi = margin, w - margin
    if hi - lo < 1:
        return []
    digits = w / (DIGIT_WIDTH * height)
    starts = min(MAX_STARTS, max(2, round(STARTS_PER_DIGIT * digits)))
    columns, valleys = _starts(mask, lo, hi, starts)
    roll = max(2, round(ROLL * stroke))
    paths = [np.full(h, x, np.int32) for x in columns]
    for from_bottom, xs in enumerate(valleys):
        for x in xs:
            paths += [drop_fall(mask, x, bool(from_bottom), lean, lo, hi, roll) for lean in (-1, 1)]
    band = max(2, round(BAND * height))
    cost = mask.astype(np.float32)
    cost[:, :lo] = cost[:, hi:] = np.inf  # the cut keeps a margin on either side
    spread = np.arange(lo + max(1, round(band / 2)) // 2, hi, max(1, round(band / 2)))  # bands half overlapping
    if spread.size > starts:
        spread = spread[np.linspace(0, spread.size - 1, starts).round().astype(int)]
    paths += cheapest_cuts(cost, spread.tolist(), band)
    rows = np.arange(h)
    # ink left of column x in each row: a path's share of the ink, and the ink two paths
    # assign differently, without a mask per path
    before = np.zeros((h, w + 1), np.int32)
    np.cumsum(mask, axis=1, out=before[:, 1:])
    total = float(before[:, -1].sum())
    scored = []
    for path in {p.tobytes(): p for p in paths}.values():
        left = before[rows, path]
        if not PART_INK * total <= left.sum() <= (1.0 - PART_INK) * total:
            continue
        strokes = _strokes(mask[rows, path], stroke)
        if strokes <= MAX_CUT_STROKES:
            scored.append((strokes, float(path.mean()), path, left))
    scored.sort(key=lambda s: (s[0], s[1]))
    kept: list[tuple[np.ndarray, float, np.ndarray]] = []
    most = min(MAX_CUTS, max(1, round(CUTS_PER_DIGIT * digits)))
    for strokes, _, path, left in scored:
        if len(kept) == most:
            break
        # the ink between two paths, row by row, is what they assign differently
        if all(np.abs(left - other).sum() > SAME_CUT * total for _, _, other in kept):
            kept.append((path, strokes, left))
    kept.sort(key=lambda k: float(k[0].mean()))
    out, previous = [], None
    for path, strokes, _ in kept:
        path = path if previous is None else np.maximum(path, previous)  # cuts never cross
        out.append((path, strokes))
        previous = path
    return out


def _strokes(through: np.ndarray, stroke: float) -> float:
    """Return how many strokes a cut goes through (``through``: bool, whether it is in ink in
    each row): one per run of ink, a run longer than ``RUN_STROKES`` stroke widths counting
    for as many of those lengths (a cut along a stroke is no better than one across several)."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], through.view(np.int8), [0]))))
    lengths = edges[1::2] - edges[::2]
    return float(np.maximum(1.0, lengths / (RUN_STROKES * max(stroke, 1.0))).sum())


def _starts(mask: np.ndarray, lo: int, hi: int, most: int) -> tuple[list[int], tuple[list[int], list[int]]]:
    """Return where cuts start in columns [lo, hi): up to ``most`` local minima of the ink per
    column (emptiest first), and up to ``most`` valleys of the upper outline and of the lower
    outline (deepest first), each 2 px apart from the others of its kind."""
    h = mask.shape[0]
    has = mask.any(axis=0)
    top = np.where(has, mask.argmax(axis=0), h).astype(np.float64)
    bottom = np.where(has, h - 1 - mask[::-1].argmax(axis=0), -1).astype(np.float64)
    columns = np.count_nonzero(mask, axis=0).astype(np.float64)
    out = []
    for values in (columns, -top, bottom):  # minima of each
        window = values[lo - 1:hi + 1]
        inner = window[1:-1]
        minima = lo + np.flatnonzero((inner <= window[:-2]) & (inner <= window[2:]))
        chosen: list[int] = []
        for x in minima[np.argsort(values[minima], kind="stable")].tolist():
            if all(abs(x - c) > 2 for c in chosen):
                chosen.append(x)
                if len(chosen) == most:
                    break
        out.append(sorted(chosen))
    return out[0], (out[1], out[2])


# -- the line's graph of candidates ----------------------------------------------------------------


@dataclass(eq=False)
class _Cut:
    """A boundary between primitives: pixels left of ``xs[y]`` in row y of the line's band are
    left of it. ``strokes``: the ink it goes through (0 between pieces)."""

    xs: np.ndarray
    strokes: float
    gap: float  # the empty width between pieces it lies in (0 for a cut through a piece)
    uid: int = field(default=0)


@dataclass
class _Judgement:
    """One candidate classified: its box (working pixels), input, answer and verdict."""

    box: Box
    digit: np.ndarray  # uint8 (28, 28)
    probs: np.ndarray
    score: float
    verdict: str


class _Line:
    """The line's ink in the rows of its digits, and its cuts and candidates."""

    def __init__(self, ink: np.ndarray, threshold: float, pieces: list[Piece], height: float) -> None:
        self.y0 = min(p.y0 for p in pieces)
        self.y1 = max(p.y1 for p in pieces)
        self.ink = ink[self.y0:self.y1].copy()
        # Only the digit pieces' ink: a mark's, or dust between pieces, never joins a digit.
        keep = np.zeros(ink.shape[1], bool)
        for p in pieces:
            keep[p.x0:p.x1] = True
        self.ink[:, ~keep] = 0.0
        self.mask = self.ink > threshold
        self.threshold = threshold
        self.pieces = pieces
        self.height = height
        self.stroke = stroke_width(self.mask)
        self._piece_cuts: dict[int, list[_Cut]] = {}
        self._uids = 0
        rows = self.y1 - self.y0
        self._gaps = [self._cut(np.full(rows, p.x0, np.int32), 0.0, float(p.x0 - q.x1) if q else 0.0)
                      for p, q in zip(pieces, [None, *pieces[:-1]])]
        self._gaps.append(self._cut(np.full(rows, pieces[-1].x1, np.int32), 0.0, 0.0))

    def _cut(self, xs: np.ndarray, strokes: float, gap: float) -> _Cut:
        self._uids += 1
        return _Cut(xs, strokes, gap, self._uids)

    def cuts(self, split: set[int]) -> list[_Cut]:
        """Return the line's cuts, left to right: its edges, the gaps between pieces, and the
        cuts through the pieces in ``split``."""
        out = []
        for i, p in enumerate(self.pieces):
            out.append(self._gaps[i])
            if i in split:
                if i not in self._piece_cuts:
                    self._piece_cuts[i] = self._cuts_through(p)
                out += self._piece_cuts[i]
        out.append(self._gaps[-1])
        return out

    def _cuts_through(self, p: Piece) -> list[_Cut]:
        """Return the cuts through piece ``p`` (``cut_paths``), as line cuts."""
        top, bottom = p.y0 - self.y0, p.y1 - self.y0
        out = []
        for path, strokes in cut_paths(self.mask[top:bottom, p.x0:p.x1], self.height, self.stroke):
            xs = np.empty(self.y1 - self.y0, np.int32)
            xs[top:bottom] = path + p.x0
            xs[:top], xs[bottom:] = xs[top], xs[bottom - 1]
            out.append(self._cut(xs, strokes, 0.0))
        return out

    def whole(self, i: int) -> tuple[int, int]:
        """Return the key of piece i whole."""
        return self._gaps[i].uid, self._gaps[i + 1].uid

    def spans(self, cuts: list[_Cut]) -> list[tuple[int, int]]:
        """Return the (i, j) index pairs of ``cuts`` between which a digit may lie: one whole
        piece, or at most ``MAX_SPAN`` primitives no wider than ``MAX_WIDTH`` across no gap
        wider than ``JOIN_GAP``."""
        gaps = {c.uid: k for k, c in enumerate(self._gaps)}
        out = []
        for i in range(len(cuts) - 1):
            a = cuts[i]
            whole = self._gaps[gaps[a.uid] + 1] if a.uid in gaps and gaps[a.uid] + 1 < len(self._gaps) else None
            for j in range(i + 1, len(cuts)):
                b, inner = cuts[j], cuts[j - 1]
                if j > i + 1 and inner.uid in gaps and inner.gap > JOIN_GAP * self.height:
                    break
                if b is whole or (j - i <= MAX_SPAN
                                   and int(b.xs.max()) - int(a.xs.min()) <= MAX_WIDTH * self.height):
                    out.append((i, j))
                elif j - i > MAX_SPAN and (whole is None or inner is whole):
                    break  # past the span of a digit, and of its piece
        return out

    def candidates(self, cuts: list[_Cut]) -> dict[tuple[int, int], tuple[_Cut, _Cut]]:
        """Return the candidate digits of ``cuts``: key (uid, uid) -> (left cut, right cut)."""
        return {(cuts[i].uid, cuts[j].uid): (cuts[i], cuts[j]) for i, j in self.spans(cuts)}

    def extract(self, a: _Cut, b: _Cut) -> tuple[Box, np.ndarray] | None:
        """Return the box (line coordinates) and the ink (cropped) of what lies between cuts
        ``a`` and ``b``, or None when it holds no ink worth a digit."""
        lo, hi = int(a.xs.min()), int(b.xs.max())
        if hi - lo < 2:
            return None
        cols = np.arange(lo, hi)
        inside = (cols[None, :] >= a.xs[:, None]) & (cols[None, :] < b.xs[:, None])
        strip = self.mask[:, lo:hi] & inside
        filled = np.flatnonzero(strip.any(axis=0))
        if filled.size < 2:
            return None
        c0, c1 = int(filled[0]), int(filled[-1]) + 1
        r0, r1 = _rows(strip[:, c0:c1])
        if r1 - r0 < 2:
            return None
        crop = self.ink[r0:r1, lo + c0:lo + c1] * inside[r0:r1, c0:c1]
        return (lo + c0, lo + c1, self.y0 + r0, self.y0 + r1), crop


class _Judge:
    """Every candidate classified once, in batches: key -> ``_Judgement`` (None: no ink)."""

    def __init__(self, line: _Line, assess: Assess) -> None:
        self.line, self.assess = line, assess
        self.judged: dict[tuple[int, int], _Judgement | None] = {}

    def __call__(self, candidates: Mapping[tuple[int, int], tuple[_Cut, _Cut]]) -> None:
        """Classify the ``candidates`` not judged yet, in one batch; one lower than a mark is
        no digit (None)."""
        keys, boxes, inputs = [], [], []
        for key, (a, b) in candidates.items():
            if key in self.judged:
                continue
            found = self.line.extract(a, b)
            if found is None or found[0][3] - found[0][2] < MARK_HEIGHT * self.line.height:
                self.judged[key] = None
                continue
            keys.append(key)
            boxes.append(found[0])
            inputs.append(to_mnist(found[1], self.line.threshold))
        if not keys:
            return
        X = np.stack(inputs)
        probs, scores, said = self.assess(scale_pixels(X))
        for i, key in enumerate(keys):
            self.judged[key] = _Judgement(boxes[i], X[i], probs[i], float(scores[i]), said[i])

    def whole(self, i: int) -> _Judgement | None:
        """Return the judgement of piece i read whole (None: not judged, or no digit)."""
        return self.judged.get(self.line.whole(i))


def _doubtful(judgement: _Judgement | None, piece: Piece, height: float) -> bool:
    """Whether a piece read whole may be several digits: not convincingly one digit, or a 1
    too wide for one."""
    if judgement is None:
        return True
    p = judgement.probs
    k = int(p.argmax())
    return float(p[k]) * max(judgement.score, 1e-6) < CONVINCING or (k == 1 and piece.width > ONE_WIDTH * height)


def _candidate_score(j: _Judgement, height: float, s: Scoring, cut: bool = False) -> float:
    """Return the log-score of one candidate digit (``Scoring``); ``cut``: a cut through ink
    bounds it."""
    k = int(j.probs.argmax())
    x0, x1, y0, y1 = j.box
    w, h = (x1 - x0) / height, (y1 - y0) / height
    value = math.log(max(float(j.probs[k]), 1e-12)) + s.score_weight * math.log(max(j.score, s.score_floor))
    mean, sd = DIGIT_ASPECTS[k] if k < len(DIGIT_ASPECTS) else (0.0, 1.0)
    z = abs(math.log(w / h) - mean) / sd
    value += s.digit_bonus - s.aspect_weight * max(0.0, z - s.aspect_free) ** 2 / 2
    value -= s.wide_penalty * max(0.0, w - s.wide) + s.short_penalty * max(0.0, s.short - h)
    return value - (s.cut_one if cut and k == 1 else 0.0)


def _choose(line: _Line, cuts: list[_Cut], judge: _Judge, scoring: Scoring) -> list[_Judgement]:
    """Return the judgements of the best segmentation of the line (``best_segmentation``)."""
    edges = {}
    for i, j in line.spans(cuts):
        judgement = judge.judged.get((cuts[i].uid, cuts[j].uid))
        if judgement is not None:
            cut = bool(cuts[i].strokes or cuts[j].strokes)
            edges[(i, j)] = _candidate_score(judgement, line.height, scoring, cut)
    costs = [scoring.cut_cost * c.strokes + (scoring.cut_fixed if c.strokes else 0.0) for c in cuts]
    path = best_segmentation(len(cuts) - 1, edges, costs)
    if not path:
        raise MarksOnly("no digit found: the ink does not read as digits")
    return [judge.judged[(cuts[i].uid, cuts[j].uid)] for i, j in path]


def best_segmentation(n: int, edges: Mapping[tuple[int, int], float], node_costs: Sequence[float]
                      ) -> list[tuple[int, int]]:
    """Return the path from node 0 to node ``n`` with the highest score: the sum of its edges'
    scores (``edges``: (i, j) with i < j -> score) less the cost of every node it passes
    through (``node_costs[i]``; the ends cost nothing). Empty when no path reaches ``n``.

    A dynamic program over the nodes in order (the graph is acyclic: edges go left to right).
    """
    incoming: dict[int, list[tuple[int, float]]] = {}
    for (i, j), score in edges.items():
        incoming.setdefault(j, []).append((i, score))
    best = [-math.inf] * (n + 1)
    back = [-1] * (n + 1)
    best[0] = 0.0
    for j in range(1, n + 1):
        for i, score in incoming.get(j, ()):
            if best[i] == -math.inf:
                continue
            value = best[i] + score - (node_costs[i] if i else 0.0)
            if value > best[j]:
                best[j], back[j] = value, i
    if best[n] == -math.inf:
        return []
    path, j = [], n
    while j:
        path.append((back[j], j))
        j = back[j]
    return path[::-1]


# -- boxes in the upload ---------------------------------------------------------------------------


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
