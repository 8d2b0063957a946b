"""Things that are not digits, for training the network to say so (outlier exposure).

A service that returns probabilities for any image must also say when an
image is not a digit at all. This module makes training examples of that:
letters and symbols, doodles and scribbles drawn from generated strokes, with
the same pens, slants and wobble as ``strokes.py``'s digits (so that how an
image is drawn never tells the network what it is), and Fashion-MNIST's
training images of clothes, two training digits side by side (a
number is not *a* digit: ``/v1/read`` reads it) and fragments of training
digits (a digit with part of its neighbour: what a misplaced cut through a
number leaves, so that ``/v1/read``'s search scores such a cut low). Letters and marks that are digits by shape (O, I,
l, S, Z, B, b, g, q; "!", whose dot vanishes at 28 pixels) are left out: a
writer's O and 0 are the same picture.

    draw_negative(rng, kind=None)     -> uint8 (28, 28) in MNIST's form
    digit_pairs(digits, n, rng)       -> uint8 (n, 28, 28): two digits each, in MNIST's form
    digit_fragments(digits, n, rng)   -> uint8 (n, 28, 28): a digit and part of its neighbour
    negative_set(...)                 -> a shuffled mix of all three
    NEGATIVE_KINDS                    the drawn kinds, each a function of the generator

NumPy only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .mnistform import to_mnist_form
from .pen import Digit, arc, join, line, random_pen, render, round_corners, style, uniform

__all__ = ["NEGATIVE_KINDS", "NEGATIVE_NAMES", "digit_fragments", "digit_pairs", "draw_negative", "negative_set"]


# -- letters (upper case, then lower case), in a box one unit tall ------------------------


def _A(r):
    apex = (uniform(r, 0.25, 0.35), 0.0)
    left, right = (0.0, 1.0), (0.6, 1.0)
    bar = uniform(r, 0.55, 0.7)
    return [join(left, apex, right), line((0.12, bar), (0.48, bar))]


def _C(r):
    return [arc(0.35, 0.5, 0.33, 0.5, uniform(r, -50, -30), uniform(r, -330, -310))]


def _D(r):
    return [join((0.05, 0.0), (0.05, 1.0)), join((0.05, 0.0), arc(0.1, 0.5, 0.45, 0.5, -90, 90), (0.05, 1.0))]


def _E(r):
    mid = uniform(r, 0.45, 0.55)
    return [join((0.55, 0.0), (0.05, 0.0), (0.05, 1.0), (0.55, 1.0)), line((0.05, mid), (0.45, mid))]


def _F(r):
    mid = uniform(r, 0.45, 0.55)
    return [join((0.55, 0.0), (0.05, 0.0), (0.05, 1.0)), line((0.05, mid), (0.42, mid))]


def _H(r):
    mid = uniform(r, 0.45, 0.55)
    return [line((0.0, 0.0), (0.0, 1.0)), line((0.55, 0.0), (0.55, 1.0)), line((0.0, mid), (0.55, mid))]


def _J(r):
    return [join((0.2, 0.0), (0.6, 0.0)), join((0.45, 0.0), (0.45, 0.75), arc(0.25, 0.75, 0.2, 0.25, 0, 160))]


def _K(r):
    joint = (0.05, uniform(r, 0.45, 0.6))
    return [line((0.05, 0.0), (0.05, 1.0)), join((0.55, 0.0), joint, (0.6, 1.0))]


def _L(r):
    return [join((0.05, 0.0), (0.05, 1.0), (uniform(r, 0.45, 0.6), 1.0))]


def _M(r):
    return [join((0.0, 1.0), (0.05, 0.0), (0.35, uniform(r, 0.5, 0.8)), (0.65, 0.0), (0.7, 1.0))]


def _N(r):
    return [join((0.0, 1.0), (0.0, 0.0), (0.55, 1.0), (0.55, 0.0))]


def _P(r):
    return [join((0.05, 1.0), (0.05, 0.0), arc(0.1, 0.27, 0.38, 0.27, -90, 90), (0.05, 0.54))]


def _R(r):
    return [join((0.05, 1.0), (0.05, 0.0), arc(0.1, 0.27, 0.38, 0.27, -90, 90), (0.05, 0.54), (0.55, 1.0))]


def _T(r):
    return [line((0.0, 0.0), (0.6, 0.0)), line((0.3, 0.0), (uniform(r, 0.27, 0.33), 1.0))]


def _U(r):
    return [join((0.0, 0.0), arc(0.3, 0.65, 0.3, 0.35, 180, 0), (0.6, 0.0))]


def _V(r):
    return [join((0.0, 0.0), (uniform(r, 0.25, 0.35), 1.0), (0.6, 0.0))]


def _W(r):
    return [join((0.0, 0.0), (0.18, 1.0), (0.35, uniform(r, 0.3, 0.5)), (0.52, 1.0), (0.7, 0.0))]


def _X(r):
    return [line((0.0, 0.0), (0.6, 1.0)), line((0.6, 0.0), (0.0, 1.0))]


def _Y(r):
    fork = (0.3, uniform(r, 0.4, 0.55))
    return [join((0.0, 0.0), fork, (0.6, 0.0)), line(fork, (0.3, 1.0))]


def _a(r):  # a closed bowl with a stem on the right: "a" (not "d", whose stem rises higher)
    return [arc(0.28, 0.68, 0.25, 0.3, -20, 340), line((0.53, 0.4), (0.55, 1.0))]


def _e(r):
    return [join((0.05, 0.62), (0.55, 0.62), arc(0.3, 0.65, 0.27, 0.33, 0, -300))]


def _h(r):
    return [line((0.05, 0.0), (0.05, 1.0)), join(arc(0.3, 0.62, 0.25, 0.25, 180, 360), (0.55, 1.0))]


def _m(r):
    return [join((0.0, 1.0), (0.0, 0.4), arc(0.18, 0.55, 0.18, 0.18, 180, 360), (0.36, 1.0)),
            join((0.36, 0.55), arc(0.54, 0.55, 0.18, 0.18, 180, 360), (0.72, 1.0))]


def _n(r):
    return [join((0.0, 1.0), (0.0, 0.4), arc(0.27, 0.6, 0.27, 0.22, 180, 360), (0.54, 1.0))]


def _r(r):
    return [join((0.0, 1.0), (0.0, 0.35)), join((0.0, 0.6), arc(0.25, 0.6, 0.25, 0.2, 180, 300))]


def _u_(r):
    return [join((0.0, 0.35), arc(0.25, 0.75, 0.25, 0.25, 180, 0), (0.5, 0.35)), line((0.5, 0.35), (0.52, 1.0))]


def _x_(r):
    return [line((0.0, 0.35), (0.5, 1.0)), line((0.5, 0.35), (0.0, 1.0))]


def _y_(r):
    return [line((0.0, 0.3), (0.3, 0.75)), line((0.55, 0.3), (0.15, 1.3))]


# -- symbols and marks -------------------------------------------------------------------------


def _plus(r):
    return [line((0.0, 0.5), (1.0, 0.5)), line((0.5, 0.0), (0.5, 1.0))]


def _equals(r):
    return [line((0.0, 0.35), (1.0, 0.35)), line((0.0, 0.65), (1.0, 0.65))]


def _hash(r):
    return [line((0.3, 0.0), (0.2, 1.0)), line((0.7, 0.0), (0.6, 1.0)),
            line((0.0, 0.33), (0.9, 0.33)), line((0.0, 0.67), (0.9, 0.67))]


def _percent(r):
    return [arc(0.15, 0.15, 0.15, 0.15, 0, 360), line((0.9, 0.0), (0.1, 1.0)), arc(0.85, 0.85, 0.15, 0.15, 0, 360)]


def _question(r):
    return [join(arc(0.3, 0.25, 0.3, 0.25, 180, 400), (0.3, 0.7)), arc(0.3, 0.95, 0.03, 0.03, 0, 360)]


def _check(r):
    return [join((0.0, 0.55), (0.35, 1.0), (1.0, 0.0))]


def _arrow(r):
    return [line((0.0, 0.5), (1.0, 0.5)), join((0.7, 0.25), (1.0, 0.5), (0.7, 0.75))]


def _star(r):
    pts = [(0.5 + 0.5 * np.cos(np.deg2rad(-90 + 144 * k)), 0.5 + 0.5 * np.sin(np.deg2rad(-90 + 144 * k)))
           for k in range(6)]
    return [join(*pts)]


def _smiley(r):
    return [arc(0.5, 0.5, 0.5, 0.5, 0, 360), arc(0.33, 0.35, 0.05, 0.05, 0, 360),
            arc(0.67, 0.35, 0.05, 0.05, 0, 360), arc(0.5, 0.55, 0.27, 0.22, 20, 160)]


def _heart(r):
    left = arc(0.27, 0.3, 0.25, 0.25, 150, 360)
    right = arc(0.73, 0.3, 0.25, 0.25, 180, 390)
    return [join((0.5, 1.0), left, right, (0.5, 1.0))]


def _spiral(r):
    t = np.linspace(0, uniform(r, 3, 5) * np.pi, 80)
    radius = 0.05 + 0.45 * t / t[-1]
    return [np.stack([0.5 + radius * np.cos(t), 0.5 + radius * np.sin(t)], axis=1)]


def _box(r):
    return [join((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0), (0.0, 0.0))]


def _triangle(r):
    return [join((0.5, 0.0), (1.0, 1.0), (0.0, 1.0), (0.5, 0.0))]


def _scribble(r):
    """A random smooth curve: a random walk of 6-12 points, corners rounded."""
    n = int(r.integers(6, 13))
    pts = np.cumsum(r.normal(0.0, 0.35, (n, 2)), axis=0)
    return [round_corners(pts, 3)]


def _hatching(r):
    """Several parallel strokes, as when a box is shaded or a word crossed out."""
    k = int(r.integers(3, 7))
    tilt = uniform(r, -0.5, 0.5)
    return [line((0.0, i / k), (1.0, i / k + tilt)) for i in range(k)]


Kind = Callable[[np.random.Generator], Digit]
NEGATIVE_KINDS: dict[str, tuple[float, Kind]] = {
    **{f"letter/{name}": (1.0, f) for name, f in {
        "A": _A, "C": _C, "D": _D, "E": _E, "F": _F, "H": _H, "J": _J, "K": _K, "L": _L, "M": _M, "N": _N,
        "P": _P, "R": _R, "T": _T, "U": _U, "V": _V, "W": _W, "X": _X, "Y": _Y, "a": _a, "e": _e,
        "h": _h, "m": _m, "n": _n, "r": _r, "u": _u_, "x": _x_, "y": _y_}.items()},
    **{f"symbol/{name}": (1.0, f) for name, f in {
        "plus": _plus, "equals": _equals, "hash": _hash, "percent": _percent, "question": _question,
        "check": _check, "arrow": _arrow}.items()},
    **{f"doodle/{name}": (1.0, f) for name, f in {
        "star": _star, "smiley": _smiley, "heart": _heart, "spiral": _spiral, "box": _box,
        "triangle": _triangle}.items()},
    "scribble": (4.0, _scribble),
    "hatching": (2.0, _hatching),
}
NEGATIVE_NAMES = list(NEGATIVE_KINDS)


def draw_negative(rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """Return one stroke-drawn non-digit, uint8 (28, 28) in MNIST's form."""
    if kind is None:
        weights = np.array([w for w, _ in NEGATIVE_KINDS.values()])
        kind = NEGATIVE_NAMES[int(rng.choice(len(weights), p=weights / weights.sum()))]
    width, nib, pressure = random_pen(rng)
    return render(style(NEGATIVE_KINDS[kind][1](rng), rng), width, nib, pressure)


def digit_pairs(digits: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Return ``n`` images of two random ``digits`` (uint8 (m, 28, 28)) written side by side,
    0-4 pixels apart and up to 3 pixels out of line, put into MNIST's form as one drawing."""
    out = np.empty((n, 28, 28), np.uint8)
    for i in range(n):
        left, right = (_ink_box(digits[j]) for j in rng.choice(len(digits), 2, replace=False))
        gap, drop = int(rng.integers(0, 5)), int(rng.integers(-3, 4))
        h = max(left.shape[0], right.shape[0] + abs(drop)) + abs(drop)
        canvas = np.zeros((h, left.shape[1] + gap + right.shape[1]), np.float64)
        top = abs(drop)
        canvas[top:top + left.shape[0], :left.shape[1]] = left
        r0 = top + drop
        region = canvas[r0:r0 + right.shape[0], left.shape[1] + gap:]
        np.maximum(region, right, out=region)
        out[i] = to_mnist_form(canvas)
    return out


# Fragments: what a cut through a written number leaves when it falls late, a digit with the
# near part of its neighbour still attached (this share of the neighbour's width). A digit's
# own left or right part is no fragment here: too many are digits by shape (an 8's right half
# is a 3, a 4's a 1), which the network must not learn to reject.
NEIGHBOUR_SHARE = (0.25, 0.5)


def digit_fragments(digits: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Return ``n`` pieces of ``digits`` (uint8 (m, 28, 28), MNIST training digits) that a
    misplaced cut through a handwritten number gives: a digit with ``NEIGHBOUR_SHARE`` of the
    next (or previous) one still attached, 0-2 pixels apart, in MNIST's form."""
    out = np.empty((n, 28, 28), np.uint8)
    for i in range(n):
        main, other = (_ink_box(digits[j]) for j in rng.choice(len(digits), 2, replace=False))
        k = max(2, int(round(other.shape[1] * rng.uniform(*NEIGHBOUR_SHARE))))
        right = rng.random() < 0.5  # the neighbour's left part on the right, or its right part on the left
        sliver = other[:, :k] if right else other[:, -k:]
        gap = int(rng.integers(0, 3))
        canvas = np.zeros((max(main.shape[0], sliver.shape[0]), main.shape[1] + gap + k), np.float64)
        mx, sx = (0, main.shape[1] + gap) if right else (k + gap, 0)
        canvas[:main.shape[0], mx:mx + main.shape[1]] = main
        region = canvas[:sliver.shape[0], sx:sx + k]
        np.maximum(region, sliver, out=region)
        out[i] = to_mnist_form(canvas)
    return out


def _ink_box(digit: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
    return digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float64)


def negative_set(n_drawn: int, clothes: np.ndarray | None, n_clothes: int, digits: np.ndarray | None,
                 n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """Return ``n_drawn`` stroke-drawn non-digits, ``n_clothes`` images picked from ``clothes``
    (Fashion-MNIST training images, uint8 (n, 28, 28)) and ``n_pairs`` pairs of ``digits``
    (MNIST training digits), shuffled together."""
    parts = [np.stack([draw_negative(rng) for _ in range(n_drawn)]) if n_drawn else np.zeros((0, 28, 28), np.uint8)]
    if clothes is not None and n_clothes:
        parts.append(clothes[rng.choice(len(clothes), min(n_clothes, len(clothes)), replace=False)])
    if digits is not None and n_pairs:
        parts.append(digit_pairs(digits, n_pairs, rng))
    out = np.concatenate(parts)
    return out[rng.permutation(len(out))]
