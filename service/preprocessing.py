"""Turn an uploaded image into what the network was trained on.

MNIST digits are white ink on black, cropped to the ink, scaled so the longer
side is 20 pixels (keeping the aspect ratio), and placed in a 28x28 field
with their centre of mass at pixel (14, 14). Uploads are anything but: phone
photos of dark ink on uneven paper, browser canvases whose strokes live in
the alpha channel, scans, inverted or already-MNIST-like images, in many
modes and formats. This module owns the whole path from bytes to the
network's input and is the only place with upload-specific steps:

    decode_image(bytes)          -> PIL image (format whitelist, pixel limit,
                                    first frame, EXIF orientation)
    normalize_digit(image)       -> uint8 (28, 28), MNIST-style
    to_input_array(image)        -> float32 (1, 784), scaled by model.data

Every failure is an ``ImageError`` subclass carrying its HTTP status; the
service turns them into JSON errors. Nothing else escapes for any input.
"""

from __future__ import annotations

import functools
import io
import operator
import warnings
from struct import error as struct_error

import numpy as np
from PIL import Image, ImageFile, ImageOps, ImageStat, UnidentifiedImageError

from model.data import INPUT_SHAPE, scale_pixels

__all__ = [
    "ACCEPTED_FORMATS",
    "BlankImage",
    "ImageError",
    "ImageTooLarge",
    "InvalidImage",
    "decode_image",
    "normalize_digit",
    "preprocess",
    "to_input_array",
]

ACCEPTED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")
DEFAULT_MAX_PIXELS = 40_000_000

BOX = 20  # MNIST fits the digit in a 20x20 box...
FIELD = INPUT_SHAPE[0]  # ...inside a 28x28 field
CENTRE = 14.0  # where MNIST's centres of mass sit (measured: 13.99, 14.01)
ANALYSIS_SIDE = 160  # larger uploads are reduced to this long side first (speed)...
MIN_SHORT_SIDE = 96  # ...unless that would leave the short side below this
BACKGROUND_CELLS = 16  # the paper level is estimated on a grid this many cells long
SAMPLE_ABOVE = 8192  # image-wide statistics use a quarter of the pixels of larger images
COMPONENT_AREA = 32 * 32  # pixels of the coarse grid the speck filter labels
NOISE_SIGMA = 4.0  # above this pixel noise (0..255), images are median-filtered
MIN_CONTRAST = 24.0  # ink must differ from paper by this much (0..255) or it's blank
# MNIST strokes are 1.2 to 2.9 px wide (5th-95th percentile at 28x28). Strokes
# outside this band after scaling are thickened or thinned first.
MIN_STROKE_PX = 1.6
MAX_STROKE_PX = 3.2

# Pillow reads the whole file into memory for some formats; these keep its own
# guards on. The explicit pixel check in decode_image fires first.
Image.MAX_IMAGE_PIXELS = DEFAULT_MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Pillow's bomb warning (above MAX_IMAGE_PIXELS) is an error here, process-wide:
# a per-call ``warnings.catch_warnings()`` is not thread-safe, and costs 3 us.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


class ImageError(ValueError):
    """An upload that cannot become a network input; ``status`` is the HTTP status."""

    status = 400
    code = "invalid_image"


class InvalidImage(ImageError):
    """Not an image, an unsupported format, or a corrupt or truncated file."""


class ImageTooLarge(ImageError):
    """More pixels than the configured limit (e.g. a decompression bomb)."""

    status = 413
    code = "image_too_large"


class BlankImage(ImageError):
    """A valid image with no digit in it (uniform, or too little contrast)."""

    status = 422
    code = "blank_image"


# -- decoding -----------------------------------------------------------------


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Return the first frame of the uploaded image, upright and fully loaded.

    Only the formats in ``ACCEPTED_FORMATS`` are tried. The pixel count is
    checked from the header, before any pixel is decoded. Large JPEGs are
    decoded at a reduced scale (``draft``), which is far cheaper than
    decoding every pixel and resizing afterwards.

    Raises
    ------
    InvalidImage : empty, unrecognised, unsupported or corrupt data.
    ImageTooLarge : width x height above ``max_pixels``.
    """
    if not data:
        raise InvalidImage("the image is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
        width, height = image.size
        if width < 1 or height < 1:
            raise InvalidImage(f"the image has no pixels ({width}x{height})")
        if width * height > max_pixels:
            raise ImageTooLarge(f"the image is {width}x{height} = {width * height:,} pixels; "
                                f"the limit is {max_pixels:,}")
        analysis = _analysis_scale(width, height)
        if image.format == "JPEG" and analysis <= 0.5:
            # DCT scaling by 1/2, 1/4 or 1/8 while both sides stay >= the request
            # (here 0.6x the analysis size: the coarsest scale wins, decoding at 1/8
            # costs a fraction of 1/4); an RGB JPEG is decoded straight to luminance.
            scale = 0.6 * analysis
            image.draft("L" if image.mode in ("RGB", "L") else None,
                        (max(1, int(width * scale)), max(1, int(height * scale))))
        image.load()  # the first frame only; animated files are never iterated
        image = _upright(image)
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        if isinstance(exc, UnidentifiedImageError):
            raise InvalidImage("not a supported image; send PNG, JPEG, GIF, BMP, WebP or TIFF") from None
        raise ImageTooLarge(f"the image has too many pixels ({exc})") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, KeyError,
            struct_error, MemoryError, ZeroDivisionError, RuntimeError) as exc:
        # Pillow's decoders signal corrupt or truncated data with all of these.
        raise InvalidImage(f"the image data is corrupt or truncated ({type(exc).__name__})") from None
    return image


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag, ignoring a malformed one."""
    try:
        orientation = image.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - malformed EXIF is common and harmless
        return image
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        return ImageOps.exif_transpose(image)
    return image


# -- normalisation ---------------------------------------------------------------


def _to_gray(image: Image.Image) -> np.ndarray:
    """Return the image as float32 luminance in [0, 255], transparency composited.

    Transparent regions are composited onto whichever of black or white
    contrasts with the opaque pixels, so a canvas drawing in black (or any
    colour) on transparency keeps its strokes visible.
    """
    mode = image.mode
    if mode == "P" or (mode in ("RGB", "L") and "transparency" in image.info):
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        image = _composite(image.convert("RGBA"))  # at full resolution, in Pillow (C)
        mode = "L"
    image = _shrink(image)
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float32)
        lo, hi = float(values.min()), float(values.max())
        if hi > 255.0 or lo < 0.0:  # wider than 8 bits: stretch linearly, don't clip
            return (values - lo) * (255.0 / max(hi - lo, 1e-6))
        return values
    if mode != "L":
        image = image.convert("RGB").convert("L") if mode not in ("RGB", "1") else image.convert("L")
    return _pixels(image, np.uint8).astype(np.float32)


def _pixels(image: Image.Image, dtype=np.float32) -> np.ndarray:
    """Return the pixels of an "L" (uint8) or "F" (float32) image as a read-only array.

    ``np.frombuffer`` over ``tobytes()``: a fraction of the cost of
    ``np.asarray``'s array-interface round trip on the small images here.
    """
    width, height = image.size
    return np.frombuffer(image.tobytes(), dtype).reshape(height, width)


def _image(values: np.ndarray, mode: str = "F") -> Image.Image:
    """Return a 2-D array as an "F" (float32) or "L" (uint8) image sharing its
    memory (no copy when it already has that dtype and is contiguous)."""
    values = np.ascontiguousarray(values, dtype=np.float32 if mode == "F" else np.uint8)
    return Image.frombuffer(mode, values.shape[::-1], values, "raw", mode, 0, 1)


_OPAQUE = [255 if a > 127 else 0 for a in range(256)]  # alpha -> opaque mask lookup table


def _composite(rgba: Image.Image) -> Image.Image:
    """Return an RGBA image flattened to grayscale over black or white.

    The background is whichever contrasts with the opaque pixels (the strokes
    of a canvas drawing), so ink of any colour on transparency stays visible.
    """
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


def _analysis_scale(width: int, height: int) -> float:
    """Return the scale (<= 1) that brings an image to the analysis resolution."""
    scale = max(ANALYSIS_SIDE / max(width, height), MIN_SHORT_SIDE / min(width, height))
    return min(1.0, scale)


def _shrink(image: Image.Image) -> Image.Image:
    """Return a large image area-averaged down to the analysis resolution.

    Done on the 8-bit image in Pillow (C), before anything becomes a float
    array; modes ``reduce`` does not handle are left to ``_reduce`` later.
    """
    scale = _analysis_scale(*image.size)
    if scale > 0.8:
        return image
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("1", "CMYK", "YCbCr"):
        image = image.convert("L")
    if image.mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):
        return image
    width, height = image.size
    return image.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.BOX)


def _reduce(gray: np.ndarray) -> np.ndarray:
    """Return ``gray`` area-averaged to the analysis resolution (modes Pillow could not reduce)."""
    h, w = gray.shape
    scale = _analysis_scale(w, h)
    if scale > 0.5:
        return gray
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return _pixels(_image(gray).resize(size, Image.BOX))


def _border(gray: np.ndarray) -> np.ndarray:
    """Return the pixels of the outer frame (about 4% of each side, at least 1 px)."""
    h, w = gray.shape
    by, bx = max(1, h // 25), max(1, w // 25)
    return np.concatenate([gray[:by].ravel(), gray[-by:].ravel(),
                           gray[by:-by, :bx].ravel(), gray[by:-by, -bx:].ravel()])


def _sample(values: np.ndarray) -> np.ndarray:
    """Return every other row and column of a large image, for statistics over its
    pixels (histograms cost about 2 ns a pixel; a quarter of them is plenty)."""
    return values[::2, ::2] if values.size > SAMPLE_ABOVE else values


def _quantiles(values: np.ndarray, *qs: float) -> list[float]:
    """Return nearest-rank quantiles (q in [0, 1]); np.partition is much cheaper
    than np.percentile on the small arrays here."""
    flat = values.ravel()
    ks = [min(flat.size - 1, max(0, int(round(q * (flat.size - 1))))) for q in qs]
    part = np.partition(flat, ks)
    return [float(part[k]) for k in ks]


def _noise_level(values: np.ndarray) -> float:
    """Return a robust estimate of pixel noise: the median absolute difference of
    neighbours (slow shading cancels out), scaled to a Gaussian sigma."""
    return _quantiles(np.abs(np.diff(values)), 0.5)[0] / 0.954


_LEVELS = np.arange(256, dtype=np.int64)


def _otsu(values: np.ndarray) -> float:
    """Return Otsu's threshold of values in [0, 255] (maximises between-class variance).

    With cumulative counts w0 and sums m0 below each level, the between-class
    variance is proportional to (M * w0 - W * m0)^2 / (w0 * (W - w0)).
    """
    hist = np.bincount(_sample(values).astype(np.uint8).ravel(), minlength=256)  # values are in [0, 255]
    w0 = hist.cumsum()
    m0 = (hist * _LEVELS).cumsum()
    total_w, total_m = int(w0[-1]), int(m0[-1])
    numerator = (total_m * w0 - total_w * m0).astype(np.float64) ** 2
    denominator = (w0 * (total_w - w0)).astype(np.float64)
    between = np.divide(numerator, denominator, out=np.zeros(256), where=denominator > 0)
    return float(between.argmax()) + 0.5


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
    border = _border(gray)
    b_min, b_max = float(border.min()), float(border.max())
    if b_max - b_min <= 2.0:
        level = 0.5 * (b_min + b_max)
        ink = gray - level if level <= 0.5 * (float(gray.min()) + float(gray.max())) else level - gray
        return np.maximum(ink, 0.0, out=ink)
    lo, hi = _quantiles(_sample(gray), 0.001, 0.999)  # a small digit may be under 1% of the pixels
    b_lo, b_median, b_hi = _quantiles(border, 0.05, 0.5, 0.95)
    if b_median > (lo + hi) / 2:
        gray = 255.0 - gray
        border = 255.0 - border
        b_lo, b_median, b_hi = 255.0 - b_hi, 255.0 - b_median, 255.0 - b_lo
    if min(gray.shape) >= 64 and _noise_level(border) > NOISE_SIGMA:
        # Only on noisy images: a median also erases the thinnest strokes.
        gray = _median3(gray)
        border = _border(gray)
        b_lo, b_median, b_hi = _quantiles(border, 0.05, 0.5, 0.95)
    if b_hi - b_lo > MIN_CONTRAST and min(gray.shape) >= 32:
        background = _smooth_background(gray)
        border_residual = border - _border(background)
    else:
        background = b_median
        border_residual = border - b_median
    # 3 sigma of the frame's pixel noise: robust to a digit touching the frame,
    # since the estimate uses neighbour differences, not levels.
    floor = max(0.0, 3.0 * _noise_level(border_residual))
    ink = gray - (background + floor)
    return np.maximum(ink, 0.0, out=ink)


def _window_filter(image: np.ndarray, reduce, size: int) -> np.ndarray:
    """Return ``reduce`` (np.minimum or np.maximum) over a size x size window, separably.

    Windows are clipped at the edges (the same as repeating the border for a
    minimum or maximum). Far cheaper than Pillow's rank filters, which sort
    every window.
    """
    r = size // 2
    out = image
    for axis in (0, 1):
        src = out
        out = src.copy()
        for k in range(1, r + 1):
            if axis == 0:
                reduce(out[k:], src[:-k], out=out[k:])
                reduce(out[:-k], src[k:], out=out[:-k])
            else:
                reduce(out[:, k:], src[:, :-k], out=out[:, k:])
                reduce(out[:, :-k], src[:, k:], out=out[:, :-k])
    return out


def _median3(image: np.ndarray) -> np.ndarray:
    """Return the 3x3 median filter of ``image`` (edges repeated)."""
    h, w = image.shape
    padded = np.pad(image, 1, mode="edge")
    stack = np.stack([padded[y:y + h, x:x + w] for y in range(3) for x in range(3)])
    return np.partition(stack, 4, axis=0)[4]


def _smooth_background(gray: np.ndarray) -> np.ndarray:
    """Return the slowly varying paper level of ``gray`` (ink bright, paper dark).

    The image is area-averaged onto a coarse grid (``BACKGROUND_CELLS`` on the
    long side), opened there (a minimum then a maximum over 3x3 cells, so
    strokes narrower than about three cells vanish and smooth shading stays),
    and brought back to full size by smoothed bilinear interpolation. Both
    resamplings are small matrix products, cached per shape.
    """
    h, w = gray.shape
    down_y, up_y = _resampling(h, max(4, round(h * BACKGROUND_CELLS / max(h, w))))
    down_x, up_x = _resampling(w, max(4, round(w * BACKGROUND_CELLS / max(h, w))))
    cells = down_y @ gray @ down_x.T
    opened = _window_filter(_window_filter(cells, np.minimum, 3), np.maximum, 3)
    return up_y @ opened @ up_x.T


@functools.lru_cache(maxsize=256)
def _resampling(n: int, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (down, up): float32 matrices that area-average ``n`` samples onto
    ``cells`` (at least 2) and interpolate back, linearly between cell centres
    (clamped at the ends) after a [1, 2, 1] smoothing across cells (edges
    renormalised)."""
    position = np.clip((np.arange(n) + 0.5) * cells / n - 0.5, 0.0, cells - 1)
    below = np.minimum(position.astype(int), cells - 2)
    frac = position - below
    interp = np.zeros((n, cells))
    interp[np.arange(n), below] = 1.0 - frac
    interp[np.arange(n), below + 1] += frac
    smooth = 2.0 * np.eye(cells) + np.eye(cells, k=1) + np.eye(cells, k=-1)
    smooth /= smooth.sum(axis=1, keepdims=True)
    return _area_average(n, cells), (interp @ smooth).astype(np.float32)


@functools.lru_cache(maxsize=1024)
def _area_average(n: int, cells: int) -> np.ndarray:
    """Return the float32 (cells, n) matrix that averages ``n`` samples onto ``cells``
    by overlap (what Pillow's BOX filter computes when reducing)."""
    edges = np.linspace(0.0, n, cells + 1)
    left, right = edges[:-1, None], edges[1:, None]
    pixel = np.arange(n, dtype=np.float64)[None, :]
    overlap = np.clip(np.minimum(right, pixel + 1) - np.maximum(left, pixel), 0.0, None)
    return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


def _label_components(mask: np.ndarray) -> np.ndarray:
    """Return 8-connected component labels of a boolean mask (0 = background).

    Every pixel starts labelled with its own index and repeatedly takes the
    smallest label in its 3x3 neighbourhood; after each step, labels jump to
    their label's label (pointer jumping), so a component converges in a
    handful of vectorised steps rather than one step per pixel of its length.
    The label of a component is 1 + the flat index of its first pixel.
    """
    h, w = mask.shape
    big = h * w
    labels = np.where(mask, np.arange(big).reshape(h, w), big)  # intp: indexes without a cast
    background = np.where(mask, 0, big)  # max() with it resets the background
    padded = np.full((h + 2, w + 2), big)
    lookup = np.empty(big + 1, dtype=labels.dtype)
    lookup[big] = big
    minimum = np.minimum
    for _ in range(big):
        padded[1:-1, 1:-1] = labels
        rows = minimum(minimum(padded[:-2], padded[1:-1]), padded[2:])
        new = minimum(minimum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])  # the 3x3 minimum
        np.maximum(new, background, out=new)
        for _ in range(2):
            lookup[:big] = new.ravel()
            new = lookup[new]
        if (new == labels).all():
            break
        labels = new
    return np.where(mask, labels + 1, 0)


def _digit_box(ink: np.ndarray) -> tuple[int, int, int, int, float]:
    """Return (top, bottom, left, right) bounds of the digit, specks ignored, and
    the ink threshold used.

    Ink is thresholded (Otsu); at low resolution, connected pieces smaller
    than 8% of the largest one are dropped as dust or noise, unless they lie
    inside the main digit's box (the dot of a broken stroke). The box is then
    refined at full resolution to include the faint anti-aliased edges.
    """
    threshold = _otsu(ink)
    mask = ink > threshold
    h, w = mask.shape
    t, b, l, r = 0, h, 0, w  # the region whose ink counts
    if max(h, w) > 40:
        # A coarse grid of about COMPONENT_AREA cells, whatever the aspect ratio;
        # a cell is ink when a fifth of it is, so stray noise pixels don't bridge cells.
        factor = max(1, int(np.ceil(np.sqrt(h * w / COMPONENT_AREA))))
        # Pillow's reduce: the mean of each cell (edge cells: of their own pixels).
        coverage = _image(np.multiply(mask, 255, dtype=np.uint8), "L").reduce(factor)
        small = _pixels(coverage, np.uint8) >= 51
        labels = _label_components(small)
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        # Everything inside the kept pieces' box stays (broken strokes, dots).
        rows, cols = _extent(sizes[labels] >= 0.08 * sizes.max())
        t, b = rows[0] * factor, min(h, (rows[-1] + 1) * factor)
        l, r = cols[0] * factor, min(w, (cols[-1] + 1) * factor)
    rows, cols = _extent(mask[t:b, l:r])
    top, bottom, left, right = t + rows[0], t + rows[-1] + 1, l + cols[0], l + cols[-1] + 1
    # Grow the box to the faint edge pixels around the thresholded ink.
    pad = max(1, int(round(0.02 * max(bottom - top, right - left))))
    t0, b0 = max(0, top - pad), min(h, bottom + pad)
    l0, r0 = max(0, left - pad), min(w, right + pad)
    rows, cols = _extent(ink[t0:b0, l0:r0] > 0.25 * threshold)
    return t0 + rows[0], t0 + rows[-1] + 1, l0 + cols[0], l0 + cols[-1] + 1, threshold


def _extent(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the indices of the rows and of the columns of ``mask`` that hold a True."""
    return np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))


def _stroke_width(mask: np.ndarray) -> float:
    """Return the mean stroke width of a binary drawing, ~ 2 * area / perimeter."""
    area = float(mask.sum())
    edges = (np.count_nonzero(mask[1:] != mask[:-1]) + np.count_nonzero(mask[:, 1:] != mask[:, :-1]))
    edges += np.count_nonzero(mask[0]) + np.count_nonzero(mask[-1])
    edges += np.count_nonzero(mask[:, 0]) + np.count_nonzero(mask[:, -1])
    return 2.0 * area / max(edges, 1)


def normalize_digit(image: Image.Image) -> np.ndarray:
    """Return the digit as MNIST would store it: uint8 (28, 28), white on black.

    Steps: grayscale with transparency composited; reduce large images;
    decide the ink side and flatten the background; crop to the digit
    (specks ignored); thicken strokes that would shrink below ~1.6 px;
    scale so the longer side is 20 px with area averaging; place in a 28x28
    field with the centre of mass at (14, 14); stretch the contrast so the
    strokes reach full intensity.

    Raises
    ------
    BlankImage : no ink that differs from the background.
    """
    if image.mode == "L" and image.size == INPUT_SHAPE[::-1]:
        ready = _already_mnist(image)
        if ready is not None:
            return ready
    gray = _reduce(_to_gray(image))
    ink = _ink(gray)
    if ink.max() < MIN_CONTRAST:
        raise BlankImage("no digit found: the image is blank or has too little contrast")
    top, bottom, left, right, threshold = _digit_box(ink)
    crop = ink[top:bottom, left:right]
    h, w = crop.shape
    scale = BOX / max(h, w)

    # Scale the ink so strokes sit at full intensity: their typical level -> 255.
    strokes = crop[crop > threshold]
    level = _quantiles(strokes, 0.6)[0] if strokes.size else float(crop.max())
    crop = np.clip(crop * (255.0 / max(level, 1e-3)), 0.0, 255.0)

    if scale < 0.5:
        # A fine pen on a big image would fade to a hairline, a marker would
        # blot out the loops: bring the stroke width into MNIST's range.
        width = _stroke_width(crop > 127.0)
        if width * scale < MIN_STROKE_PX:
            k = int(np.ceil(MIN_STROKE_PX / scale - width)) | 1
            crop = _window_filter(crop, np.maximum, min(max(k, 3), 15))
        elif width * scale > MAX_STROKE_PX:
            k = int(round(width - 0.5 * (MIN_STROKE_PX + MAX_STROKE_PX) / scale)) | 1
            crop = _window_filter(crop, np.minimum, min(max(k, 3), 15))
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    if (new_w, new_h) == (w, h):  # already 20 px on the long side (MNIST-like uploads)
        return _centre(crop)
    if scale < 1.0:  # area averaging, as two small matrix products
        return _centre(_area_average(h, new_h) @ crop @ _area_average(w, new_w).T)
    return _centre(_pixels(_image(crop).resize((new_w, new_h), Image.BILINEAR)))


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
    digit = _pixels(image, np.uint8)
    rows = np.add.reduce(digit, axis=1, dtype=np.int32).tolist()
    cols = np.add.reduce(digit, axis=0, dtype=np.int32).tolist()
    mass = sum(rows)
    cy = sum(map(operator.mul, rows, _INDICES)) / mass
    cx = sum(map(operator.mul, cols, _INDICES)) / mass
    if abs(cy - CENTRE) > 0.5 or abs(cx - CENTRE) > 0.5:
        return None
    return digit


_POSITIONS = np.arange(FIELD, dtype=np.float32)


def _centre(digit: np.ndarray) -> np.ndarray:
    """Return a 28x28 uint8 field with ``digit`` (values in [0, 255]) placed so
    its centre of mass is at (14, 14)."""
    h, w = digit.shape
    rows = digit.sum(axis=1)
    mass = float(rows.sum())
    cy = float(rows @ _POSITIONS[:h]) / mass
    cx = float(digit.sum(axis=0) @ _POSITIONS[:w]) / mass
    top = min(max(round(CENTRE - cy), 0), FIELD - h)
    left = min(max(round(CENTRE - cx), 0), FIELD - w)
    field = np.zeros(INPUT_SHAPE, dtype=np.uint8)
    field[top:top + h, left:left + w] = digit + 0.5  # rounds to nearest on the cast
    return field


def to_input_array(image: Image.Image) -> np.ndarray:
    """Return the network input for ``image``: float32 (1, 784), scaled as in training."""
    return scale_pixels(normalize_digit(image)[None])


def preprocess(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Return the MNIST-style uint8 (28, 28) digit for uploaded bytes (decode + normalise)."""
    return normalize_digit(decode_image(data, max_pixels))
