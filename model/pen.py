"""The pen: strokes as polylines, a hand's style, and rendering them in MNIST's form.

The primitives every stroke-drawn image is made of (``strokes.py``'s digits,
``negatives.py``'s letters, symbols and doodles), so that how an image is
drawn never tells the network what it is:

    line, arc, join          polylines in a box about one unit tall (x to the right, y down)
    style(strokes, rng)      a particular hand: wobble, slant, rotation, aspect, joined or rounded
    random_pen(rng)          a pen: width 1.3-3.6 MNIST pixels, round tip or flat nib, pressure
    render(strokes, ...)     anti-aliased ink scaled so its longer side is 20 px, centred by mass
    rasterize(canvas, ...)   pen dabs into a canvas (also used to edit MNIST digits)

NumPy only.
"""

from __future__ import annotations

import numpy as np

from .mnistform import to_mnist_form

__all__ = ["DOT_SPACING", "Digit", "PEN_WIDTH", "SEGMENT", "Stroke", "arc", "dabs", "join", "line",
           "random_pen", "rasterize", "render", "resample", "round_corners", "style", "uniform"]

Stroke = np.ndarray  # (m, 2) points, x then y
Digit = list[Stroke]

SEGMENT = 0.03  # strokes are resampled to points this far apart before styling (digit heights)
# Pen widths in MNIST pixels (MNIST's own strokes are 1.2-2.9 px wide, 5th-95th percentile).
PEN_WIDTH = (1.3, 3.6)


# -- stroke primitives ---------------------------------------------------------------


def line(p0, p1) -> Stroke:
    return np.array([p0, p1], dtype=np.float64)


def arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float) -> Stroke:
    """Return points on an ellipse from angle ``a0`` to ``a1`` (degrees; 0 = right,
    90 = down, since y points down: increasing angles turn clockwise on screen)."""
    n = max(4, int(abs(a1 - a0) / 10))
    t = np.deg2rad(np.linspace(a0, a1, n))
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def join(*parts) -> Stroke:
    """Return one stroke through all ``parts`` (arrays or points), in order."""
    return np.concatenate([np.atleast_2d(np.asarray(p, dtype=np.float64)) for p in parts])


def uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def resample(stroke: Stroke, step: float = SEGMENT) -> Stroke:
    """Return ``stroke`` with points every ``step`` units along its length (at least two)."""
    seg = np.linalg.norm(np.diff(stroke, axis=0), axis=1)
    along = np.concatenate([[0.0], np.cumsum(seg)])
    if along[-1] <= 0:
        return stroke[[0, -1]]
    t = np.linspace(0.0, along[-1], max(2, int(np.ceil(along[-1] / step)) + 1))
    return np.stack([np.interp(t, along, stroke[:, 0]), np.interp(t, along, stroke[:, 1])], axis=1)


def round_corners(stroke: Stroke, passes: int) -> Stroke:
    """Return ``stroke`` with its corners cut: each segment replaced by points at 1/4 and 3/4."""
    for _ in range(passes):
        if len(stroke) < 3:
            return stroke
        a, b = stroke[:-1], stroke[1:]
        cut = np.stack([0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b], axis=1).reshape(-1, 2)
        stroke = np.concatenate([stroke[:1], cut, stroke[-1:]])
    return stroke


def style(digit: Digit, rng: np.random.Generator) -> Digit:
    """Return ``digit`` as a particular hand would write it: wobbly, slanted, turned, narrowed."""
    slant = uniform(rng, -0.1, 0.45) if rng.random() < 0.85 else uniform(rng, -0.25, -0.1)  # mostly rightward
    angle = np.deg2rad(uniform(rng, -8, 8))
    aspect = float(np.exp(uniform(rng, -0.35, 0.2)))
    c, s = np.cos(angle), np.sin(angle)
    # About the middle of the box: shear (y points down, so x - slant * y leans the top right),
    # then narrow or widen, then turn.
    A = np.array([[c, -s], [s, c]]) @ np.diag([aspect, 1.0]) @ np.array([[1.0, -slant], [0.0, 1.0]])
    wobble = rng.normal(0.0, 0.025, (2, 3))  # a smooth displacement: x, y and x*y terms
    # A hand that never lifts the pen: the strokes joined into one, each end to the next start.
    if len(digit) > 1 and rng.random() < 0.2:
        digit = [np.concatenate(digit)]
    # A rounded hand: corners cut (Chaikin's scheme, twice), so a flag meets its stem in a curve.
    if rng.random() < 0.3:
        digit = [round_corners(stroke, 2) for stroke in digit]
    # A quick hand, or a canvas that samples the pointer rarely: straight lines between
    # positions 0.15-0.35 of the digit's height apart.
    sparse = uniform(rng, 0.15, 0.35) if rng.random() < 0.2 else None
    out = []
    for stroke in digit:
        pts = resample(stroke, sparse or SEGMENT)
        if sparse:
            pts = resample(pts)
        pts = pts - (0.3, 0.5)
        pts += rng.normal(0.0, 0.004, pts.shape)
        x, y = pts[:, 0], pts[:, 1]
        pts += (wobble @ np.stack([x, y, x * y])).T
        out.append(pts @ A.T)
    return out


# -- rendering ---------------------------------------------------------------------------

DOT_SPACING = 0.3  # strokes are rasterised as pen dabs this far apart (pixels)


def dabs(strokes: Digit) -> np.ndarray:
    """Return (k, 2) points every ``DOT_SPACING`` pixels along every stroke (pixel units)."""
    return np.concatenate([resample(stroke, DOT_SPACING) for stroke in strokes])


def rasterize(canvas: np.ndarray, points: np.ndarray, width: float,
               nib: tuple[float, float] = (1.0, 0.0), level: float = 255.0) -> np.ndarray:
    """Draw pen dabs at ``points`` (x, y in pixels) into ``canvas``, keeping the brighter value.

    Each dab covers the pixels whose centres lie within ``width / 2`` of it,
    with a one-pixel linear ramp at the edge (anti-aliasing). A flat nib
    measures distance in its own metric: across its angle, ``aspect`` times
    more, so lines drawn along the nib come out thin.
    """
    h, w = canvas.shape
    r = int(np.ceil(width / 2)) + 1
    oy, ox = np.mgrid[-r:r + 1, -r:r + 1]
    base = np.floor(points).astype(np.intp)  # the pixel each dab is in
    px = base[:, None, 0] + ox.ravel()[None]  # (k, window) candidate pixels
    py = base[:, None, 1] + oy.ravel()[None]
    dx = px + 0.5 - points[:, None, 0]
    dy = py + 0.5 - points[:, None, 1]
    aspect, angle = nib
    if aspect != 1.0:
        c, s = np.cos(angle), np.sin(angle)
        dx, dy = c * dx + s * dy, aspect * (c * dy - s * dx)
    value = np.clip(width / 2 - np.sqrt(dx * dx + dy * dy) + 0.5, 0.0, 1.0) * level
    inside = (px >= 0) & (px < w) & (py >= 0) & (py < h) & (value > 0)
    np.maximum.at(canvas.ravel(), (py * w + px)[inside], value[inside])
    return canvas


def render(strokes: Digit, width: float, nib: tuple[float, float] = (1.0, 0.0),
           pressure: float = 1.0) -> np.ndarray:
    """Return ``strokes`` drawn in MNIST's form: uint8 (28, 28), white on black.

    Parameters
    ----------
    width : pen width in MNIST pixels (the digit's longer side is 20 px).
    nib : (aspect >= 1, angle in radians) of the pen tip; (1, 0) is a round
        tip, a larger aspect a flat nib whose lines are thin along its angle.
    pressure : ink level of the stroke's core, in (0, 1].
    """
    pts = np.concatenate(strokes)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    extent = float(max(hi - lo)) or 1.0
    scale = (20.0 - width) / extent  # the ink, pen width included, spans about 20 px
    margin = width / 2 + 1
    size = np.ceil((hi - lo) * scale + 2 * margin).astype(int) + 1
    canvas = np.zeros((size[1], size[0]))
    placed = [(stroke - lo) * scale + margin for stroke in strokes]
    rasterize(canvas, dabs(placed), width, nib, 255.0 * pressure)
    return to_mnist_form(canvas)


def random_pen(rng: np.random.Generator) -> tuple[float, tuple[float, float], float]:
    """Return a random pen: (width px, nib, pressure)."""
    width = float(np.exp(rng.uniform(np.log(PEN_WIDTH[0]), np.log(PEN_WIDTH[1]))))
    nib = (1.0, 0.0) if rng.random() < 0.7 else (uniform(rng, 1.5, 3.0), uniform(rng, 0.3, 1.2))
    pressure = uniform(rng, 0.9, 1.0)  # uploads are contrast-stretched: strokes end near full ink
    return width, nib, pressure
