"""Whole numbers written by hand, as people would send them, to judge ``/v1/read``.

``compose`` writes a number from single digit images (MNIST's, or a source of
``handwriting``): 2 to 6 digits, each rescaled to a slightly different
height, on an uneven baseline, with gaps of varying width; in about one
number in seven two neighbours touch (they overlap by a pixel or more).
``render`` then makes the file a person would upload:

    canvas   a wide browser canvas: transparent with the ink in alpha, or white with dark strokes
    photo    a phone photo of the number on paper: tilted a little, shaded, JPEG; some stored
             sideways with an EXIF orientation
    scan     a grayscale scan: dark ink on light paper, a little noise and dust, PNG
    screen   white digits on black (or the reverse), enlarged, PNG

``evaluate`` reads a set through a reader (bytes -> text) and reports exact
matches (all, and numbers with touching digits), per-digit accuracy (on
strings of the right length, position by position; otherwise through the
longest matching blocks) and the reading time. ``make_set`` builds a set
from digits: the MNIST *training* split for the development set that the
segmentation was tuned on, the test split and other handwriting for what is
reported. Nothing here trains anything.
"""

from __future__ import annotations

import difflib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from .uploads import _compose, _encode, _paper, _pen, _rotate, _to_uint8

__all__ = ["KINDS", "Number", "compose", "evaluate", "make_set", "photo", "reader_for", "render"]

KINDS = ("canvas", "photo", "scan", "screen")
UNIT = 28  # composed numbers are written with digits about this many pixels high
TOUCHING_SHARE = 1 / 7


@dataclass(frozen=True)
class Number:
    """One composed number: its ink (float32, 0..1, bright on dark), text and whether digits touch."""

    ink: np.ndarray
    text: str
    touching: bool


def _ink_of(digit: np.ndarray) -> np.ndarray:
    """Return a digit image's ink, cropped to it, as float32 in [0, 1]."""
    rows, cols = np.flatnonzero(digit.max(axis=1) > 20), np.flatnonzero(digit.max(axis=0) > 20)
    return digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float32) / 255.0


def compose(digits: list[np.ndarray], labels: list[int], rng: np.random.Generator,
            touching: bool | None = None) -> Number:
    """Return the number written with ``digits`` (square uint8 images, white on black, any size)."""
    touching = bool(rng.random() < TOUCHING_SHARE) if touching is None else touching
    touch_at = int(rng.integers(len(digits) - 1)) if touching else -1
    parts = []
    for digit in digits:
        ink = _ink_of(digit)
        # Digits as tall as each other within 15%, whatever the source's resolution
        # (one wider than tall keeps its proportions).
        h = max(8.0, UNIT * rng.uniform(0.85, 1.15) * ink.shape[0] / max(ink.shape))
        w = max(2, round(ink.shape[1] * h / ink.shape[0]))
        parts.append(np.asarray(Image.fromarray(ink).resize((w, round(h)), Image.Resampling.BILINEAR), np.float32))
    height = max(p.shape[0] for p in parts) + 2 * 4 + 6
    width = sum(p.shape[1] for p in parts) + 12 * len(parts) + 16
    canvas = np.zeros((height, width), np.float32)
    x = 8
    bottom = height - 6
    for i, part in enumerate(parts):
        h, w = part.shape
        y = bottom - h + int(rng.integers(-2, 3))  # an uneven baseline
        y = min(max(y, 0), height - h)
        region = canvas[y:y + h, x:x + w]
        np.maximum(region, part, out=region)
        if i == touch_at:
            gap = -int(rng.integers(1, 4))  # overlap: the two strokes meet
        else:
            gap = int(rng.integers(3, 10))
        x += w + gap
    canvas = canvas[:, :x + 8]
    return Number(np.clip(canvas, 0.0, 1.0), "".join(str(int(v)) for v in labels), touching)


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
            rgba[..., 3] = _to_uint8(ink * 255)
            return _encode(Image.fromarray(rgba, "RGBA"), "PNG")
        return _encode(Image.fromarray(_to_uint8(255 - ink * 255)).convert("RGB"), "PNG")
    if kind == "photo":
        return photo(number, rng)
    if kind == "scan":
        ink = _on_canvas(_scaled(number.ink, rng.uniform(40, 90)), rng, 0.8)
        gray = 255.0 - ink * rng.uniform(170, 220) - rng.uniform(5, 20)
        gray += rng.normal(0, 3, gray.shape)
        dust = rng.random(gray.shape) < 0.0005
        gray[dust] -= 120
        return _encode(Image.fromarray(_to_uint8(gray)), "PNG")
    if kind == "screen":
        ink = _on_canvas(_scaled(number.ink, rng.uniform(28, 80)), rng, 0.5)
        pixels = ink * 255 if rng.random() < 0.5 else 255 - ink * 255
        return _encode(Image.fromarray(_to_uint8(pixels)), "PNG")
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
    ink = _rotate(ink, rng.uniform(-4.0, 4.0)) if size is None else ink
    rgb = _compose(ink, _paper(rng), _pen(rng))
    h, w = ink.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    shade = (xx / w) * np.cos(theta) + (yy / h) * np.sin(theta)
    shade = (shade - shade.min()) / max(np.ptp(shade), 1e-6)
    rgb *= (1.0 - rng.uniform(0.2, 0.35) * shade)[..., None]
    img = Image.fromarray(_to_uint8(rgb)).filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.0)))
    noisy = np.asarray(img, np.float32) + rng.normal(0, rng.uniform(2, 5), (h, w, 3))
    img = Image.fromarray(_to_uint8(noisy))
    if size is None and rng.random() < 0.3:  # stored sideways, with the tag that turns it upright
        exif = Image.Exif()
        exif[0x0112] = 6
        return _encode(img.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=int(rng.integers(70, 92)),
                       exif=exif)
    return _encode(img, "JPEG", quality=int(rng.integers(70, 92)))


def make_set(images, labels, n: int, seed: int = 0, lengths=(2, 6), kinds=KINDS
             ) -> list[tuple[str, bool, str, bytes]]:
    """Return ``n`` numbers written with random ``images`` (uint8 squares, any size) as uploads:
    (text, touching, kind, bytes), the same for a seed. Kinds take turns."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        length = int(rng.integers(lengths[0], lengths[1] + 1))
        pick = rng.choice(len(images), length, replace=length > len(images))
        number = compose([images[j] for j in pick], [int(labels[j]) for j in pick], rng)
        kind = kinds[i % len(kinds)]
        out.append((number.text, number.touching, kind, render(number, kind, rng)))
    return out


def _digits_right(truth: str, read: str) -> int:
    if len(truth) == len(read):
        return sum(a == b for a, b in zip(truth, read))
    return sum(block.size for block in difflib.SequenceMatcher(None, truth, read).get_matching_blocks())


def evaluate(reader: Callable[[bytes], str | None], cases: list[tuple[str, bool, str, bytes]]) -> dict:
    """Return exact-match rates (overall, touching, per kind), per-digit accuracy and timing of
    ``reader`` (bytes -> text, None when it refused) on ``cases`` from ``make_set``."""
    right, touching_right, touching, digits, digits_right, times = 0, 0, 0, 0, 0, []
    by_kind: dict[str, list[int]] = {}
    errors = []
    for text, touches, kind, data in cases:
        start = time.perf_counter()
        got = reader(data)
        times.append(time.perf_counter() - start)
        ok = got == text
        right += ok
        touching += touches
        touching_right += ok and touches
        digits += len(text)
        digits_right += _digits_right(text, got or "")
        by_kind.setdefault(kind, [0, 0])
        by_kind[kind][0] += ok
        by_kind[kind][1] += 1
        if not ok and len(errors) < 20:
            errors.append({"truth": text, "read": got, "kind": kind, "touching": touches})
    n = len(cases)
    return {"n": n, "exact": right / n if n else None,
            "touching_n": touching, "touching_exact": touching_right / touching if touching else None,
            "per_digit": digits_right / digits if digits else None,
            "by_kind": {k: r / t for k, (r, t) in by_kind.items()},
            "median_ms": 1000 * statistics.median(times) if times else None,
            "errors": errors}


# -- command line ------------------------------------------------------------------------------


def reader_for(model, max_pixels: int = 40_000_000) -> Callable[[bytes], str | None]:
    """Return bytes -> the text the service reads (``imaging.numbers``) with a loaded artifact,
    None where it refuses the upload."""
    from imaging.numbers import read, read_image
    from imaging.preprocessing import ImageError

    def assess(X):
        return model.predictor.assess(X, model.thresholds)

    def reader(data: bytes) -> str | None:
        try:
            image, ink = read_image(data, max_pixels)
            return read(image, ink, assess, model.labels, 32).text
        except ImageError:
            return None

    return reader


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    from model.data import load_dataset

    from .handwriting import SOURCES, SourceUnavailable, load_source

    p = argparse.ArgumentParser(prog="python -m evaluation.numbers",
                                description="Read composed handwritten numbers through the service's reader.")
    p.add_argument("--artifact", help="model.npz or a version directory (default: the newest bundled)")
    p.add_argument("--data-dir", default="../shared/datasets")
    p.add_argument("--set", choices=("dev", "report"), default="report",
                   help="dev: numbers of MNIST *training* digits (what the segmentation was tuned on); "
                        "report: MNIST test digits and every source of other handwriting")
    p.add_argument("--n", type=int, default=300, help="numbers per digit source")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args(argv)
    from model.artifact import load_artifact
    from model.store import ARTIFACT_FILE, ArtifactStore

    path = args.artifact or ArtifactStore("artifacts", "mnist").latest().path
    reader = reader_for(load_artifact(path if str(path).endswith(".npz") else f"{path}/{ARTIFACT_FILE}"))
    mnist = load_dataset("mnist", args.data_dir, download=False, progress=False)
    sets = {}
    if args.set == "dev":
        sets["mnist train"] = (mnist.train_images, mnist.train_labels)
    else:
        sets["mnist test"] = (mnist.test_images, mnist.test_labels)
        for name in SOURCES:
            try:
                source = load_source(name)
            except SourceUnavailable as exc:
                print(f"{name}: unavailable ({exc})")
                continue
            sets[name] = (source.images, source.labels)
    results = {}
    for name, (images, labels) in sets.items():
        cases = make_set(images, labels, args.n, seed=args.seed)
        r = evaluate(reader, cases)
        results[name] = r
        print(f"{name:<14} {r['n']:>5} numbers  exact {100 * r['exact']:6.2f}%  touching {r['touching_n']:>3}: "
              f"{100 * (r['touching_exact'] or 0):6.2f}%  per digit {100 * r['per_digit']:6.2f}%  "
              f"median {r['median_ms']:.1f} ms  " + "  ".join(f"{k} {100 * v:.1f}%" for k, v in r["by_kind"].items()))
    if len(results) > 1:
        n = sum(r["n"] for r in results.values())
        exact = sum(r["exact"] * r["n"] for r in results.values()) / n
        t_n = sum(r["touching_n"] for r in results.values())
        t_exact = sum((r["touching_exact"] or 0) * r["touching_n"] for r in results.values()) / max(t_n, 1)
        print(f"{'all':<14} {n:>5} numbers  exact {100 * exact:6.2f}%  touching {t_n:>3}: {100 * t_exact:6.2f}%")
        results["all"] = {"n": n, "exact": exact, "touching_n": t_n, "touching_exact": t_exact}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
