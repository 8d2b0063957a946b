"""Turn an uploaded image into what the network was trained on.

MNIST digits are white ink on black, cropped to the ink, scaled so the longer
side is 20 pixels (keeping the aspect ratio), and placed in a 28x28 field
with their centre of mass at pixel (14, 14) (``model.mnistform``). Uploads
are anything but: phone photos of dark ink on uneven paper, browser canvases
whose strokes live in the alpha channel, scans, inverted or already-MNIST-like
images, in many modes and formats. This module is the pipeline from bytes to
the network's input, the only place with upload-specific steps, in order:

    preprocess(bytes)                   = normalize_digit(decode_image(bytes))
    decode_image    format whitelist, pixel limit, first frame, JPEG draft, EXIF orientation
    normalize_digit:
      ink_map:
        _to_gray    luminance, transparency composited, at the working resolution
        _ink        which side is ink; paper shading, noise and a noise floor removed
      _digit_box    the digit's bounds, specks ignored
      to_mnist:
        _fit        strokes at full intensity, stroke width into MNIST's range, 20 px box
        centre      centre of mass at (14, 14)                  (model.mnistform)

Reading a whole number (``numbers.py``) uses the same steps: ``decode_image``
and ``ink_map`` at a larger working resolution, then ``to_mnist`` for each
digit it finds.

Decoding is ``decode.py``'s, and so is the one decision about resolution
(``working_scale``): large images are analysed at about ``ANALYSIS_SIDE``
pixels on the long side. Generic image kernels (Otsu, quantiles, window
filters, component labelling, resampling) are in ``kernels.py``. Every
failure is an ``ImageError`` subclass carrying its HTTP status; nothing else
escapes for any input.
"""

from __future__ import annotations

import functools
import operator

import numpy as np
from PIL import Image, ImageStat

from model.data import INPUT_SHAPE
from model.mnistform import BOX, CENTRE, FIELD, area_average, centre, even_strokes

from .decode import ANALYSIS_SIDE, DEFAULT_MAX_PIXELS, BlankImage, decode_image, working_scale
from .kernels import (border, extent, image_of, label_components, median3, noise_level, otsu, pixels,
                      quantiles, smoothing_resampler, subsample, window_filter)

__all__ = [
    "ink_map",
    "normalize_digit",
    "preprocess",
    "smooth_background",
    "to_mnist",
]

REDUCE_8BIT_BELOW = 0.8  # 8-bit images: Pillow's BOX reduction in C, once it saves a third of the pixels
REDUCE_WIDE_BELOW = 0.5  # 16-bit and float images: area averaging in float, only at half size or less

BACKGROUND_CELLS = 16  # the paper level is estimated on a grid this many cells long
COMPONENT_AREA = 32 * 32  # pixels of the coarse grid the speck filter labels
COVERED = 51  # a grid cell is ink when a fifth (51/255) of it is, so stray noise pixels don't bridge cells
SPECK_SHARE = 0.08  # pieces smaller than this share of the largest are dust, unless inside the digit's box
EDGE_PAD = 0.02  # the box grows by this share of its size to take in the faint anti-aliased edge...
EDGE_LEVEL = 0.25  # ...whose pixels are above this share of the ink threshold
EVEN_FRAME = 2.0  # a frame varying by at most this much (0..255) is synthetic: no shading, no noise
NOISE_SIGMA = 4.0  # above this pixel noise (0..255), images of NOISY_MIN_SIDE px or more are median-filtered
NOISY_MIN_SIDE = 64
NOISE_FLOOR = 3.0  # ink must exceed the paper by this many sigmas of the frame's residual noise
SHADING_MIN_SIDE = 32  # smaller images are too coarse to tell shading from strokes
MIN_CONTRAST = 24.0  # ink must differ from paper by this much (0..255) or it's blank
STROKE_LEVEL = 0.6  # the strokes' 60th-percentile level becomes full intensity (255)

# -- the entry points ---------------------------------------------------------------


def preprocess(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Return the MNIST-style uint8 (28, 28) digit for uploaded bytes (decode + normalise)."""
    return normalize_digit(decode_image(data, max_pixels))


def normalize_digit(image: Image.Image) -> np.ndarray:
    """Return the digit as MNIST would store it: uint8 (28, 28), white on black.

    Raises
    ------
    BlankImage : no ink that differs from the background.
    """
    if image.mode == "L" and image.size == INPUT_SHAPE[::-1]:
        ready = _already_mnist(image)
        if ready is not None:
            return ready
    ink = ink_map(image)
    top, bottom, left, right, threshold = _digit_box(ink)
    return to_mnist(ink[top:bottom, left:right], threshold)


def ink_map(image: Image.Image, side: int = ANALYSIS_SIDE) -> np.ndarray:
    """Return the ink of a decoded image at the working resolution for ``side``: float32,
    bright ink on a zero background (``_to_gray``, then ``_ink``).

    Raises
    ------
    BlankImage : no ink that differs from the background.
    """
    ink = _ink(_to_gray(image, side))
    if ink.max() < MIN_CONTRAST:
        raise BlankImage("no digit found: the image is blank or has too little contrast")
    return ink


def to_mnist(crop: np.ndarray, threshold: float) -> np.ndarray:
    """Return one digit's ink, cropped to it, in MNIST's form: uint8 (28, 28) (``_fit``, then
    ``centre``). ``threshold``: the ink level that separates strokes from paper."""
    return centre(_fit(crop, threshold))


# -- the steps, in order ---------------------------------------------------------------


_INDICES = range(FIELD)


def _already_mnist(image: Image.Image) -> np.ndarray | None:
    """Return a 28x28 "L" image's pixels if it is already in MNIST's form, else None.

    MNIST form: black frame, white ink reaching full intensity, the digit's
    longer side 19-20 px, its centre of mass within half a pixel of (14, 14).
    Running the full normalisation on such an image would only resample it.
    """
    # Pillow's bounding box and extrema (C), then two NumPy reductions and plain
    # Python on 28 numbers a side: NumPy's per-call cost dominates arrays this small.
    box = image.getbbox()
    if box is None:
        return None
    left, top, right, bottom = box  # right and bottom exclusive
    if not (0 < left and 0 < top and right < FIELD and bottom < FIELD):
        return None
    if max(right - left, bottom - top) not in (19, BOX) or image.getextrema()[1] < 200:
        return None
    digit = pixels(image, np.uint8)
    rows = np.add.reduce(digit, axis=1, dtype=np.int32).tolist()
    cols = np.add.reduce(digit, axis=0, dtype=np.int32).tolist()
    mass = sum(rows)
    cy = sum(map(operator.mul, rows, _INDICES)) / mass
    cx = sum(map(operator.mul, cols, _INDICES)) / mass
    if abs(cy - CENTRE) > 0.5 or abs(cx - CENTRE) > 0.5:
        return None
    return digit


def _to_gray(image: Image.Image, side: int = ANALYSIS_SIDE) -> np.ndarray:
    """Return the image as float32 luminance in [0, 255] at the working resolution,
    transparency composited.

    Transparent regions are composited onto whichever of black or white
    contrasts with the opaque pixels, so a canvas drawing in black (or any
    colour) on transparency keeps its strokes visible. Compositing happens at
    full resolution, then the image is reduced: 8-bit images by Pillow, wider
    ones (16-bit, float) in float after conversion.
    """
    mode = image.mode
    if mode == "P" or (mode in ("RGB", "L") and "transparency" in image.info):
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        image = _composite(image if mode == "RGBA" else image.convert("RGBA"))  # at full resolution, in Pillow (C)
        mode = "L"
    image = _reduce_8bit(image, side)
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float32)
        lo, hi = float(values.min()), float(values.max())
        if hi > 255.0 or lo < 0.0:  # wider than 8 bits: stretch linearly, don't clip
            values = (values - lo) * (255.0 / max(hi - lo, 1e-6))
        return _reduce_wide(values, side)
    if mode != "L":
        image = image.convert("RGB").convert("L") if mode not in ("RGB", "1") else image.convert("L")
    return _reduce_wide(pixels(image, np.uint8).astype(np.float32), side)


_OPAQUE = [255 if a > 127 else 0 for a in range(256)]  # alpha -> opaque mask lookup table


def _composite(rgba: Image.Image) -> Image.Image:
    """Return an RGBA image flattened to grayscale over black or white.

    The background is whichever contrasts with the opaque pixels (the strokes
    of a canvas drawing), so ink of any colour on transparency stays visible.
    A canvas drawn in one colour (every pixel's colour the same, only the
    alpha varies: what a browser exports) is flattened by a lookup table on
    its alpha, made by Pillow's own compositing (``_flattened``): the same
    pixels for a fraction of the work.
    """
    histogram = np.array(rgba.histogram()).reshape(4, 256)  # one pass (getextrema makes one per band)
    if (np.count_nonzero(histogram[:3], axis=1) == 1).all():
        colour = tuple(int(c) for c in histogram[:3].argmax(axis=1))
        opaque = bool(histogram[3, 128:].any())
        level = 255 if not opaque or _luminance(colour) < 128 else 0
        return rgba.getchannel("A").point(_flattened(colour, level))
    alpha = rgba.getchannel("A")
    gray = rgba.convert("L")
    if alpha.getextrema()[0] >= 250:
        return gray
    opaque = alpha.point(_OPAQUE)
    stat = ImageStat.Stat(gray, mask=opaque)
    ink = stat.mean[0] if stat.count[0] else 0.0
    level = 255 if ink < 128 else 0
    flat = Image.new("RGBA", rgba.size, (level, level, level, 255))
    return Image.alpha_composite(flat, rgba).convert("L")


@functools.lru_cache(maxsize=64)
def _luminance(colour: tuple[int, int, int]) -> int:
    """Return Pillow's luminance of an RGB colour."""
    return Image.new("RGB", (1, 1), colour).convert("L").getpixel((0, 0))


@functools.lru_cache(maxsize=64)
def _flattened(colour: tuple[int, int, int], level: int) -> list[int]:
    """Return the lookup table alpha -> the luminance of ``colour`` at that alpha composited
    over ``level`` (black or white), computed by ``Image.alpha_composite`` itself."""
    ramp = Image.new("RGBA", (256, 1), (*colour, 0))
    ramp.putalpha(Image.frombytes("L", (256, 1), bytes(range(256))))
    flat = Image.new("RGBA", (256, 1), (level, level, level, 255))
    return list(Image.alpha_composite(flat, ramp).convert("L").tobytes())


def _reduce_8bit(image: Image.Image, side: int) -> Image.Image:
    """Return a large image area-averaged down to the working resolution, in Pillow (C),
    before anything becomes a float array (modes Pillow cannot average are left alone)."""
    scale = working_scale(*image.size, side)
    if scale > REDUCE_8BIT_BELOW:
        return image
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("1", "CMYK", "YCbCr"):
        image = image.convert("L")
    if image.mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):
        return image
    width, height = image.size
    return image.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.BOX)


def _reduce_wide(gray: np.ndarray, side: int) -> np.ndarray:
    """Return ``gray`` area-averaged to the working resolution where Pillow could not
    (16-bit modes): only when it is still at least twice too large."""
    h, w = gray.shape
    scale = working_scale(w, h, side)
    if scale > REDUCE_WIDE_BELOW:
        return gray
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return pixels(image_of(gray).resize(size, Image.BOX))


def _ink(gray: np.ndarray) -> np.ndarray:
    """Return ink intensity in [0, 255]: bright ink on a zero background.

    Which side is ink: the background dominates the image's outer frame. If
    the frame is brighter than the middle of the image's range, the ink is
    dark and the image is inverted. Uneven illumination (a photo's shadow or
    vignette) is flattened by subtracting a smooth background estimate: a
    morphological opening at low resolution removes the thin strokes and
    keeps the slowly varying paper. Sensor noise and dust are damped by a 3x3
    median filter (noisy images of 64 px and more), and three times the noise
    that remains on the frame is a floor below which nothing counts as ink.
    A perfectly even frame (synthetic images, canvases, MNIST itself) takes a
    shortcut: its level is the background and there is no noise to remove.
    """
    frame = border(gray)
    f_min, f_max = float(frame.min()), float(frame.max())
    if f_max - f_min <= EVEN_FRAME:
        level = 0.5 * (f_min + f_max)
        ink = gray - level if level <= 0.5 * (float(gray.min()) + float(gray.max())) else level - gray
        return np.maximum(ink, 0.0, out=ink)
    lo, hi = quantiles(subsample(gray), 0.001, 0.999)  # a small digit may be under 1% of the pixels
    f_lo, f_median, f_hi = quantiles(frame, 0.05, 0.5, 0.95)
    if f_median > (lo + hi) / 2:
        gray = 255.0 - gray
        frame = 255.0 - frame
        f_lo, f_median, f_hi = 255.0 - f_hi, 255.0 - f_median, 255.0 - f_lo
    if min(gray.shape) >= NOISY_MIN_SIDE and noise_level(frame) > NOISE_SIGMA:
        # Only on noisy images: a median also erases the thinnest strokes.
        gray = median3(gray)
        frame = border(gray)
        f_lo, f_median, f_hi = quantiles(frame, 0.05, 0.5, 0.95)
    if f_hi - f_lo > MIN_CONTRAST and min(gray.shape) >= SHADING_MIN_SIDE:
        background = smooth_background(gray)
        residual = frame - border(background)
    else:
        background = f_median
        residual = frame - f_median
    # Sigmas of the frame's pixel noise: robust to a digit touching the frame,
    # since the estimate uses neighbour differences, not levels.
    floor = max(0.0, NOISE_FLOOR * noise_level(residual))
    ink = gray - (background + floor)
    return np.maximum(ink, 0.0, out=ink)


def smooth_background(gray: np.ndarray) -> np.ndarray:
    """Return the slowly varying paper level of ``gray`` (ink bright, paper dark).

    The image is area-averaged onto a coarse grid (``BACKGROUND_CELLS`` on the
    long side), opened there (a minimum then a maximum over 3x3 cells, so
    strokes narrower than about three cells vanish and smooth shading stays),
    and brought back to full size by smoothed bilinear interpolation.
    """
    h, w = gray.shape
    down_y, up_y = smoothing_resampler(h, max(4, round(h * BACKGROUND_CELLS / max(h, w))))
    down_x, up_x = smoothing_resampler(w, max(4, round(w * BACKGROUND_CELLS / max(h, w))))
    cells = down_y @ gray @ down_x.T
    opened = window_filter(window_filter(cells, np.minimum, 3), np.maximum, 3)
    return up_y @ opened @ up_x.T


def _digit_box(ink: np.ndarray) -> tuple[int, int, int, int, float]:
    """Return (top, bottom, left, right) bounds of the digit, specks ignored, and
    the ink threshold used.

    Ink is thresholded (Otsu); at low resolution, connected pieces smaller
    than ``SPECK_SHARE`` of the largest one are dropped as dust or noise,
    unless they lie inside the main digit's box (the dot of a broken stroke).
    The box is then refined at full resolution to include the faint
    anti-aliased edges.
    """
    threshold = otsu(ink)
    mask = ink > threshold
    h, w = mask.shape
    t, b, l, r = 0, h, 0, w  # the region whose ink counts
    if max(h, w) > 40:
        # A coarse grid of about COMPONENT_AREA cells, whatever the aspect ratio.
        factor = max(1, int(np.ceil(np.sqrt(h * w / COMPONENT_AREA))))
        # Pillow's reduce: the mean of each cell (edge cells: of their own pixels).
        coverage = image_of(np.multiply(mask, 255, dtype=np.uint8), "L").reduce(factor)
        small = pixels(coverage, np.uint8) >= COVERED
        labels = label_components(small)
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        # Everything inside the kept pieces' box stays (broken strokes, dots).
        rows, cols = extent(sizes[labels] >= SPECK_SHARE * sizes.max())
        t, b = rows[0] * factor, min(h, (rows[-1] + 1) * factor)
        l, r = cols[0] * factor, min(w, (cols[-1] + 1) * factor)
    rows, cols = extent(mask[t:b, l:r])
    top, bottom, left, right = t + rows[0], t + rows[-1] + 1, l + cols[0], l + cols[-1] + 1
    pad = max(1, int(round(EDGE_PAD * max(bottom - top, right - left))))
    t0, b0 = max(0, top - pad), min(h, bottom + pad)
    l0, r0 = max(0, left - pad), min(w, right + pad)
    rows, cols = extent(ink[t0:b0, l0:r0] > EDGE_LEVEL * threshold)
    return t0 + rows[0], t0 + rows[-1] + 1, l0 + cols[0], l0 + cols[-1] + 1, threshold


def _fit(crop: np.ndarray, threshold: float) -> np.ndarray:
    """Return the cropped digit with its strokes at full intensity and of MNIST's width,
    scaled so its longer side is 20 px: area averaging to shrink, bilinear to enlarge."""
    h, w = crop.shape
    scale = BOX / max(h, w)
    strokes = crop[crop > threshold]
    level = quantiles(strokes, STROKE_LEVEL)[0] if strokes.size else float(crop.max())
    crop = even_strokes(np.clip(crop * (255.0 / max(level, 1e-3)), 0.0, 255.0), scale)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    if (new_w, new_h) == (w, h):  # already 20 px on the long side (MNIST-like uploads)
        return crop
    if scale < 1.0:  # area averaging, as two small matrix products
        return area_average(h, new_h) @ crop @ area_average(w, new_w).T
    return pixels(image_of(crop).resize((new_w, new_h), Image.BILINEAR))
