"""Checking and looking at the upload renderings (``evaluation.uploads``).

    python -m evaluation.upload_samples OUTDIR [--n 5] [--seed 0] [--preview]

first runs ``self_check`` (asserts that each kind really carries its feature:
format, mode, EXIF tag, transparency, bit depth, placement, and that the digit
is where and which way up it should be, and that ``rerender_set`` is
deterministic), then writes ``--n`` samples of every kind of MNIST test digits
to OUTDIR (``--preview`` adds what a person sees: EXIF applied, alpha over a
checkerboard). ``check_rendering`` is the check of one rendering; the tests
run it on digits of every source.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .uploads import (EXTENSIONS, KINDS, MAX_BYTES, ORIENTATION_TAG, STORE_FOR_ORIENTATION, Rendering, kind_rng,
                      render, rerender_set, rotate)

__all__ = ["check_rendering", "main", "preview", "self_check"]


def _open(data: bytes) -> Image.Image:
    """Return the decoded image of ``data`` (first frame), loaded."""
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def _ink_map(img: Image.Image, ink: str) -> np.ndarray:
    """Return a float 0..1 map of where the ink is (1 = ink) in an upright decoded image."""
    if ink == "alpha":
        return np.asarray(img.getchannel("A"), np.float32) / 255.0
    if img.mode in ("I;16", "I"):
        gray = np.asarray(img, np.float32) / 65535.0
    else:
        gray = np.asarray(img.convert("RGB").convert("L"), np.float32) / 255.0
    return gray if ink == "bright" else 1.0 - gray


def _legible(digit: np.ndarray, img: Image.Image, rendering: Rendering) -> float:
    """Return the correlation between ``digit`` (tilted like the rendering) and the rendering's box."""
    reference = digit.astype(np.float32) / 255.0
    if "angle" in rendering.extra:
        reference = rotate(reference, rendering.extra["angle"])
    ink = _ink_map(img, rendering.ink)
    crop = Image.fromarray(ink).crop(rendering.box).resize(reference.shape[::-1], Image.Resampling.BOX)
    a, b = np.asarray(crop, np.float64).ravel(), reference.astype(np.float64).ravel()
    if a.std() == 0:
        return 0.0  # a blank crop: nothing there at all
    return float(np.corrcoef(a, b)[0, 1])


def check_rendering(kind: str, digit: np.ndarray, r: Rendering) -> None:
    """Assert that one rendering has the properties its kind promises."""
    formats = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/bmp": "BMP",
               "image/webp": "WEBP", "image/tiff": "TIFF"}
    raw = _open(r.data)
    assert len(r.data) < MAX_BYTES, (kind, len(r.data))
    assert raw.format == formats[r.mime], (kind, raw.format, r.mime)
    orientation = raw.getexif().get(ORIENTATION_TAG)
    img = ImageOps.exif_transpose(raw)
    width, height = img.size

    # Every kind: the digit lies inside its box and, scaled back to 28x28, correlates with the
    # original. A sanity check of placement and polarity (two MNIST "1"s correlate too), so the
    # bar is lower where strokes are deliberately reshaped.
    left, top, right, bottom = r.box
    assert 0 <= left < right <= width and 0 <= top < bottom <= height, (kind, r.box, img.size)
    corr = _legible(digit, img, r)
    floor = 0.6 if kind in ("thick_marker_png", "thin_pen_png") else 0.75 if "angle" in r.extra else 0.9
    assert corr > floor, (kind, corr)
    if kind not in ("mnist_png", "canvas_png", "canvas_white_bg_png"):
        # Off-centre on a non-square canvas.
        assert max(width, height) >= 1.1 * min(width, height), (kind, img.size)
        off = abs((left + right) / 2 - width / 2) + abs((top + bottom) / 2 - height / 2)
        assert off >= 0.03 * max(width, height), (kind, r.box, img.size)

    if kind == "mnist_png":
        assert raw.mode == "L" and np.array_equal(np.asarray(raw), digit)
    elif kind in ("upscaled_png", "inverted_png"):
        assert raw.mode in ("L", "RGB") and min(raw.size) > 28
        gray = np.asarray(raw.convert("L"))
        corner = int(gray[0, 0])
        assert corner == (0 if kind == "upscaled_png" else 255), (kind, corner)
    elif kind.startswith("photo"):
        assert raw.mode == "RGB" and 400 <= max(img.size) <= 1200, (kind, raw.mode, img.size)
        rgb = np.asarray(img, np.float32)
        paper = np.percentile(rgb.mean(axis=2), 90)
        assert paper < 252 and np.ptp(np.median(rgb.reshape(-1, 3), axis=0)) > 2, kind  # tinted paper
        # Uneven light: the paper in the best-lit of 6x6 blocks is clearly brighter than in the
        # worst (the 30-40% range is between the extreme pixels; blocks average some of it away).
        blocks = [np.percentile(b, 90) for row in np.array_split(rgb.mean(axis=2), 6)
                  for b in np.array_split(row, 6, axis=1)]
        assert max(blocks) / min(blocks) > 1.18, (kind, max(blocks) / min(blocks))
        if kind == "photo_exif_jpeg":
            assert orientation == r.extra["orientation"] in (3, 6, 8), (orientation, r.extra)
            upright = np.asarray(r.extra["upright"], np.float32)
            assert img.size == r.extra["upright"].size
            # exif_transpose must give back the upright photo (up to JPEG loss), and the stored
            # pixels must not already be upright (for 6 and 8 the swapped size shows that).
            assert np.abs(np.asarray(img, np.float32) - upright).mean() < 6
            if orientation == 3:
                assert raw.size == img.size and _legible(digit, raw, r) < 0.5
            else:
                assert raw.size == img.size[::-1]
        else:
            assert orientation in (None, 1), orientation
    elif kind == "canvas_png":
        rgba = np.asarray(raw)
        assert raw.mode == "RGBA" and raw.size == (280, 280)
        assert tuple(rgba[0, 0]) == (0, 0, 0, 0) and (rgba[..., 3] == 0).mean() > 0.5
        assert rgba[..., 3].max() == 255
        inked = rgba[rgba[..., 3] > 0, :3]
        assert (inked == np.array(r.extra["colour"], np.uint8)).all()
        assert (rgba[rgba[..., 3] == 0] == 0).all()
    elif kind == "canvas_white_bg_png":
        rgba = np.asarray(raw)
        assert raw.mode == "RGBA" and raw.size == (280, 280)
        assert (rgba[..., 3] == 255).all() and tuple(rgba[0, 0]) == (255, 255, 255, 255)
        assert rgba[..., :3].min() == 0
    elif kind == "palette_gif":
        assert raw.mode == "P", raw.mode
        assert getattr(raw, "n_frames", 1) == r.extra["frames"], (raw.n_frames, r.extra)
    elif kind == "la_png":
        assert raw.mode == "LA", raw.mode
        alpha = np.asarray(raw.getchannel("A"))
        assert (alpha == 255).all() if r.extra["variant"] == "opaque" else (alpha == 0).mean() > 0.5
    elif kind == "gray16_png":
        assert raw.mode == "I;16", raw.mode
        values = np.asarray(raw)
        # Full 16-bit range: the background is exactly 0 or 65535, the ink near the other end.
        if r.extra["inverted"]:
            assert values.max() == 65535 and values.min() < 0.1 * 65535, (values.min(), values.max())
        else:
            assert values.min() == 0 and values.max() > 0.9 * 65535, (values.min(), values.max())
        # Much of the picture is above 255, so a naive clip to 8 bits would lose the digit.
        assert (values > 255).mean() > (0.5 if r.extra["inverted"] else 0.02)
    elif kind == "cmyk_jpeg":
        assert raw.mode == "CMYK", raw.mode
        # The ink went (at least partly) to the K plate, unlike Pillow's RGB->CMYK, which leaves K=0.
        assert np.asarray(raw)[..., 3].max() > 64
    elif kind in ("bmp", "webp", "tiff"):
        assert raw.mode == "RGB", raw.mode
        if kind == "tiff":
            assert raw.info.get("compression") == r.extra["compression"], raw.info.get("compression")
    elif kind in ("thick_marker_png", "thin_pen_png"):
        # Compare how much of the 28x28 frame is ink with the original: the frame scales with the
        # digit, so the ratio measures stroke width (typically 1.3-2.5 thick, 0.2-0.6 thin).
        ink = _ink_map(img, "dark")[top:bottom, left:right]
        ratio = (ink > 0.5).mean() / (digit > 127).mean()
        assert (ratio > 1.15) if kind == "thick_marker_png" else (0.1 < ratio < 0.8), (kind, ratio)
    elif kind == "noisy_png":
        ink = _ink_map(img, "dark")
        x0, y0, x1, y1 = (int(round(v)) for v in r.extra["keep_out"])
        outside = ink.copy()
        outside[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1] = 0
        assert (outside > 0.5).sum() > 5, kind  # specks and dust away from the digit
        paper = np.asarray(img.convert("L"), np.float32)[ink < 0.3]
        assert paper.std() > 2, kind  # Gaussian noise


def self_check(images: np.ndarray, n: int = 6, seed: int = 1234) -> None:
    """Assert every kind's promised properties on ``n`` digits, and that ``rerender_set`` is deterministic."""
    for kind in KINDS:
        rng = kind_rng(seed, kind)
        for i in range(n):
            digit = images[i]
            try:
                check_rendering(kind, digit, render(digit, kind, rng))
            except AssertionError as exc:
                raise AssertionError(f"self-check failed for {kind} on image {i}: {exc}") from exc
    # Every EXIF orientation round-trips, not just the ones the random draws hit.
    probe = Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4) * 20)
    for orientation, store in STORE_FOR_ORIENTATION.items():
        stored = probe.transpose(store)
        stored.getexif()[ORIENTATION_TAG] = orientation
        assert np.array_equal(np.asarray(ImageOps.exif_transpose(stored)), np.asarray(probe)), orientation
    labels = np.arange(len(images)) % 10
    first, second = (rerender_set(images[:20], labels[:20], 2, seed=seed) for _ in range(2))
    assert first == second and len(first) == 2 * len(KINDS)


def preview(data: bytes) -> Image.Image:
    """Return an RGB view of a rendering as a person sees it: EXIF applied, alpha over a checkerboard."""
    img = ImageOps.exif_transpose(_open(data))
    if img.mode in ("I;16", "I"):
        img = Image.fromarray((np.asarray(img, np.float32) / 257).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        img = img.convert("RGBA")
        yy, xx = np.mgrid[0:img.height, 0:img.width]
        checks = np.where(((yy // 16) + (xx // 16)) % 2 == 0, 200, 150).astype(np.uint8)
        board = Image.fromarray(checks).convert("RGBA")
        img = Image.alpha_composite(board, img)
    return img.convert("RGB")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the self-check, then write sample renderings of MNIST test digits to OUTDIR; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--n", type=int, default=5, help="digits per kind (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None,
                        help="where MNIST is (default: ../shared/datasets if present, else the usual search)")
    parser.add_argument("--preview", action="store_true",
                        help="also write <name>.preview.png: EXIF applied, alpha over a checkerboard")
    args = parser.parse_args(argv)

    repo = Path(__file__).resolve().parents[1]
    from model.data import load_dataset

    data_dir = args.data_dir
    if data_dir is None and (repo.parent / "shared" / "datasets").is_dir():
        data_dir = repo.parent / "shared" / "datasets"
    ds = load_dataset("mnist", data_dir, download=False, progress=False)

    self_check(ds.test_images)
    print(f"self-check passed for {len(KINDS)} kinds")

    args.outdir.mkdir(parents=True, exist_ok=True)
    samples = rerender_set(ds.test_images, ds.test_labels, args.n, args.seed)
    counts: dict[str, int] = {}
    for kind, label, data, mime in samples:
        i = counts[kind] = counts.get(kind, -1) + 1
        path = args.outdir / f"{kind}_{i}_label{label}.{EXTENSIONS[mime]}"
        path.write_bytes(data)
        if args.preview:
            preview(data).save(path.with_name(path.name + ".preview.png"))
    print(f"wrote {len(samples)} samples to {args.outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
