"""Digits against things that are not digits, as the service would receive them.

How well does ``digit_score`` tell a handwritten digit from anything else,
and what do the verdicts do with real digits? ``collect`` builds the set:

- digits: MNIST test digits and each source of ``handwriting`` (not MNIST's);
- not-digits, by family, none of them drawn the way training negatives are:

    clothing  Fashion-MNIST's *test* split (training sees only its train split)
    letters   letters of handwriting and print fonts (ones shaped like digits left out)
    symbols   symbols, arrows, marks and Japanese characters from fonts
    doodles   faces, suns, houses, trees, stick figures, ... drawn with Pillow's shapes
    noise     speckle, blobs, gradients, grids: pictures of nothing in particular
    numbers   two or three MNIST test digits side by side (a number is not *a* digit)

Every image is rendered as a kind of upload (``uploads``: canvas drawings,
scans, phone photos, ...) and put through the service's decoding and
preprocessing, as the service would receive it; an image the preprocessing
refuses (a 422) counts as rejected. ``report`` then gives, for a predictor:
AUROC of the score (digits against all not-digits and against each family),
and with the verdict's thresholds: false rejects on MNIST and on the other
handwriting, the share of not-digits answered ``digit``, and the accuracy of
the answers whose verdict is ``digit``. Nothing here trains or selects anything.

Letters and symbols are drawn only in the fonts named in ``FONT_FAMILIES``, whatever else
is installed: the print fonts are matplotlib's own copy of DejaVu (so on every machine), the
handwriting and Japanese fonts the system's, where installed. A font is never used for a
character it lacks, so a family always has the number of images asked for, the same on
every machine with the same fonts of its list; the report names them (``family_fonts``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw

from model.data import scale_pixels
from model.ood import Verdicts, auroc, verdicts
from imaging.decode import ImageError
from imaging.preprocessing import preprocess

from . import handwriting
from .handwriting import (FONT_FILES, SOURCES, SourceUnavailable, draw_glyph, draws, font_paths, frame,
                          has_ink, load_source)
from .uploads import KINDS, rerender_set

__all__ = ["FAMILIES", "FONT_FAMILIES", "Collected", "collect", "family_fonts", "glyph_pool", "notdigit_images", "report",
           "summary_lines"]

FAMILIES = ("clothing", "letters", "symbols", "doodles", "noise", "numbers")

# Letters whose shapes are digits' (O/0, I/l/1, S/5, Z/z/2, B/8, b/6, g/q/9, G/6, i/j with a lost dot).
LETTERS = "ACDEFHJKLMNPRTUVWXYacdefhkmnprtuvwxy"
SYMBOLS = "+=#%&@$?*<>~→←↑★♥☺✓✗∞∑πΩλ€£¶§"
KANA = "あかさなのやるをアカサネヤ木本日水火"
PRINT_FONTS = ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf", "DejaVuSerif.ttf")
SYMBOL_FONTS = ("DejaVuSans.ttf",)
KANA_FONTS = ("KleeOne-Regular.ttf", "YuseiMagic-Regular.ttf", "kiloji.ttf")
# family -> (its characters, the only font files it is drawn in); a font draws those it has.
FONT_FAMILIES = {"letters": (LETTERS, FONT_FILES + PRINT_FONTS),
                 "symbols": (SYMBOLS + KANA, SYMBOL_FONTS + KANA_FONTS)}
# Searched before the system's fonts: matplotlib (a dependency) ships DejaVu, the same files wherever
# the same matplotlib is installed, while the system's copy may be another version or missing.
BUNDLED_FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"

Predict = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # float32 (n, 784) -> (probs, scores)


# -- not-digit images (square uint8, white ink on black, any size) -----------------------


def glyph_pool(family: str) -> dict[str, list[Path]]:
    """Return {character: the installed fonts of its list that have it} for a family drawn in fonts,
    in the order of its characters and fonts; a character none of them has is left out."""
    text, names = FONT_FAMILIES[family]
    paths = font_paths(names, (BUNDLED_FONT_DIR, *handwriting.FONT_DIRS))
    pool = {char: [path for path in paths if draws(path, char)] for char in text}
    return {char: fonts for char, fonts in pool.items() if fonts}


def family_fonts(family: str) -> list[str]:
    """Return the font files ``family`` is drawn in (none for a family not drawn in fonts)."""
    if family not in FONT_FAMILIES:
        return []
    used = {path.name for fonts in glyph_pool(family).values() for path in fonts}
    return [name for name in FONT_FAMILIES[family][1] if name in used]


def _glyphs(pool: dict[str, list[Path]], rng: np.random.Generator, n: int, size: int = 72
            ) -> list[np.ndarray]:
    """Return ``n`` random characters of ``pool``, each in a random font that has it (none if it is empty)."""
    chars, out = list(pool), []
    for _ in range(n if chars else 0):
        char = chars[int(rng.integers(len(chars)))]
        path = pool[char][int(rng.integers(len(pool[char])))]
        ink = draw_glyph(path, char, float(rng.uniform(-0.2, 0.3)), size)
        if not has_ink(ink):  # shearing can blur a thin glyph below the threshold; upright it has ink
            ink = draw_glyph(path, char, 0.0, size)
        out.append(frame(ink))
    return out


def _doodle(rng: np.random.Generator, size: int = 140) -> np.ndarray:
    """Return one doodle drawn with Pillow's shapes (not the training strokes)."""
    img = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(img)
    w = int(rng.integers(4, 11))
    c, r = size / 2, size * 0.38

    def jitter(v: float) -> float:
        return float(v + rng.normal(0, size * 0.02))

    kind = int(rng.integers(10))
    if kind == 0:  # smiley
        d.ellipse([c - r, c - r, c + r, c + r], outline=255, width=w)
        for dx in (-0.35, 0.35):
            d.ellipse([c + dx * r - 6, c - 0.3 * r - 6, c + dx * r + 6, c - 0.3 * r + 6], fill=255)
        d.arc([c - 0.55 * r, c - 0.4 * r, c + 0.55 * r, c + 0.55 * r], 20, 160, fill=255, width=w)
    elif kind == 1:  # sun
        d.ellipse([c - 0.45 * r, c - 0.45 * r, c + 0.45 * r, c + 0.45 * r], outline=255, width=w)
        for k in range(int(rng.integers(6, 11))):
            a = 2 * math.pi * k / 8 + rng.uniform(-0.1, 0.1)
            d.line([c + 0.6 * r * math.cos(a), c + 0.6 * r * math.sin(a),
                    c + r * math.cos(a), c + r * math.sin(a)], fill=255, width=w)
    elif kind == 2:  # house
        d.rectangle([c - 0.7 * r, c, c + 0.7 * r, c + r], outline=255, width=w)
        d.line([c - 0.8 * r, c, c, c - r, c + 0.8 * r, c], fill=255, width=w, joint="curve")
        d.rectangle([c - 0.15 * r, c + 0.4 * r, c + 0.15 * r, c + r], outline=255, width=max(2, w // 2))
    elif kind == 3:  # tree
        d.ellipse([c - 0.7 * r, c - r, c + 0.7 * r, c + 0.2 * r], outline=255, width=w)
        d.line([c - 0.1 * r, c + 0.2 * r, c - 0.1 * r, c + r], fill=255, width=w)
        d.line([c + 0.1 * r, c + 0.2 * r, c + 0.1 * r, c + r], fill=255, width=w)
    elif kind == 4:  # stick figure
        d.ellipse([c - 0.25 * r, c - r, c + 0.25 * r, c - 0.5 * r], outline=255, width=w)
        d.line([c, c - 0.5 * r, c, c + 0.3 * r], fill=255, width=w)
        d.line([c - 0.6 * r, c - 0.2 * r, c + 0.6 * r, c - 0.2 * r], fill=255, width=w)
        d.line([c - 0.5 * r, c + r, c, c + 0.3 * r, c + 0.5 * r, c + r], fill=255, width=w, joint="curve")
    elif kind == 5:  # cloud
        for dx, dy, rr in ((-0.5, 0.1, 0.35), (0.0, -0.15, 0.45), (0.5, 0.1, 0.35)):
            d.arc([c + dx * r - rr * r, c + dy * r - rr * r, c + dx * r + rr * r, c + dy * r + rr * r],
                  150, 390, fill=255, width=w)
        d.line([c - 0.85 * r, c + 0.35 * r, c + 0.85 * r, c + 0.35 * r], fill=255, width=w)
    elif kind == 6:  # flower
        for k in range(6):
            a = 2 * math.pi * k / 6
            x, y = c + 0.5 * r * math.cos(a), c - 0.3 * r + 0.5 * r * math.sin(a)
            d.ellipse([x - 0.25 * r, y - 0.25 * r, x + 0.25 * r, y + 0.25 * r], outline=255, width=max(2, w // 2))
        d.line([c, c + 0.2 * r, c, c + r], fill=255, width=w)
    elif kind == 7:  # zigzag or wave
        xs = np.linspace(c - r, c + r, int(rng.integers(5, 10)))
        pts = [(float(x), jitter(c + (0.4 * r if i % 2 else -0.4 * r))) for i, x in enumerate(xs)]
        d.line(pts, fill=255, width=w, joint="curve")
    elif kind == 8:  # circle crossed out, or a target
        d.ellipse([c - r, c - r, c + r, c + r], outline=255, width=w)
        if rng.random() < 0.5:
            d.line([c - 0.7 * r, c + 0.7 * r, c + 0.7 * r, c - 0.7 * r], fill=255, width=w)
        else:
            d.ellipse([c - 0.45 * r, c - 0.45 * r, c + 0.45 * r, c + 0.45 * r], outline=255, width=w)
    else:  # fish
        d.ellipse([c - 0.7 * r, c - 0.35 * r, c + 0.4 * r, c + 0.35 * r], outline=255, width=w)
        d.polygon([(c + 0.4 * r, c), (c + r, c - 0.4 * r), (c + r, c + 0.4 * r)], outline=255, width=w)
    angle = float(rng.uniform(-20, 20))
    return frame(np.asarray(img.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True), np.float32))


def _noise(rng: np.random.Generator, size: int = 84) -> np.ndarray:
    """Return a picture of nothing in particular: speckle, soft blobs, a gradient or a grid."""
    kind = int(rng.integers(4))
    yy, xx = np.mgrid[0:size, 0:size] / size
    if kind == 0:
        img = rng.random((size, size)) * 255 * (rng.random((size, size)) < rng.uniform(0.05, 0.5))
    elif kind == 1:
        img = np.zeros((size, size))
        for _ in range(int(rng.integers(2, 7))):
            cx, cy, s = rng.random(), rng.random(), rng.uniform(0.05, 0.2)
            img += 255 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
    elif kind == 2:
        a = rng.uniform(0, 2 * np.pi)
        img = 255 * np.clip((np.cos(a) * xx + np.sin(a) * yy) + rng.normal(0, 0.1, (size, size)), 0, 1)
    else:
        step = int(rng.integers(8, 20))
        img = np.zeros((size, size))
        img[::step, :] = 255
        img[:, ::step] = 255
    return np.clip(img, 0, 255).astype(np.uint8)


def _number(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Return two or three of ``digits`` written side by side, framed as one drawing."""
    k = 2 if rng.random() < 0.7 else 3
    parts = []
    for i in rng.choice(len(digits), k, replace=False):
        d = digits[i]
        cols = np.flatnonzero(d.any(axis=0))
        parts.append(d[:, cols[0]:cols[-1] + 1])
        parts.append(np.zeros((28, int(rng.integers(1, 5))), np.uint8))
    return frame(np.concatenate(parts[:-1], axis=1).astype(np.float32))


def notdigit_images(family: str, n: int, seed: int = 0, fashion_test: np.ndarray | None = None,
                    mnist_test: np.ndarray | None = None) -> list[np.ndarray]:
    """Return ``n`` not-digits of ``family`` (square uint8, white ink on black), the same for a seed.

    Clothing needs ``fashion_test`` and numbers ``mnist_test`` (uint8 (m, 28, 28)); letters and
    symbols are drawn in the installed fonts of their lists (none come back if there are none).
    """
    if family not in FAMILIES:
        raise KeyError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    if family == "clothing":
        if fashion_test is None:
            return []
        return list(fashion_test[rng.choice(len(fashion_test), min(n, len(fashion_test)), replace=False)])
    if family in FONT_FAMILIES:
        return _glyphs(glyph_pool(family), rng, n)
    if family == "doodles":
        return [_doodle(rng) for _ in range(n)]
    if family == "noise":
        return [_noise(rng) for _ in range(n)]
    return [] if mnist_test is None else [_number(mnist_test, rng) for _ in range(n)]


# -- the set as uploads, and the report ---------------------------------------------------------


@dataclass
class Collected:
    """Preprocessed uploads: digits by group (MNIST and each source), not-digits by family."""

    digits: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # group -> (uint8, labels)
    notdigits: dict[str, np.ndarray] = field(default_factory=dict)  # family -> uint8 (n, 28, 28)
    refused: dict[str, int] = field(default_factory=dict)  # group or family -> uploads the preprocessing refused
    sent: dict[str, int] = field(default_factory=dict)  # group or family -> uploads rendered
    unavailable: dict[str, str] = field(default_factory=dict)
    fonts: dict[str, list[str]] = field(default_factory=dict)  # family -> font files it was drawn in


def _as_uploads(images: list[np.ndarray], labels: np.ndarray, per_kind: int, seed: int, kinds
                ) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Render ``per_kind`` of ``images`` as each kind of upload and preprocess them:
    (uint8 (n, 28, 28), labels, rendered, refused)."""
    out, out_labels, refused = [], [], 0
    rendered = rerender_set(images, labels, per_kind, seed=seed, kinds=kinds)
    for _, label, data, _ in rendered:
        try:
            out.append(preprocess(data))
            out_labels.append(label)
        except ImageError:
            refused += 1
    X = np.stack(out) if out else np.zeros((0, 28, 28), np.uint8)
    return X, np.array(out_labels, np.int64), len(rendered), refused


def collect(mnist_test: np.ndarray, mnist_labels: np.ndarray, fashion_test: np.ndarray | None,
            per_kind: int = 10, seed: int = 0, sources: Iterable[str] = tuple(SOURCES),
            kinds: Iterable[str] = KINDS, progress: Callable[[str], None] | None = None) -> Collected:
    """Return the digits and not-digits, each rendered as ``per_kind`` uploads of every kind."""
    kinds = tuple(kinds)
    c = Collected()

    def add_digits(group: str, images, labels) -> None:
        X, y, sent, refused = _as_uploads(list(images), np.asarray(labels), per_kind, seed, kinds)
        c.digits[group], c.sent[group], c.refused[group] = (X, y), sent, refused

    if progress:
        progress("digits: mnist test")
    add_digits("mnist", mnist_test, mnist_labels)
    for name in sources:
        if progress:
            progress(f"digits: {name}")
        try:
            source = load_source(name, 4 * per_kind * len(kinds), seed)
        except SourceUnavailable as exc:
            c.unavailable[name] = str(exc)
            continue
        add_digits(name, source.images, source.labels)
    n = 2 * per_kind * len(kinds)  # distinct images to draw the uploads from
    for family in FAMILIES:
        if progress:
            progress(f"not digits: {family}")
        images = notdigit_images(family, n, seed, fashion_test, mnist_test)
        if family in FONT_FAMILIES:
            c.fonts[family] = family_fonts(family)
        if not images:
            c.unavailable[family] = ("no font of its list is installed" if family in FONT_FAMILIES
                                     else "no images (dataset missing)")
            continue
        X, _, sent, refused = _as_uploads(images, np.full(len(images), -1), per_kind, seed, kinds)
        c.notdigits[family], c.sent[family], c.refused[family] = X, sent, refused
    return c


def _run(predict: Predict, X: np.ndarray, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    parts = [predict(scale_pixels(X[i:i + batch])) for i in range(0, len(X), batch)]
    if not parts:
        return np.zeros((0, 10), np.float32), np.zeros(0)
    return np.concatenate([p for p, _ in parts]), np.concatenate([s for _, s in parts]).astype(np.float64)


def report(predict: Predict, c: Collected, thresholds: Verdicts | None = None) -> dict:
    """Return the AUROC of ``predict``'s scores, overall and per family, and with
    ``thresholds`` what the verdicts do.

    An upload the preprocessing refused scores below everything (it gets no answer)."""
    def with_refused(scores: np.ndarray, name: str) -> np.ndarray:
        return np.concatenate([scores, np.full(c.refused.get(name, 0), -np.inf)])

    digits = {g: (*_run(predict, X), y) for g, (X, y) in c.digits.items()}
    notdigits = {f: _run(predict, X) for f, X in c.notdigits.items()}
    d_scores = np.concatenate([with_refused(s, g) for g, (_, s, _) in digits.items()])
    n_scores = {f: with_refused(s, f) for f, (_, s) in notdigits.items()}
    all_n = np.concatenate(list(n_scores.values()))
    out: dict = {"auroc": auroc(d_scores, all_n),
                 "auroc_by_family": {f: auroc(d_scores, s) for f, s in n_scores.items()},
                 "digits": {g: c.sent[g] for g in digits}, "notdigits": {f: c.sent[f] for f in notdigits},
                 "refused": dict(c.refused), "unavailable": dict(c.unavailable), "fonts": dict(c.fonts)}
    if thresholds is None:
        return out
    by_group = {}
    for g, (probs, scores, y) in digits.items():
        v = np.array(verdicts(scores, probs.max(axis=1), thresholds))
        right = probs.argmax(axis=1) == y
        sent = c.sent[g]
        by_group[g] = {"false_reject": float(((v == "not_a_digit").sum() + c.refused[g]) / sent),
                       "uncertain": float((v == "uncertain").mean()) if len(v) else 0.0,
                       "answered_digit": int((v == "digit").sum()), "right_when_digit": int(right[v == "digit"].sum()),
                       "accuracy": float(right.mean()) if len(right) else None}
    for f, (probs, scores) in notdigits.items():
        v = np.array(verdicts(scores, probs.max(axis=1), thresholds))
        by_group[f] = {"answered_digit": float((v == "digit").sum() / c.sent[f]),
                       "answered_uncertain": float((v == "uncertain").sum() / c.sent[f])}
    others = [g for g in digits if g != "mnist"]
    sent_other = sum(c.sent[g] for g in others)
    said_digit = sum(by_group[g]["answered_digit"] for g in others)
    out.update({
        "thresholds": {"not_a_digit_below": thresholds.not_a_digit_below,
                       "uncertain_below": thresholds.uncertain_below},
        "by_group": by_group,
        "false_reject_mnist": by_group["mnist"]["false_reject"] if "mnist" in by_group else None,
        "false_reject_other": (sum(by_group[g]["false_reject"] * c.sent[g] for g in others) / sent_other
                               if sent_other else None),
        "notdigits_answered_digit": float(sum(by_group[f]["answered_digit"] * c.sent[f] for f in notdigits)
                                          / max(sum(c.sent[f] for f in notdigits), 1)),
        "accuracy_when_digit_other": (sum(by_group[g]["right_when_digit"] for g in others) / said_digit
                                      if said_digit else None),
        "answered_digit_other": said_digit / sent_other if sent_other else None,
    })
    return out


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def summary_lines(r: dict) -> list[str]:
    """Return a plain-text summary of a ``report``."""
    lines = [f"AUROC digits vs not-digits: {r['auroc']:.4f} ("
             + ", ".join(f"{f} {a:.4f}" for f, a in r["auroc_by_family"].items()) + ")"]
    if "by_group" in r:
        lines.append(f"false rejects: MNIST {_pct(r['false_reject_mnist'])}, other handwriting "
                     f"{_pct(r['false_reject_other'])}; not-digits answered 'digit': "
                     f"{_pct(r['notdigits_answered_digit'])}; other handwriting answered 'digit' "
                     f"{_pct(r['answered_digit_other'])}, right {_pct(r['accuracy_when_digit_other'])} of those")
    for family, names in r.get("fonts", {}).items():
        lines.append(f"{family} drawn in {len(names)} font(s): {', '.join(names) or 'none installed'}")
    for name, why in r.get("unavailable", {}).items():
        lines.append(f"{name}: unavailable ({why})")
    return lines
