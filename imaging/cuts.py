"""Cutting one piece of ink that may hold several touching digits: paths that follow the ink.

    cut_paths(mask, height, stroke) -> plausible cuts, left to right, with the strokes each goes through
    drop_fall(mask, x, ...)         -> the path of a drop falling through the ink from column x
    cheapest_cuts(cost, starts, band) -> the paths of least ink in a band around each start column

Used by ``imaging.numbers`` to over-segment a line of digits; the cuts are
candidates, and recognition chooses among them. Lengths are shares of the
line's digit height unless said otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["cheapest_cuts", "cut_paths", "drop_fall"]

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
    return _fall((mask[::-1] if from_bottom else mask).tolist(), x, from_bottom, lean, lo, hi, roll)


def _fall(rows: list[list[bool]], x: int, from_bottom: bool, lean: int, lo: int, hi: int | None,
          roll: int | None) -> np.ndarray:
    """``drop_fall`` on the mask's rows as lists (upside down ``from_bottom``), which
    ``cut_paths`` makes once for all its drops."""
    h, w = len(rows), len(rows[0])
    hi = w if hi is None else min(hi, w)
    lo = max(lo, 0)
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
        mask_rows = (mask[::-1] if from_bottom else mask).tolist() if len(xs) else []
        for x in xs:
            paths += [_fall(mask_rows, x, bool(from_bottom), lean, lo, hi, roll) for lean in (-1, 1)]
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
