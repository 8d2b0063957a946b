"""Data augmentation in NumPy: random affine maps, elastic distortion, pens and captures.

Each training image is resampled through its own random map: rotation, scale,
aspect ratio, shear and shift about the image centre, optionally followed by
a smooth random displacement field (Simard et al. 2003, "elastic
distortion"). Sampling is bilinear with zeros outside the image, which
matches MNIST's black background. Then, per image and at random:

- the pen: strokes grown or thinned by a fraction of a pixel, with a round
  tip or a flat nib (a horizontal, vertical or diagonal structuring element);
- a coarse capture: the digit as a photo or scan only 8-16 pixels high would
  give it, enlarged back smoothly (blurred) or by repeating pixels (blocky);
- a digit that ran off the picture: one side cut away, refitted to MNIST's
  20-pixel box;
- a bold marker: strokes one or two pixels wider all round;
- a box filled the way old scanners normalised digits: the ink stretched to
  fill a square (a 1 as wide as a 0) or a tall box, ignoring its aspect;
- a 1-bit scan: the ink thresholded to two levels, at the full or (with a
  coarse capture) the coarse resolution, so strokes come out blocky.

Everything is vectorised over the batch (the cut refits per image) and drawn
from the generator passed in, so a seed fixes every augmented image. The pen,
the coarse capture and the cut are also public kernels (``thicken``,
``coarsen``, ``cut_off``), so each can be tested with chosen arguments.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .mnistform import BOX, FIELD, area_average, centre, even_strokes, fit_box, linear_resize, resize

__all__ = ["PRESETS", "SCANNED", "STYLE", "Augmenter", "AugmentConfig", "coarsen", "cut_off", "thicken"]


def _f(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random maps; zero disables a component."""

    rotate_deg: float = _f(12.0, "rotation drawn from [-r, r]")
    scale: float = _f(0.12, "isotropic scale drawn from [1 - s, 1 + s]")
    shear: float = _f(0.15, "horizontal shear factor drawn from [-s, s]")
    shift_px: float = _f(2.5, "translation drawn from [-t, t] on each axis")
    elastic_alpha: float = _f(1.0, "RMS displacement of the elastic field, pixels")
    elastic_sigma: float = _f(4.0, "smoothness of the elastic field, pixels")
    thickness: float = _f(0.6, "stroke width change: blend towards a 3x3 dilation/erosion, up to this much")
    hflip: bool = _f(False, "mirror half of the images left-right (clothes, not digits)")
    aspect: float = _f(0.0, "width scaled by exp(u), u drawn from [-a, a / 2] (narrow more than wide)")
    nib: float = _f(0.0, "share of pen changes made with a flat nib instead of a round tip")
    coarse: float = _f(0.0, "share of images captured at 8-16 px high and enlarged back")
    cut: float = _f(0.0, "share of images with 4-12% of one side cut off, as by the picture's edge")
    bold: float = _f(0.0, "share of images drawn with a marker: one or two more 3x3 dilations")
    fill: float = _f(0.0, "share of images stretched to fill a square or tall box (scanner normalisation)")
    binarize: float = _f(0.0, "share of images thresholded to two levels (1-bit scans), coarse ones blocky")

    def as_dict(self) -> dict:
        return asdict(self)


# Default augmentation per dataset. Digits tolerate rotation, shear, elastic
# and stroke-width changes (and real uploads need them); the pen, capture and
# cut-off kinds cover how digits arrive from outside MNIST. Clothes are centred
# photos where those hurt and a mirror image is still the same class; even
# small shifts and scaling cost accuracy there (the figures are in the
# commit that chose this preset, 41ffb29).
PRESETS = {
    "mnist": AugmentConfig(),
    "fashion-mnist": AugmentConfig(rotate_deg=0.0, scale=0.0, shear=0.0, shift_px=0.0,
                                   elastic_alpha=0.0, thickness=0.0, hflip=True),
}
# The styles of writing and capturing beyond MNIST...
STYLE = AugmentConfig(rotate_deg=10.0, scale=0.1, shear=0.3, shift_px=2.0, elastic_alpha=0.8,
                      thickness=0.7, aspect=0.3, nib=0.3, coarse=0.12, cut=0.04)
# ...and of how scanning systems stored digits (stretched to fill their box, 1-bit, bold, coarse):
# the CNN recipe's augmentation, chosen by ``evaluation.selection`` (leave one source out).
SCANNED = replace(STYLE, fill=0.25, binarize=0.15, bold=0.1, coarse=0.25)
COARSE_HEIGHTS = tuple(range(8, 17))  # pixel heights of a coarse capture
# The boxes a scanner stretched digits into, as width / height: a square (USPS- and
# Semeion-like 16x16 cells) twice as often as a tall cell.
FILL_ASPECTS = (1.0, 1.0, 0.75)
UPLOAD_SIDE = 80  # a filled cell as a large upload shows it, before its strokes are evened


def _gaussian_matrix(n: int, sigma: float) -> np.ndarray:
    """Return the (n, n) matrix that blurs a length-n signal with a Gaussian."""
    idx = np.arange(n)
    G = np.exp(-0.5 * ((idx[:, None] - idx[None, :]) / sigma) ** 2)
    G /= G.sum(axis=1, keepdims=True)
    return G.astype(np.float32)


class Augmenter:
    """Callable that returns augmented copies of a batch of images.

    ``augmenter(images, rng)`` takes uint8 or float images of shape (n, h, w)
    and returns float32 images of the same shape, in the input's value range.
    """

    def __init__(self, config: AugmentConfig, shape: tuple[int, int] = (28, 28)):
        self.config = config
        self.h, self.w = shape
        ys, xs = np.mgrid[0: self.h, 0: self.w].astype(np.float32)
        self._cy, self._cx = (self.h - 1) / 2.0, (self.w - 1) / 2.0
        self._grid = np.stack([xs.ravel() - self._cx, ys.ravel() - self._cy])  # (2, h*w)
        self._G = _gaussian_matrix(self.h, config.elastic_sigma) if config.elastic_alpha else None

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, h, w = images.shape
        if (h, w) != (self.h, self.w):
            raise ValueError(f"expected images of shape (n, {self.h}, {self.w}), got {images.shape}")
        c = self.config
        angle = np.deg2rad(rng.uniform(-c.rotate_deg, c.rotate_deg, n)).astype(np.float32)
        scale = rng.uniform(1.0 - c.scale, 1.0 + c.scale, n).astype(np.float32)
        shear = rng.uniform(-c.shear, c.shear, n).astype(np.float32)
        shift = rng.uniform(-c.shift_px, c.shift_px, (n, 2)).astype(np.float32)
        # Inverse map: for each output pixel, where to read in the source.
        # A = R(angle) @ [[1, shear], [0, 1]] / scale.
        cos, sin = np.cos(angle), np.sin(angle)
        A = np.empty((n, 2, 2), np.float32)
        A[:, 0, 0] = cos
        A[:, 0, 1] = cos * shear - sin
        A[:, 1, 0] = sin
        A[:, 1, 1] = sin * shear + cos
        A /= scale[:, None, None]
        if c.aspect:  # applied to the output's x: a narrower or wider digit
            A[:, :, 0] *= np.exp(-rng.uniform(-c.aspect, c.aspect / 2, n)).astype(np.float32)[:, None]
        if c.hflip:
            A[:, :, 0] *= np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32)[:, None]
        src = A @ self._grid  # (n, 2, h*w)
        src[:, 0] += (self._cx + shift[:, 0])[:, None]
        src[:, 1] += (self._cy + shift[:, 1])[:, None]
        if self._G is not None:
            field = rng.uniform(-1.0, 1.0, (2, n, h, w)).astype(np.float32)
            # Separable Gaussian blur of each field, G @ F @ G.T, as two large products over
            # all rows at once (stacked 28x28 products would be one small GEMM each).
            G = self._G
            field = (field.reshape(-1, w) @ G.T).reshape(2 * n, h, w).transpose(0, 2, 1)
            field = (np.ascontiguousarray(field).reshape(-1, h) @ G.T).reshape(2, n, w, h).transpose(0, 1, 3, 2)
            rms = np.sqrt((field**2).mean(axis=(0, 2, 3), keepdims=True)) + 1e-12
            field *= c.elastic_alpha / rms
            src[:, 0] += field[0].reshape(n, -1)
            src[:, 1] += field[1].reshape(n, -1)
        out = self._sample(images, src[:, 0], src[:, 1])
        if c.thickness:
            amount = rng.uniform(-c.thickness, c.thickness, n).astype(np.float32)
            nibs = rng.integers(1, len(_NIBS), n) * (rng.random(n) < c.nib) if c.nib else None
            out = thicken(out, amount, nibs)
        if c.bold:
            for i in np.flatnonzero(rng.random(n) < c.bold):
                for _ in range(int(rng.integers(1, 3))):
                    out[i] = thicken(out[i:i + 1], np.ones(1, np.float32))[0]
        if c.fill:
            for i in np.flatnonzero(rng.random(n) < c.fill):
                out[i] = _fill(out[i], float(rng.choice(FILL_ASPECTS)), bool(rng.random() < 0.5))
        if c.cut:
            for i in np.flatnonzero(rng.random(n) < c.cut):
                out[i] = cut_off(out[i], int(rng.integers(4)), rng.uniform(0.04, 0.12))
        coarse = rng.random(n) < c.coarse if c.coarse else np.zeros(n, bool)
        binary = rng.random(n) < c.binarize if c.binarize else np.zeros(n, bool)
        for i in np.flatnonzero(coarse | binary):
            level = float(rng.uniform(0.3, 0.6))
            if coarse[i]:
                out[i] = coarsen(out[i], int(rng.choice(COARSE_HEIGHTS)), bool(binary[i] or rng.random() < 0.35),
                                 level if binary[i] else None)
            else:
                out[i] = _binarize(out[i], level)
        return out

    def _sample(self, images: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Bilinear sampling of each image at (x, y) (shape (n, h*w)), zero outside."""
        n, h, w = images.shape
        padded = np.zeros((n, h + 2, w + 2), np.float32)  # a zero border to read outside from
        padded[:, 1:-1, 1:-1] = images
        flat = padded.reshape(n, -1)
        # Shift by +1 for the border, clip so every tap lands in the padded image.
        x = np.clip(x + 1.0, 0.0, w + 1 - 1e-3)
        y = np.clip(y + 1.0, 0.0, h + 1 - 1e-3)
        fx = x - np.floor(x)  # stays float32 (float - int would promote to float64)
        fy = y - np.floor(y)
        x0 = x.astype(np.intp)
        y0 = y.astype(np.intp)
        x1 = np.minimum(x0 + 1, w + 1)
        y1 = np.minimum(y0 + 1, h + 1)
        stride = w + 2
        row = (np.arange(n, dtype=np.intp) * flat.shape[1])[:, None]
        flat = flat.ravel()
        top = flat[row + y0 * stride + x0] * (1 - fx) + flat[row + y0 * stride + x1] * fx
        bottom = flat[row + y1 * stride + x0] * (1 - fx) + flat[row + y1 * stride + x1] * fx
        out = top * (1 - fy) + bottom * fy
        return out.reshape(n, h, w)


# Structuring elements of the pen, as (dy, dx) offsets: index 0 is the round tip
# (a 3x3 cross, in thicken), the others flat nibs.
_NIBS = [None,
         [(0, 0), (0, -1), (0, 1)],  # horizontal
         [(0, 0), (-1, 0), (1, 0)],  # vertical
         [(0, 0), (-1, 1), (1, -1)],  # rising diagonal
         [(0, 0), (-1, -1), (1, 1)]]  # falling diagonal


def thicken(images: np.ndarray, amount: np.ndarray, nibs: np.ndarray | None = None) -> np.ndarray:
    """Return ``images`` (n, h, w) each blended by ``|amount|`` towards its grey dilation
    (``amount`` > 0) or erosion (< 0): strokes grown or thinned.

    The structuring element is a 3x3 cross (a round pen), or where ``nibs``
    says so one of ``_NIBS``' lines (a flat nib: strokes along it stay
    thin); blending makes the change continuous, from a fraction of a
    pixel to a full pixel of stroke width.
    """
    n, h, w = images.shape
    padded = np.zeros((n, h + 2, w + 2), np.float32)
    padded[:, 1:-1, 1:-1] = images
    shifts = [padded[:, 1:-1, 1:-1], padded[:, :-2, 1:-1], padded[:, 2:, 1:-1],
              padded[:, 1:-1, :-2], padded[:, 1:-1, 2:]]
    dilated = np.maximum.reduce(shifts)
    eroded = np.minimum.reduce(shifts)
    if nibs is not None and nibs.any():
        for k, offsets in enumerate(_NIBS[1:], start=1):
            chosen = np.flatnonzero(nibs == k)
            if chosen.size:
                taps = [padded[chosen, 1 + dy:h + 1 + dy, 1 + dx:w + 1 + dx] for dy, dx in offsets]
                dilated[chosen] = np.maximum.reduce(taps)
                eroded[chosen] = np.minimum.reduce(taps)
    a = amount[:, None, None]
    target = np.where(a > 0, dilated, eroded)
    return images + np.abs(a) * (target - images)


def coarsen(image: np.ndarray, height: int, blocky: bool, binary: float | None = None) -> np.ndarray:
    """Return ``image`` as a capture ``height`` pixels high would show it once enlarged
    back: area-averaged down, thresholded at ``binary`` of its brightest pixel if given
    (a 1-bit scan), then interpolated (soft) or repeated (blocky) up, then
    contrast-stretched as the service stretches uploads (typical stroke -> full ink)."""
    side = max(2, round(FIELD * height / BOX))
    down = area_average(FIELD, side)
    if blocky:
        up = np.zeros((FIELD, side), np.float32)
        up[np.arange(FIELD), np.minimum(np.arange(FIELD) * side // FIELD, side - 1)] = 1.0
    else:
        up = linear_resize(side, FIELD)
    small = down @ image @ down.T
    if binary is not None:
        small = _binarize(small, binary)
    out = up @ small @ up.T
    strokes = out[out > 0.5 * out.max()]
    # The 60th percentile of the strokes (nearest rank: partition is far cheaper than quantile).
    level = float(np.partition(strokes, int(0.6 * (strokes.size - 1)))[int(0.6 * (strokes.size - 1))]
                  ) if strokes.size else 255.0
    return np.clip(out * (255.0 / max(level, 1.0)), 0.0, 255.0)


def _binarize(image: np.ndarray, level: float) -> np.ndarray:
    """Return ``image`` with pixels above ``level`` of its brightest at full ink, the rest at 0."""
    return np.where(image > level * float(image.max()), np.float32(255.0), np.float32(0.0))


def _ink_box(image: np.ndarray) -> tuple[slice, slice] | None:
    """Return the rows and columns of ``image``'s ink (pixels above 32), or None for a speck."""
    mask = image > 32
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size < 4 or cols.size < 2:
        return None
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _fill(image: np.ndarray, aspect: float, as_upload: bool = False) -> np.ndarray:
    """Return ``image``'s ink stretched to fill a box ``aspect`` (width / height) times as wide
    as it is high, whatever its own shape, in MNIST's form: how scanners that normalised
    digits to a fixed cell (16x16 and the like) stored them. A 1 becomes a slab.

    ``as_upload``: the cell as the service sees it when it arrives large (a scan or a photo
    of it): enlarged to ``UPLOAD_SIDE``, its strokes evened into MNIST's width range as the
    service evens a large upload's (``mnistform.even_strokes``), then reduced.
    """
    box = _ink_box(image)
    if box is None:
        return image
    if not as_upload:
        return centre(np.clip(resize(image[box], BOX, max(2, round(BOX * aspect))), 0.0, 255.0)).astype(np.float32)
    big = np.clip(resize(image[box], UPLOAD_SIDE, max(2, round(UPLOAD_SIDE * aspect))), 0.0, 255.0)
    big = even_strokes(big * (255.0 / max(float(big.max()), 1.0)), BOX / UPLOAD_SIDE)
    return centre(np.clip(resize(big, BOX, max(2, round(BOX * aspect))), 0.0, 255.0)).astype(np.float32)


def cut_off(image: np.ndarray, side: int, fraction: float) -> np.ndarray:
    """Return ``image`` with ``fraction`` of its ink's extent removed from one side
    (0 top, 1 bottom, 2 left, 3 right), refitted to MNIST's form."""
    mask = image > 32
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size < 4 or cols.size < 4:
        return image
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    if side < 2:
        k = max(1, round((bottom - top) * fraction))
        top, bottom = (top + k, bottom) if side == 0 else (top, bottom - k)
    else:
        k = max(1, round((right - left) * fraction))
        left, right = (left + k, right) if side == 2 else (left, right - k)
    crop = image[top:bottom, left:right]
    if (crop > 32).sum() < 8:
        return image
    return centre(np.clip(fit_box(crop), 0.0, 255.0)).astype(np.float32)
