"""Digits drawn from generated pen strokes: the ways of writing MNIST lacks.

MNIST's writers were American census staff and students. Elsewhere people
write a continental 1 with a long flag and often a foot, a 7 with a crossbar,
an open-top 4, a 2 with a loop, narrow 0s, slanted 8s with a thin waist. This
module draws such digits from scratch, and edits MNIST training digits the
same way, so that training covers them. Nothing here reads any image that is
not an MNIST training digit (see the README's data policy).

A digit is a list of *strokes*, each a polyline of points in a box about one
unit tall (x to the right, y down). ``ALLOGRAPHS`` holds, per digit, the
shapes people use (``"1/flag_foot"``, ``"4/open"``...), each a function of
the random generator that returns strokes with its own random proportions.
``draw`` then jitters the points, applies a random slant, rotation and aspect
ratio, and renders the strokes with a random pen: a round tip or a flat
(calligraphic) nib, 1.3 to 3.6 pixels wide at MNIST scale. The rendering is
an anti-aliased distance field, scaled so the longer side of the ink is 20
pixels and centred by mass exactly as MNIST (``mnistform``).

    synthesize(n, rng)                  -> uint8 (n, 28, 28), labels (n,)
    edit_mnist(images, labels, rng)     -> flags and feet on 1s, crossbars on 7s
    extend_training_set(...)            -> MNIST plus both, as ``train.py`` trains

NumPy only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .mnistform import FIELD, to_mnist_form
from .pen import (DOT_SPACING, Digit, Stroke, arc, join, line, random_pen, rasterize, render, resample, style,
                  uniform)

__all__ = ["ALLOGRAPHS", "Digit", "draw", "edit_mnist", "extend_training_set", "render", "synthesize"]

# -- the allographs: one function per way of writing a digit -----------------------------


def _zero(rng, narrow=False) -> Digit:
    rx = uniform(rng, 0.12, 0.2) if narrow else uniform(rng, 0.22, 0.34)
    ry = uniform(rng, 0.44, 0.5)
    start = uniform(rng, -130, -60)
    loop = arc(0.35, 0.5, rx, ry, start, start + uniform(rng, 345, 390))
    return [loop]


def _one(rng, flag=0.0, foot=False, lead_in=False) -> Digit:
    top, bottom = (uniform(rng, 0.28, 0.36), 0.0), (uniform(rng, 0.26, 0.34), 1.0)
    strokes = []
    if flag:
        # Below the horizontal, to the left. A long flag is steep: drawn flat it would be a
        # 7's bar (a 7 that a writer meant as a 1 is noise in the labels, not a style). A
        # lead-in is the pen's run up from below, most of the digit's height, steeper still.
        angle = np.deg2rad(uniform(rng, 45, 72) if lead_in else uniform(rng, 25, 60) if flag < 0.3 else uniform(rng, 38, 62))
        start = (top[0] - flag * np.cos(angle), top[1] + flag * np.sin(angle))
        strokes.append(join(start, top, bottom))
    else:
        strokes.append(line(top, bottom))
    if foot:
        half = uniform(rng, 0.12, 0.24)
        strokes.append(line((bottom[0] - half, 1.0), (bottom[0] + half * uniform(rng, 0.8, 1.2), 1.0)))
    return strokes


def _two(rng, style="plain") -> Digit:
    r = uniform(rng, 0.22, 0.3)
    cx, cy = 0.3, r + 0.02
    top = arc(cx, cy, r, r * uniform(rng, 0.9, 1.2), uniform(rng, 160, 200), uniform(rng, 350, 390))
    corner = (uniform(rng, 0.0, 0.08), 1.0)
    end = (uniform(rng, 0.55, 0.7), uniform(rng, 0.97, 1.03))
    if style == "z":
        top = join((0.05, 0.02), (0.58, 0.02))
        return [join(top, corner, end)]
    if style == "loop":
        loop = arc(corner[0] + 0.08, 0.9, 0.08, 0.08, -90, 200)
        return [join(top, (corner[0] + 0.1, 0.8), loop, end)]
    return [join(top, corner, end)]


def _three(rng, flat_top=False) -> Digit:
    lower = arc(0.3, 0.72, uniform(rng, 0.22, 0.3), 0.27, -90, uniform(rng, 140, 170))
    if flat_top:
        upper = join((0.05, 0.0), (0.55, 0.0), (0.22, 0.42))
        return [join(upper, lower[1:])]
    upper = arc(0.3, 0.24, uniform(rng, 0.18, 0.26), 0.23, uniform(rng, 190, 220), 450)
    return [join(upper, lower)]


def _four(rng, open_top=False) -> Digit:
    bar = uniform(rng, 0.55, 0.72)
    stem_x = uniform(rng, 0.38, 0.5)
    stem = line((stem_x, uniform(rng, 0.0, 0.25) if not open_top else 0.0), (stem_x, 1.0))
    if open_top:
        left = uniform(rng, 0.0, 0.08)
        return [join((left + uniform(rng, 0.0, 0.06), 0.0), (left, bar), (uniform(rng, 0.6, 0.72), bar)), stem]
    return [join((stem_x, 0.0), (0.0, bar), (uniform(rng, 0.6, 0.72), bar)), stem]


def _four_one_stroke(rng) -> Digit:
    """The 4 written without lifting the pen: down, across, up to the stem's top, down it."""
    bar = uniform(rng, 0.55, 0.7)
    stem_x = uniform(rng, 0.4, 0.5)
    return [join((uniform(rng, 0.0, 0.1), 0.0), (0.0, bar), (uniform(rng, 0.6, 0.72), bar),
                  (stem_x + uniform(rng, 0.0, 0.08), uniform(rng, 0.0, 0.15)), (stem_x, 1.0))]


def _five_one_stroke(rng) -> Digit:
    """The 5 written in one stroke: the top bar right to left, then down and round the belly."""
    x0 = uniform(rng, 0.05, 0.15)
    belly = arc(0.28, 0.68, uniform(rng, 0.22, 0.3), uniform(rng, 0.26, 0.32), -150, uniform(rng, 130, 160))
    return [join((uniform(rng, 0.5, 0.62), -0.02), (x0, 0.0), (x0 - 0.03, 0.45), belly)]


def _five(rng, detached=False) -> Digit:
    x0 = uniform(rng, 0.05, 0.15)
    belly = arc(0.28, 0.68, uniform(rng, 0.22, 0.3), uniform(rng, 0.26, 0.32), -150, uniform(rng, 130, 160))
    body = join((x0, 0.02), (x0 - 0.03, 0.45), belly)
    bar = line((x0 + (uniform(rng, 0.02, 0.08) if detached else 0.0), 0.0), (uniform(rng, 0.5, 0.62), -0.02))
    return [body, bar]


def _six(rng, straight=False) -> Digit:
    r = uniform(rng, 0.22, 0.28)
    loop = arc(0.3, 1.0 - r, r, r, 180, 540)
    if straight:
        return [join((0.3, 0.0), (0.08, 1.0 - r), loop)]
    stem = arc(0.55, 0.62, 0.5, 0.62, -120, -180)
    return [join(stem, loop)]


def _seven(rng, crossbar=False, serif=False, curved=False) -> Digit:
    top_y = 0.0
    start = (0.0, top_y)
    corner = (uniform(rng, 0.55, 0.68), top_y)
    foot = (uniform(rng, 0.12, 0.28), 1.0)
    if curved:
        mid = ((corner[0] + foot[0]) / 2 + 0.08, 0.5)
        stem = join(corner, mid, foot)
    else:
        stem = join(corner, foot)
    head = join((0.0, uniform(rng, 0.12, 0.22)), start) if serif else np.array([start])
    strokes = [join(head, stem)]
    if crossbar:
        t = uniform(rng, 0.45, 0.6)
        x = corner[0] + t * (foot[0] - corner[0])
        half = uniform(rng, 0.14, 0.22)
        strokes.append(line((x - half, t), (x + half * uniform(rng, 0.8, 1.1), t)))
    return strokes


def _eight(rng, waist=0.02) -> Digit:
    # A figure of eight: x = rx * sin(2t), y = cos(t); the lobes can differ in size.
    t = np.linspace(0.0, 2 * np.pi, 64) + uniform(rng, -0.3, 0.3)
    upper, lower = uniform(rng, 0.16, 0.24), uniform(rng, 0.2, 0.3)
    x = np.sin(2 * t) * np.where(np.cos(t) > 0, lower, upper) * 1.6
    y = np.cos(t)
    x += np.sign(x) * waist * np.abs(np.sin(2 * t))
    pts = np.stack([0.3 + x, 0.5 + 0.5 * y * np.where(y > 0, 1.0, uniform(rng, 0.85, 1.0))], axis=1)
    return [pts]


def _nine_cursive(rng) -> Digit:
    """The 9 in one stroke: from the stem's top round the loop anticlockwise, back to the stem
    and down it, often ending in a tail to the left; the loop is sometimes left open."""
    r = uniform(rng, 0.2, 0.26)
    joint = (0.3 + r, r * uniform(rng, 0.8, 1.2))
    gap = uniform(rng, 20, 60) if rng.random() < 0.3 else 0.0
    loop = arc(0.3, r, r, r * uniform(rng, 0.9, 1.1), 0, -360 + gap)[::1]
    end = (joint[0] - uniform(rng, 0.05, 0.15), 1.0)
    tail = [arc(end[0] - 0.12, 0.85, 0.12, 0.15, 30, 150)] if rng.random() < 0.6 else []
    return [join(joint, loop, joint, (joint[0] - 0.02, 0.6), end, *tail)]


def _nine(rng, hooked=False) -> Digit:
    r = uniform(rng, 0.2, 0.26)
    loop = arc(0.3, r, r, r * uniform(rng, 0.9, 1.1), uniform(rng, -10, 10), uniform(rng, 370, 390))
    joint = loop[-1]
    if hooked:
        stem = join(joint, (joint[0] - 0.02, 0.75), arc(joint[0] - 0.15, 0.8, 0.14, 0.2, 0, 120))
    else:
        stem = join(joint, (joint[0] - uniform(rng, 0.0, 0.12), 1.0))
    return [loop, stem]


Allograph = Callable[[np.random.Generator], Digit]
# Per digit: (name, how often, the allograph). Weights favour the shapes MNIST has
# least of: MNIST training digits already cover the American plain forms.
ALLOGRAPHS: dict[int, list[tuple[str, float, Allograph]]] = {
    0: [("0/round", 1.0, _zero), ("0/narrow", 1.0, lambda r: _zero(r, narrow=True))],
    1: [("1/plain", 0.5, _one), ("1/flag", 1.0, lambda r: _one(r, flag=uniform(r, 0.15, 0.3))),
        ("1/long_flag", 1.5, lambda r: _one(r, flag=uniform(r, 0.3, 0.5))),
        ("1/flag_foot", 1.5, lambda r: _one(r, flag=uniform(r, 0.2, 0.45), foot=True)),
        ("1/foot", 0.3, lambda r: _one(r, foot=True)),
        ("1/lead_in", 1.2, lambda r: _one(r, flag=uniform(r, 0.5, 0.85), lead_in=True))],
    2: [("2/plain", 1.0, _two), ("2/loop", 1.2, lambda r: _two(r, "loop")), ("2/z", 0.6, lambda r: _two(r, "z"))],
    3: [("3/round", 1.0, _three), ("3/flat_top", 0.8, lambda r: _three(r, flat_top=True))],
    4: [("4/closed", 1.0, _four), ("4/open", 1.3, lambda r: _four(r, open_top=True)),
        ("4/one_stroke", 0.7, _four_one_stroke)],
    5: [("5/joined", 1.0, _five), ("5/detached", 1.0, lambda r: _five(r, detached=True)),
        ("5/one_stroke", 0.7, _five_one_stroke)],
    6: [("6/curved", 1.0, _six), ("6/straight", 0.8, lambda r: _six(r, straight=True))],
    7: [("7/plain", 0.6, _seven), ("7/crossbar", 1.5, lambda r: _seven(r, crossbar=True)),
        ("7/serif_crossbar", 0.8, lambda r: _seven(r, crossbar=True, serif=True)),
        ("7/curved", 0.5, lambda r: _seven(r, curved=True))],
    8: [("8/figure", 1.0, _eight), ("8/thin_waist", 1.2, lambda r: _eight(r, waist=0.0))],
    9: [("9/straight", 1.0, _nine), ("9/hooked", 0.8, lambda r: _nine(r, hooked=True)),
        ("9/cursive", 1.0, _nine_cursive)],
}
ALLOGRAPH_NAMES = [name for digit in range(10) for name, _, _ in ALLOGRAPHS[digit]]


# -- style: jitter, slant, rotation, aspect ---------------------------------------------


def draw(label: int, rng: np.random.Generator, allograph: str | None = None) -> np.ndarray:
    """Return one synthetic ``label`` as uint8 (28, 28): a random (or the named) allograph,
    styled and rendered with a random pen."""
    options = ALLOGRAPHS[label]
    if allograph is None:
        weights = np.array([w for _, w, _ in options])
        _, _, make = options[int(rng.choice(len(options), p=weights / weights.sum()))]
    else:
        make = next(f for name, _, f in options if name == allograph)
    width, nib, pressure = random_pen(rng)
    return render(style(make(rng), rng), width, nib, pressure)


def synthesize(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return ``n`` synthetic digits, uint8 (n, 28, 28), with balanced labels (n,)."""
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = np.empty((n, FIELD, FIELD), np.uint8)
    for i, label in enumerate(labels):
        images[i] = draw(int(label), rng)
    return images, labels.astype(np.uint8)


# -- edits of MNIST digits ------------------------------------------------------------------


def _axis_ends(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Return the top and bottom ends (x, y) of a roughly straight stroke and its width."""
    ys, xs = np.nonzero(mask)
    top = np.array([xs[ys <= ys.min() + 1].mean(), ys.min()], dtype=np.float64)
    bottom = np.array([xs[ys >= ys.max() - 1].mean(), ys.max()], dtype=np.float64)
    length = max(np.hypot(*(bottom - top)), 1.0)
    return top, bottom, float(mask.sum() / length)


def _stamp(image: np.ndarray, stroke: Stroke, width: float) -> np.ndarray:
    """Return ``image`` (float, pixel coordinates) with ``stroke`` drawn in, max-composited."""
    return rasterize(image, resample(stroke + 0.5, DOT_SPACING), width)


def edit_mnist(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Return copies of MNIST digits written the continental way, in MNIST's form.

    1s get a flag (a stroke down to the left from the top, 15-45% of the
    digit's height) and half of them a foot; 7s get a crossbar through the
    middle of the stem. Other digits are returned unchanged.
    """
    out = images.copy()
    for i, (image, label) in enumerate(zip(images, labels)):
        ink = image.astype(np.float64)
        mask = image > 127
        if label not in (1, 7) or mask.sum() < 8:
            continue
        ys, xs = np.nonzero(mask)
        height = ys.max() - ys.min() + 1
        if label == 1:
            top, bottom, width = _axis_ends(mask)
            length = height * uniform(rng, 0.15, 0.45)
            angle = np.deg2rad(uniform(rng, 25, 60))
            start = top + length * np.array([-np.cos(angle), np.sin(angle)])
            ink = _stamp(ink, join(start, top), width)
            if rng.random() < 0.5:
                half = height * uniform(rng, 0.12, 0.25)
                ink = _stamp(ink, join(bottom - (half, 0), bottom + (half, 0)), width)
        else:
            row = int(ys.min() + height * uniform(rng, 0.45, 0.62))
            stem = np.flatnonzero(mask[row])
            if stem.size == 0:
                continue
            x = stem.mean()
            half = max(2.0, (xs.max() - xs.min()) * uniform(rng, 0.18, 0.3))
            width = float(mask.sum()) / max(float(np.count_nonzero(mask.any(axis=1))), 1.0) / 1.5
            ink = _stamp(ink, join((x - half, row), (x + half, row)), min(max(width, 1.5), 3.0))
        out[i] = _to_form(ink)
    return out


def _to_form(ink: np.ndarray) -> np.ndarray:
    """Return an edited 28x28 digit refitted to MNIST's form (a flag widens the box)."""
    return to_mnist_form(ink)


def extend_training_set(images: np.ndarray, labels: np.ndarray, synthetic: int, edit_share: float,
                        rng: np.random.Generator, progress: Callable[[int], None] | None = None
                        ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Return the training set with ``synthetic`` stroke-drawn digits and edited copies of
    ``edit_share`` of its 1s and 7s appended, and how many of each were added.

    ``progress`` is called with the number of digits drawn so far (every 500).
    """
    parts, part_labels = [images], [labels]
    counts = {"mnist": len(images), "synthetic": 0, "edited": 0}
    if edit_share:
        chosen = np.flatnonzero(np.isin(labels, (1, 7)) & (rng.random(len(labels)) < edit_share))
        parts.append(edit_mnist(images[chosen], labels[chosen], rng))
        part_labels.append(labels[chosen])
        counts["edited"] = len(chosen)
    if synthetic:
        drawn = np.empty((synthetic, FIELD, FIELD), np.uint8)
        drawn_labels = (np.arange(synthetic) % 10).astype(labels.dtype)
        rng.shuffle(drawn_labels)
        for i, label in enumerate(drawn_labels):
            drawn[i] = draw(int(label), rng)
            if progress is not None and (i + 1) % 500 == 0:
                progress(i + 1)
        parts.append(drawn)
        part_labels.append(drawn_labels)
        counts["synthetic"] = synthetic
    return np.concatenate(parts), np.concatenate(part_labels), counts
