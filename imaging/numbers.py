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
    cut_paths      over-segmentation (``imaging.cuts``): a piece that may hold several digits is cut
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

About 560 lines, kept together: finding the pieces, the candidates, their
judgement and the choice all work on the one ``_Line`` a reading builds; the
cut paths, which need none of it, are ``imaging.cuts``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from model.data import scale_pixels

from .cuts import cut_paths
from .kernels import image_of, otsu, stroke_width
from .decode import ImageError, decode_image
from .preprocessing import ink_map, to_mnist

__all__ = ["READ_SIDE", "MarksOnly", "Reading", "Scoring", "TooManyDigits", "best_segmentation", "read", "read_image"]

READ_SIDE = 480  # a line of digits is analysed at about this many pixels on its long side
MARK_HEIGHT = 0.4  # a piece under this share of the digits' height is a mark, not a digit
SPECK_SHARE = 0.02  # ink with less than this share of its piece's (or the line's inkiest piece's) is dust
TILT_MIN, TILT_MAX = 2.0, 20.0  # degrees: a line tilted within this range is turned level

# Over-segmentation (shares of the line's digit height); how a piece is cut: ``imaging.cuts``
SURE_SPLIT = 1.1  # a piece wider than this is cut at once (two digits, or a slanted line)
CONVINCING = 0.9  # a narrower piece read as one digit this strongly (probability x digit score)...
ONE_WIDTH = 0.45  # ...is not cut, unless it reads as a 1 wider than this (a touching "11", "17")
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
    boxes in the upload's pixels) in reading order, and the marks left out; ``answered``, the
    same digits as arrays, for recording: uint8 inputs (n, 28, 28), probabilities (n, k),
    float32 digit scores (n,) and verdicts."""

    digits: list[dict]
    marks: list[dict]
    answered: tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]

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
    digits, left_out, answered = [], [], []
    for judgement in chosen:
        p, k = judgement.probs, int(judgement.probs.argmax())
        entry = {"label": labels[k], "predicted_class": k, "confidence": float(p[k]),
                 "probabilities": p.tolist(), "box": to_upload(judgement.box), "digit_score": judgement.score,
                 "verdict": judgement.verdict, "input": judgement.digit}
        if judgement.verdict == "not_a_digit":
            left_out.append(entry)
        else:
            digits.append(entry)
            answered.append(judgement)
    marks_out = [{"box": to_upload((m.x0, m.x1, m.y0, m.y1)), "kind": "mark"} for m in marks]
    marks_out += [{"box": d["box"], "kind": "not_a_digit", "digit_score": d["digit_score"]} for d in left_out]
    marks_out.sort(key=lambda m: m["box"][0])
    if not digits:
        raise MarksOnly("no digit found: the ink does not read as digits"
                        + (f" ({len(marks_out)} marks that are not digits)" if marks_out else ""))
    return Reading(digits=digits, marks=marks_out,
                   answered=(np.stack([j.digit for j in answered]), np.stack([j.probs for j in answered]),
                             np.array([j.score for j in answered], np.float32), [j.verdict for j in answered]))


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
