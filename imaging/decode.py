"""Uploaded bytes to a decoded image: the first step of reading any upload.

``decode_image`` accepts only the formats in ``ACCEPTED_FORMATS``, checks the
pixel count from the header before any pixel is decoded (a decompression
bomb is refused, not decoded), decodes the first frame only (never iterates
an animation), decodes a large JPEG at a reduced DCT scale (``draft``: far
cheaper than decoding every pixel and resizing afterwards), and turns the
image upright by its EXIF orientation. ``working_scale`` is the one decision
about resolution that decoding and ``preprocessing`` share: large uploads are
analysed at about ``ANALYSIS_SIDE`` pixels on the long side.

Every failure is an ``ImageError`` subclass carrying its HTTP status; nothing
else escapes for any input.
"""

from __future__ import annotations

import io
import warnings
from struct import error as struct_error

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

__all__ = ["ACCEPTED_FORMATS", "ANALYSIS_SIDE", "DEFAULT_MAX_PIXELS", "BlankImage", "ImageError", "ImageTooLarge",
           "InvalidImage", "decode_image", "working_scale"]

ACCEPTED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")
DEFAULT_MAX_PIXELS = 40_000_000

# The working resolution: what the analysis needs to find a digit, and no more.
ANALYSIS_SIDE = 160  # large uploads are analysed at about this many pixels on the long side...
MIN_SHORT_SIDE = 96  # ...unless that would leave the short side below this
# Where the reduction happens depends on the representation, each where it is cheapest:
DRAFT_BELOW = 0.5  # JPEG: DCT scaling while decoding (1/2, 1/4, 1/8), when the scale is at most 1/2
DRAFT_MARGIN = 0.6  # ...to no less than 0.6x the working size, so the 8-bit reduction below still averages

# Pillow reads the whole file into memory for some formats; these keep its own
# guards on. The explicit pixel check in decode_image fires first.
Image.MAX_IMAGE_PIXELS = DEFAULT_MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Pillow's bomb warning (above MAX_IMAGE_PIXELS) is an error here, process-wide:
# a per-call ``warnings.catch_warnings()`` is not thread-safe, and costs time on every upload.
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


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, side: int = ANALYSIS_SIDE) -> Image.Image:
    """Return the first frame of the uploaded image, upright and fully loaded.

    Only the formats in ``ACCEPTED_FORMATS`` are tried. The pixel count is
    checked from the header, before any pixel is decoded. Large JPEGs are
    decoded at a reduced scale (``draft``), which is far cheaper than
    decoding every pixel and resizing afterwards; ``image.info["upright_size"]``
    keeps the full-size (width, height), upright, for coordinates in the upload.

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
        scale = working_scale(width, height, side)
        if image.format == "JPEG" and scale <= DRAFT_BELOW:
            # The coarsest DCT scale that keeps both sides >= DRAFT_MARGIN x the working
            # size (decoding at 1/8 costs a fraction of 1/4); RGB is decoded straight to luminance.
            draft = DRAFT_MARGIN * scale
            image.draft("L" if image.mode in ("RGB", "L") else None,
                        (max(1, int(width * draft)), max(1, int(height * draft))))
        image.load()  # the first frame only; animated files are never iterated
        image, turned = _upright(image)
        image.info["upright_size"] = (height, width) if turned else (width, height)
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


def _upright(image: Image.Image) -> tuple[Image.Image, bool]:
    """Apply the EXIF orientation tag, ignoring a malformed one; also return whether the
    picture turned a quarter (width and height swapped)."""
    try:
        orientation = image.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - malformed EXIF is common and harmless
        return image, False
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        return ImageOps.exif_transpose(image), orientation >= 5
    return image, False


def working_scale(width: int, height: int, side: int = ANALYSIS_SIDE) -> float:
    """Return the scale (<= 1) that brings an image to the working resolution: the one
    decision about resolution (``decode_image`` and ``_to_gray`` act on it). ``side``:
    the long side aimed at (a single digit: ``ANALYSIS_SIDE``; a number: ``numbers.READ_SIDE``)."""
    scale = max(side / max(width, height), MIN_SHORT_SIDE / min(width, height))
    return min(1.0, scale)
