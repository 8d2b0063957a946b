"""Realistic "real-world upload" renderings of a digit image, for evaluation and tests.

This module owns turning a digit image (square, uint8, white ink on black:
an MNIST digit, or one of ``handwriting``'s digits at its own resolution)
into the encoded files a user might really upload: enlarged off-centre
screenshots, ink on paper photographed by a phone (with or without an EXIF
rotation), browser canvas exports with the ink in the alpha channel, palette
GIFs, 16-bit and CMYK files, BMP/WebP/TIFF, thick and thin strokes, dusty
scans. ``KINDS`` names every kind; ``rerender`` makes one file and
``rerender_set`` a deterministic batch. Sizes that the kinds speak of in
"MNIST pixels" are 1/28 of the digit image's side. The colour and file
helpers they are made with (``paper_colour``, ``pen_colour``, ``composite``,
``rotate``, ``to_uint8``, ``encode``) are public: ``composed`` writes whole
numbers with them. The module is long (about 550 lines) on purpose: one
short function per kind of upload (17) and the table naming them, so a new
kind is one function and one row here.

It does not own the preprocessing that is meant to undo all this (the service
does): ``train.py evaluate`` and the tests feed these bytes to it and check
that it recovers an MNIST-like input. Every rendering stays legible to a
human, and carries its kind's feature: ``upload_samples`` checks that and
writes samples to look at.

Depends only on numpy and Pillow.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = ["KINDS", "Rendering", "composite", "encode", "kind_rng", "paper_colour", "pen_colour", "render", "rerender",
           "rerender_set", "rotate", "to_uint8"]

# Every rendering stays below this, as ordinary uploads do (checked by ``upload_samples``).
MAX_BYTES = 1_000_000

EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/bmp": "bmp",
               "image/webp": "webp", "image/tiff": "tif"}

ORIENTATION_TAG = 0x0112
# How to *store* an upright picture for each EXIF Orientation value, so that a reader applying the
# tag turns it upright again. Readers (ImageOps.exif_transpose) apply 3 -> ROTATE_180,
# 6 -> ROTATE_270 (90 deg clockwise), 8 -> ROTATE_90 (90 deg counter-clockwise); storing needs the
# inverse of each. ``upload_samples`` checks the round trip.
STORE_FOR_ORIENTATION = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90,
                          8: Image.Transpose.ROTATE_270}

# Dark colours a canvas app or a pen might use; all have luminance well below 128.
_DARK_COLOURS = ((20, 40, 140), (0, 0, 110), (0, 90, 30), (140, 0, 30), (80, 20, 120), (40, 40, 40))

Box = tuple[int, int, int, int]


@dataclass
class Rendering:
    """One encoded rendering plus what checking it needs to know (``upload_samples``)."""

    data: bytes
    mime: str
    # Where the digit's 28x28 frame lies in the upright picture: (left, top, right, bottom) in
    # pixels. For photos it is the frame tilted by extra["angle"] degrees and the box round that.
    box: Box
    # How the ink shows in the upright picture: "bright" (light on dark), "dark" (dark on light),
    # or "alpha" (ink is the alpha channel, colour carries nothing).
    ink: str
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# Geometry and colour helpers (the public ones are shared with ``numbers``)


def _pick(rng: np.random.Generator, options: Sequence):
    """Return one of ``options``, chosen uniformly (rng.choice would turn tuples into arrays)."""
    return options[int(rng.integers(len(options)))]


def _smoothstep(x: np.ndarray) -> np.ndarray:
    """Return the smoothstep of ``x`` clipped to 0..1 (a soft threshold)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _ink(digit: np.ndarray, size: int, rng: np.random.Generator, *, crisp: bool = False) -> np.ndarray:
    """Return the digit's ink coverage (float32 0..1, 1 = ink) upscaled to ``size`` x ``size``."""
    resample = _pick(rng, (Image.Resampling.BICUBIC, Image.Resampling.BILINEAR))
    ink = np.asarray(Image.fromarray(digit).resize((size, size), resample), np.float32) / 255.0
    if crisp:
        # A 28 px digit blown up 10x has edges smeared over ~20 px, but real ink (a pen, a canvas
        # stroke) has sharp edges: steepen the ramp around half coverage, which keeps stroke width.
        ink = _smoothstep((ink - 0.25) / 0.5)
    return ink


def rotate(ink: np.ndarray, degrees: float) -> np.ndarray:
    """Return ``ink`` rotated counter-clockwise by ``degrees``, enlarged so no ink is cut off."""
    rotated = Image.fromarray(ink.astype(np.float32)).rotate(
        degrees, Image.Resampling.BICUBIC, expand=True, fillcolor=0.0)
    return np.clip(np.asarray(rotated, np.float32), 0.0, 1.0)


def _morph(ink: np.ndarray, filter_cls: type[ImageFilter.RankFilter], radius: int) -> np.ndarray:
    """Return ``ink`` dilated (MaxFilter) or eroded (MinFilter) by a square of ``radius`` pixels."""
    img = Image.fromarray(np.round(ink * 255).astype(np.uint8))
    # ``radius`` 3x3 passes equal one (2*radius+1)-wide pass (square structuring elements compose)
    # but cost 9*radius instead of (2*radius+1)**2 per pixel.
    for _ in range(radius):
        img = img.filter(filter_cls(3))
    return np.asarray(img, np.float32) / 255.0


def _offset(free: int, rng: np.random.Generator) -> int:
    """Return a position in 0..free that is clearly off the middle (5-35% of ``free`` from one end)."""
    u = rng.uniform(0.05, 0.35)
    return round(free * (u if rng.random() < 0.5 else 1.0 - u))


def _canvas_shape(h: int, w: int, rng: np.random.Generator, margin: tuple[float, float]) -> tuple[int, int]:
    """Return a non-square (height, width) leaving a random ``margin`` (fraction of the patch) of space."""
    while True:
        height = h + round(h * rng.uniform(*margin))
        width = w + round(w * rng.uniform(*margin))
        if max(height, width) >= 1.15 * min(height, width):
            return height, width


def _place(ink: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, Box]:
    """Return a ``shape`` canvas with ``ink`` placed off-centre on it, and the box it occupies."""
    (height, width), (h, w) = shape, ink.shape
    y0, x0 = _offset(height - h, rng), _offset(width - w, rng)
    canvas = np.zeros(shape, np.float32)
    canvas[y0:y0 + h, x0:x0 + w] = ink
    return canvas, (x0, y0, x0 + w, y0 + h)


def _placed(digit: np.ndarray, rng: np.random.Generator, size: tuple[int, int],
            margin: tuple[float, float], *, crisp: bool) -> tuple[np.ndarray, Box]:
    """Return the digit upscaled to a random size in ``size`` and placed off-centre on a random canvas."""
    box = int(rng.integers(size[0], size[1] + 1))
    ink = _ink(digit, box, rng, crisp=crisp)
    return _place(ink, _canvas_shape(box, box, rng, margin), rng)


def paper_colour(rng: np.random.Generator) -> np.ndarray:
    """Return a light, slightly warm paper colour (float RGB)."""
    base = rng.uniform(220.0, 248.0)
    # Paper (and indoor light) is never neutral: a little less blue than red, i.e. warm.
    tint = np.array([rng.uniform(0, 6), rng.uniform(-4, 3), -rng.uniform(6, 20)])
    return np.clip(base + tint, 0.0, 255.0)


def pen_colour(rng: np.random.Generator) -> np.ndarray:
    """Return a dark, never pure black, ink colour (float RGB): blue ballpoint, black-ish or pencil grey."""
    kind = rng.integers(3)
    if kind == 0:  # blue ballpoint
        colour = np.array([rng.uniform(15, 45), rng.uniform(25, 55), rng.uniform(90, 140)])
    elif kind == 1:  # black felt tip, which photographs dark grey
        colour = np.full(3, rng.uniform(20, 45)) + rng.uniform(-5, 5, 3)
    else:  # pencil / worn marker
        colour = np.full(3, rng.uniform(50, 80)) + rng.uniform(-4, 4, 3)
    return np.clip(colour, 0.0, 255.0)


def composite(coverage: np.ndarray, paper: np.ndarray, pen: np.ndarray) -> np.ndarray:
    """Return float RGB of ``pen`` ink laid over ``paper`` with the given per-pixel coverage."""
    a = coverage[..., None]
    return paper * (1.0 - a) + pen * a


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Return ``x`` rounded and clipped to uint8."""
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _dark_on_light(digit: np.ndarray, rng: np.random.Generator, size: tuple[int, int] = (112, 320),
                   margin: tuple[float, float] = (0.3, 1.2)) -> tuple[np.ndarray, Box]:
    """Return a uint8 RGB picture of the digit in dark ink on light paper, off-centre, and its box."""
    coverage, box = _placed(digit, rng, size, margin, crisp=bool(rng.random() < 0.7))
    return to_uint8(composite(coverage, paper_colour(rng), pen_colour(rng))), box


def encode(img: Image.Image, fmt: str, **params) -> bytes:
    """Return ``img`` encoded in ``fmt`` with Pillow's ``params``."""
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def _photo(digit: np.ndarray, rng: np.random.Generator) -> tuple[Image.Image, Box, float]:
    """Return an upright RGB "phone photo" of the digit on paper, the digit's box and its tilt (degrees)."""
    long_side = int(rng.integers(400, 1201))
    short_side = round(long_side / _pick(rng, (4 / 3, 3 / 2, 16 / 9)))
    height, width = (long_side, short_side) if rng.random() < 0.5 else (short_side, long_side)
    # People frame the digit loosely but it still fills a good part of the shot.
    ink = _ink(digit, round(short_side * rng.uniform(0.45, 0.75)), rng, crisp=True)
    ink *= rng.uniform(0.85, 1.0)  # pen pressure: ink never covers paper completely
    angle = rng.uniform(-7.0, 7.0)
    ink = rotate(ink, angle)  # the page is never square to the camera
    coverage, box = _place(ink, (height, width), rng)
    rgb = composite(coverage, paper_colour(rng), pen_colour(rng))

    # Uneven light: a linear fall-off in a random direction plus a vignette round a random centre,
    # normalised so the paper's brightness varies by 30-40% across the frame.
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    xx, yy = (2 * xx - width) / long_side, (2 * yy - height) / long_side
    theta = rng.uniform(0.0, 2 * np.pi)
    gradient = xx * np.cos(theta) + yy * np.sin(theta)
    cx, cy = rng.uniform(-0.4, 0.4, 2)
    vignette = (xx - cx) ** 2 + (yy - cy) ** 2
    mix = rng.uniform(0.3, 0.8)
    shade = mix * (gradient - gradient.min()) / np.ptp(gradient) + (1 - mix) * vignette / vignette.max()
    shade = (shade - shade.min()) / np.ptp(shade)
    rgb *= (1.0 - rng.uniform(0.30, 0.40) * shade)[..., None]

    # A slightly soft lens, then sensor noise (added after the blur, as in a camera).
    img = Image.fromarray(to_uint8(rgb)).filter(
        ImageFilter.GaussianBlur(rng.uniform(0.5, 1.3) * long_side / 800))
    noisy = np.asarray(img, np.float32) + rng.normal(0.0, rng.uniform(2.0, 5.0), (height, width, 3))
    return Image.fromarray(to_uint8(noisy)), box, angle


# --------------------------------------------------------------------------------------------------
# The kinds. Each returns a Rendering; the registry at the end defines KINDS and their order.


def _mnist_png(digit, rng):
    """Return the digit image as an unchanged grayscale PNG (28x28 for MNIST)."""
    side = digit.shape[0]
    return Rendering(encode(Image.fromarray(digit), "PNG"), "image/png", (0, 0, side, side), "bright")


def _upscaled_png(digit, rng):
    """Return the digit white on black, enlarged and off-centre on a non-square canvas, L or RGB PNG."""
    coverage, box = _placed(digit, rng, (112, 400), (0.3, 1.5), crisp=False)
    img = Image.fromarray(to_uint8(coverage * 255))
    if rng.random() < 0.5:  # a screenshot is RGB even when it is gray
        img = img.convert("RGB")
    return Rendering(encode(img, "PNG"), "image/png", box, "bright")


def _inverted_png(digit, rng):
    """Return the digit black on white (255 - x), enlarged and off-centre, L or RGB PNG."""
    coverage, box = _placed(digit, rng, (112, 400), (0.3, 1.5), crisp=False)
    img = Image.fromarray(to_uint8(255 - coverage * 255))
    if rng.random() < 0.5:
        img = img.convert("RGB")
    return Rendering(encode(img, "PNG"), "image/png", box, "dark")


def _photo_jpeg(digit, rng):
    """Return a phone photo of the digit on paper as an RGB JPEG (upright pixels)."""
    img, box, angle = _photo(digit, rng)
    params = {"quality": int(rng.integers(60, 91))}
    if rng.random() < 0.5:
        # Phones write Orientation even when it is 1 (upright); readers must cope with the identity.
        exif = Image.Exif()
        exif[ORIENTATION_TAG] = 1
        params["exif"] = exif
    return Rendering(encode(img, "JPEG", **params), "image/jpeg", box, "dark", {"angle": angle})


def _photo_exif_jpeg(digit, rng):
    """Return a phone photo stored rotated, with the EXIF Orientation (3, 6 or 8) that undoes it."""
    upright, box, angle = _photo(digit, rng)
    orientation = _pick(rng, (3, 6, 8))
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    stored = upright.transpose(STORE_FOR_ORIENTATION[orientation])
    data = encode(stored, "JPEG", quality=int(rng.integers(60, 91)), exif=exif)
    return Rendering(data, "image/jpeg", box, "dark",
                      {"orientation": orientation, "upright": upright, "angle": angle})


def _canvas_geometry(digit, rng):
    """Return (coverage 280x280, box) for a digit drawn on a 280x280 browser canvas."""
    # People draw big and roughly, not exactly, in the middle of a drawing pad.
    size = int(rng.integers(180, 281))
    ink = _ink(digit, size, rng, crisp=True)
    x0, y0 = (int(v) for v in rng.integers(0, 280 - size + 1, 2))
    coverage = np.zeros((280, 280), np.float32)
    coverage[y0:y0 + size, x0:x0 + size] = ink
    return coverage, (x0, y0, x0 + size, y0 + size)


def _canvas_png(digit, rng):
    """Return a 280x280 RGBA canvas export: transparent background, the ink only in the alpha channel."""
    coverage, box = _canvas_geometry(digit, rng)
    colour = (0, 0, 0) if rng.random() < 0.5 else _pick(rng, _DARK_COLOURS)
    alpha = to_uint8(coverage * 255)
    rgba = np.zeros((280, 280, 4), np.uint8)
    # Like canvas.toDataURL(): un-premultiplied stroke colour wherever there is any ink, and
    # (0, 0, 0, 0) elsewhere, so dropping alpha leaves a black (or all-dark) picture.
    rgba[alpha > 0, :3] = colour
    rgba[..., 3] = alpha
    img = Image.fromarray(rgba)
    return Rendering(encode(img, "PNG"), "image/png", box, "alpha", {"colour": colour})


def _canvas_white_bg_png(digit, rng):
    """Return a 280x280 RGBA canvas that was filled white first: opaque everywhere, black strokes."""
    coverage, box = _canvas_geometry(digit, rng)
    rgba = np.full((280, 280, 4), 255, np.uint8)
    rgba[..., :3] = to_uint8(255 * (1 - coverage))[..., None]
    return Rendering(encode(Image.fromarray(rgba), "PNG"), "image/png", box, "dark")


def _to_palette(rgb: np.ndarray, adaptive: bool, colours: int) -> Image.Image:
    """Return ``rgb`` as a mode "P" image, adaptive palette or dithered web palette."""
    img = Image.fromarray(rgb)
    if adaptive:
        return img.convert("P", palette=Image.Palette.ADAPTIVE, colors=colours)
    return img.convert("P", palette=Image.Palette.WEB, dither=Image.Dither.FLOYDSTEINBERG)


def _palette_gif(digit, rng):
    """Return the digit dark on light as a palette GIF, sometimes animated with the digit first."""
    rgb, box = _dark_on_light(digit, rng)
    adaptive, colours = bool(rng.random() < 0.7), int(_pick(rng, (16, 64, 256)))
    first = _to_palette(rgb, adaptive, colours)
    blank = np.broadcast_to(rgb[0, 0], rgb.shape).copy()
    snow = blank.copy()
    snow[rng.random(rgb.shape[:2]) < 0.1] = rng.integers(0, 256, 3, dtype=np.uint8)
    # Later frames of a "blinking" GIF: blank paper and/or snow; readers must take frame 0. They
    # differ from each other because Pillow merges identical consecutive frames into one.
    extra = [blank, snow] if rng.random() < 0.5 else [snow, blank]
    frames = [_to_palette(f, adaptive, colours) for f in extra[:int(_pick(rng, (0, 0, 1, 2)))]]
    params = {"save_all": True, "append_images": frames, "duration": int(rng.integers(100, 600)),
              "loop": 0} if frames else {}
    data = encode(first, "GIF", **params)
    return Rendering(data, "image/gif", box, "dark", {"frames": 1 + len(frames)})


def _la_png(digit, rng):
    """Return a gray+alpha ("LA") PNG: white or dark ink on transparency, or opaque white on black."""
    coverage, box = _placed(digit, rng, (112, 320), (0.3, 1.2), crisp=bool(rng.random() < 0.5))
    variant = _pick(rng, ("white_on_transparent", "gray_on_transparent", "opaque"))
    la = np.zeros(coverage.shape + (2,), np.uint8)
    if variant == "opaque":
        # An alpha channel that carries nothing: the gray plane is the picture.
        la[..., 0], la[..., 1], ink = to_uint8(coverage * 255), 255, "bright"
    else:
        white = variant == "white_on_transparent"
        level = int(rng.integers(220, 256)) if white else int(rng.integers(0, 90))
        # Transparent pixels keep either 0 or the ink level, as editors do either; with the latter,
        # dropping alpha leaves a single flat gray.
        la[..., 0] = np.where(coverage > 0, level, _pick(rng, (0, level)))
        la[..., 1], ink = to_uint8(coverage * 255), "alpha"
    img = Image.frombytes("LA", la.shape[1::-1], la.tobytes())
    return Rendering(encode(img, "PNG"), "image/png", box, ink, {"variant": variant})


def _gray16_png(digit, rng):
    """Return a 16-bit grayscale ("I;16") PNG scaled to 0..65535, sometimes inverted."""
    coverage, box = _placed(digit, rng, (112, 320), (0.3, 1.2), crisp=False)
    values = np.round(coverage * 65535)
    inverted = bool(rng.random() < 0.5)
    if inverted:
        values = 65535 - values
    img = Image.fromarray(values.astype(np.uint16))  # uint16 -> mode "I;16"
    return Rendering(encode(img, "PNG"), "image/png", box, "dark" if inverted else "bright",
                      {"inverted": inverted})


def _cmyk_jpeg(digit, rng):
    """Return dark ink on light paper as a CMYK JPEG (as print/prepress tools export)."""
    rgb, box = _dark_on_light(digit, rng)
    # Gray-component replacement, as prepress software does: the dark ink goes mostly to K.
    # Pillow's CMYK->RGB is R = (255 - K) * (1 - C/255), the exact inverse of this.
    x = rgb.astype(np.float32) / 255.0
    k = 1.0 - x.max(axis=2)
    cmy = (1.0 - x - k[..., None]) / np.maximum(1.0 - k, 1e-6)[..., None]
    cmyk = to_uint8(np.concatenate([cmy, k[..., None]], axis=2) * 255)
    img = Image.frombytes("CMYK", cmyk.shape[1::-1], cmyk.tobytes())
    return Rendering(encode(img, "JPEG", quality=int(rng.integers(70, 96))), "image/jpeg", box, "dark")


def _bmp(digit, rng):
    """Return dark ink on light paper as an uncompressed 24-bit BMP."""
    rgb, box = _dark_on_light(digit, rng, size=(112, 260), margin=(0.3, 1.0))  # stays < 1 MB raw
    return Rendering(encode(Image.fromarray(rgb), "BMP"), "image/bmp", box, "dark")


def _webp(digit, rng):
    """Return dark ink on light paper as a lossy WebP (quality ~80)."""
    rgb, box = _dark_on_light(digit, rng, size=(112, 400), margin=(0.3, 1.5))
    data = encode(Image.fromarray(rgb), "WEBP", quality=int(rng.integers(70, 91)))
    return Rendering(data, "image/webp", box, "dark")


def _tiff(digit, rng):
    """Return dark ink on light paper as an LZW- or Deflate-compressed TIFF (as scanners write)."""
    rgb, box = _dark_on_light(digit, rng, size=(112, 400), margin=(0.3, 1.5))
    compression = _pick(rng, ("tiff_lzw", "tiff_lzw", "tiff_adobe_deflate"))
    data = encode(Image.fromarray(rgb), "TIFF", compression=compression, dpi=(300, 300))
    return Rendering(data, "image/tiff", box, "dark", {"compression": compression})


def _solid(ink: np.ndarray, blur: float) -> np.ndarray:
    """Return ``ink`` with solid, rounded strokes: blurred by ``blur`` px, then softly thresholded."""
    # Repeated 3x3 rank filters grow and shrink strokes as squares, which leaves blocky corners and
    # half-covered patches; blurring and re-thresholding at half coverage rounds them off and makes
    # the ink uniformly dark, as a marker or pen leaves it.
    img = Image.fromarray(np.round(ink * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(blur))
    return _smoothstep((np.asarray(img, np.float32) / 255.0 - 0.3) / 0.4)


def _thick_marker_png(digit, rng):
    """Return the digit drawn with a thick marker: strokes dilated at high resolution, dark on light."""
    size = int(rng.integers(160, 321))
    scale = size / 28  # output pixels per MNIST pixel
    ink = _ink(digit, size, rng, crisp=True)
    # Grow each side by 0.4-0.7 MNIST pixels: visibly fatter, yet the loops of 0, 6, 8, 9 mostly stay
    # open (a loop the writer nearly closed fills in, as it would with a real marker).
    ink = _morph(ink, ImageFilter.MaxFilter, max(1, round(scale * rng.uniform(0.4, 0.7))))
    coverage, box = _place(_solid(ink, 0.4 * scale), _canvas_shape(size, size, rng, (0.3, 1.2)), rng)
    rgb = composite(coverage, paper_colour(rng), np.array(_pick(rng, _DARK_COLOURS), np.float64))
    return Rendering(encode(Image.fromarray(to_uint8(rgb)), "PNG"), "image/png", box, "dark")


def _thin_pen_png(digit, rng):
    """Return the digit drawn with a fine pen: strokes eroded at high resolution, dark on light."""
    size = int(rng.integers(240, 401))
    scale = size / 28
    ink = _ink(digit, size, rng, crisp=True)
    mass = ink.sum()
    # Shrink each side by up to 0.3-0.55 MNIST pixels, one pixel at a time, but stop before less than
    # 45% of the ink is left: MNIST strokes vary in width, and the thin ones must not vanish.
    for _ in range(round(scale * rng.uniform(0.3, 0.55))):
        thinner = _morph(ink, ImageFilter.MinFilter, 1)
        if thinner.sum() < 0.45 * mass:
            break
        ink = thinner
    coverage, box = _place(_solid(ink, 0.25 * scale), _canvas_shape(size, size, rng, (0.3, 1.0)), rng)
    rgb = composite(coverage, paper_colour(rng), pen_colour(rng))
    return Rendering(encode(Image.fromarray(to_uint8(rgb)), "PNG"), "image/png", box, "dark")


def _noisy_png(digit, rng):
    """Return a dusty scan: dark on light with specks and dust dots away from the digit, plus noise."""
    # Noise does not compress: at most ~530 px square keeps even an RGB file well under MAX_BYTES.
    coverage, box = _placed(digit, rng, (112, 240), (0.5, 1.2), crisp=True)
    paper, pen = paper_colour(rng), pen_colour(rng)
    img = Image.fromarray(to_uint8(composite(coverage, paper, pen)))
    height, width = coverage.shape
    # Keep the dirt off the digit itself (its inked bounding box plus a margin), so the digit stays
    # clean but a crop to "everything dark" would take in the dirt too.
    ys, xs = np.nonzero(coverage > 0.1)
    pad = 0.15 * (box[2] - box[0])
    if xs.size:
        keep_out = (xs.min() - pad, ys.min() - pad, xs.max() + pad, ys.max() + pad)
    else:  # faint everywhere (not a digit, e.g. a soft gradient): keep the dirt off its frame
        keep_out = (box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad)

    def away(n: int) -> list[tuple[int, int]]:
        """Return up to ``n`` random pixel positions outside ``keep_out``."""
        x, y = rng.integers(0, width, n), rng.integers(0, height, n)
        inside = (x > keep_out[0]) & (x < keep_out[2]) & (y > keep_out[1]) & (y < keep_out[3])
        return list(zip(x[~inside].tolist(), y[~inside].tolist()))

    draw = ImageDraw.Draw(img)
    for x, y in away(int(rng.integers(8, 40))):  # dust: small dark blobs
        r = rng.uniform(0.8, 3.0)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(to_uint8(pen + rng.uniform(0, 60))))
    pixels = np.asarray(img, np.float32).copy()
    specks = away(int(height * width * rng.uniform(0.002, 0.008)))  # salt and pepper
    if specks:
        sx, sy = np.array(specks).T
        pixels[sy, sx] = np.where(rng.random(len(specks)) < 0.6, 0.0, 255.0)[:, None]
    pixels += rng.normal(0.0, rng.uniform(4.0, 12.0), pixels.shape)
    out = Image.fromarray(to_uint8(pixels))
    if rng.random() < 0.5:  # grayscale scans are common too
        out = out.convert("L")
    return Rendering(encode(out, "PNG"), "image/png", box, "dark", {"keep_out": keep_out})


_RENDERERS: dict[str, Callable[[np.ndarray, np.random.Generator], Rendering]] = {
    "mnist_png": _mnist_png,
    "upscaled_png": _upscaled_png,
    "inverted_png": _inverted_png,
    "photo_jpeg": _photo_jpeg,
    "photo_exif_jpeg": _photo_exif_jpeg,
    "canvas_png": _canvas_png,
    "canvas_white_bg_png": _canvas_white_bg_png,
    "palette_gif": _palette_gif,
    "la_png": _la_png,
    "gray16_png": _gray16_png,
    "cmyk_jpeg": _cmyk_jpeg,
    "bmp": _bmp,
    "webp": _webp,
    "tiff": _tiff,
    "thick_marker_png": _thick_marker_png,
    "thin_pen_png": _thin_pen_png,
    "noisy_png": _noisy_png,
}

KINDS: tuple[str, ...] = tuple(_RENDERERS)


# --------------------------------------------------------------------------------------------------
# Public API


def render(digit: np.ndarray, kind: str, rng: np.random.Generator) -> Rendering:
    """Return the full rendering of ``digit`` as ``kind`` (bytes plus self-check details)."""
    digit = np.asarray(digit)
    if (digit.ndim != 2 or digit.shape[0] != digit.shape[1] or not 8 <= digit.shape[0] <= 512
            or digit.dtype != np.uint8):
        raise ValueError(f"digit must be a square uint8 array of 8 to 512 px a side, got "
                         f"{digit.dtype} {digit.shape}")
    if kind not in _RENDERERS:
        raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")
    return _RENDERERS[kind](digit, rng)


def rerender(digit: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[bytes, str]:
    """Return ``digit`` (square uint8, white on black) rendered as ``kind``: (file bytes, MIME type).

    Raises ValueError for a wrong-shaped digit or an unknown kind.
    """
    rendering = render(digit, kind, rng)
    return rendering.data, rendering.mime


def kind_rng(seed: int, kind: str) -> np.random.Generator:
    """Return the generator for ``kind``: seeded by name, so adding a kind changes no other kind's files."""
    return np.random.default_rng([seed, zlib.crc32(kind.encode())])


def rerender_set(images: Sequence[np.ndarray], labels: Sequence[int], n_per_kind: int,
                 seed: int = 0, kinds: Sequence[str] = KINDS) -> list[tuple[str, int, bytes, str]]:
    """Return (kind, label, bytes, mime) for ``n_per_kind`` random digits per kind, the same for a seed.

    Digits are drawn without replacement within a kind (with replacement only if ``n_per_kind``
    exceeds the number of images), independently for each kind. ``images`` may be an array of
    equal-sized digits or a list of square digits of any sizes.
    """
    out = []
    for kind in kinds:
        rng = kind_rng(seed, kind)
        picks = rng.choice(len(images), n_per_kind, replace=n_per_kind > len(images))
        for i in picks:
            data, mime = rerender(images[i], kind, rng)
            out.append((kind, int(labels[i]), data, mime))
    return out
