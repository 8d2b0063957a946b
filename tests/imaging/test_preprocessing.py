"""Upload preprocessing on synthetic variations of real digits (no model needed)."""

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from imaging.kernels import smoothing_resampler
from imaging.decode import BlankImage, ImageTooLarge, InvalidImage, decode_image
from imaging.preprocessing import smooth_background, normalize_digit, preprocess
from model.data import scale_pixels

from conftest import RESOURCES

DIGITS = sorted(RESOURCES.glob("mnist_test_*.png"))


def mnist_digit(i: int = 0) -> np.ndarray:
    return np.asarray(Image.open(DIGITS[i]))


def encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def upscale(digit: np.ndarray, size: int) -> Image.Image:
    return Image.fromarray(digit).resize((size, size), Image.BICUBIC)


def on_canvas(digit_img: Image.Image, canvas=(400, 300), at=(30, 60), background=0) -> Image.Image:
    canvas_img = Image.new("L", canvas, background)
    canvas_img.paste(digit_img, at)
    return canvas_img


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Return the best cosine similarity of two images over shifts of up to 2 px.

    Centring by centre of mass may move a digit by a pixel relative to MNIST's
    own placement, which says nothing about the digit's shape.
    """
    a = a.astype(float)
    best = 0.0
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            s = np.roll(b.astype(float), (dy, dx), axis=(0, 1))
            best = max(best, float((a * s).sum() / (np.linalg.norm(a) * np.linalg.norm(s) + 1e-9)))
    return best


def assert_mnist_like(out: np.ndarray):
    assert out.shape == (28, 28) and out.dtype == np.uint8
    assert out.max() >= 200  # strokes at full intensity
    ys, xs = np.nonzero(out > 0)
    assert max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1) in (20, 21)
    mass = out.astype(float)
    cy = (mass.sum(axis=1) * np.arange(28)).sum() / mass.sum()
    cx = (mass.sum(axis=0) * np.arange(28)).sum() / mass.sum()
    assert abs(cy - 14) <= 0.75 and abs(cx - 14) <= 0.75
    assert out[0].max() == out[-1].max() == out[:, 0].max() == out[:, -1].max() == 0


@pytest.mark.parametrize("i", range(len(DIGITS)))
def test_mnist_digit_is_left_almost_unchanged(i):
    digit = mnist_digit(i)
    out = preprocess(DIGITS[i].read_bytes())
    assert_mnist_like(out)
    assert similarity(out, digit) > 0.97
    assert np.abs(out.astype(int) - digit).mean() < 6


VARIANTS = {
    "inverted, upscaled, off-centre": lambda d: encode(on_canvas(upscale(255 - d, 180), background=255)),
    "jpeg photo of dark ink": lambda d: encode(on_canvas(upscale(255 - d, 200), (640, 480), (400, 50),
                                                        background=235).convert("RGB"), "JPEG", quality=70),
    "canvas: black strokes in alpha": lambda d: encode(_alpha_canvas(d, (0, 0, 0))),
    "canvas: white strokes in alpha": lambda d: encode(_alpha_canvas(d, (255, 255, 255))),
    "canvas: blue strokes in alpha": lambda d: encode(_alpha_canvas(d, (20, 40, 200))),
    "LA mode": lambda d: encode(Image.merge("LA", [Image.new("L", (112, 112), 255),
                                                   upscale(d, 112)])),
    "16-bit gray": lambda d: encode(Image.fromarray(np.asarray(upscale(d, 56)).astype(np.uint16) * 257)),
    "palette gif": lambda d: encode(upscale(255 - d, 84).convert("P"), "GIF"),
    "cmyk jpeg": lambda d: encode(upscale(255 - d, 120).convert("CMYK"), "JPEG", quality=90),
    "bmp": lambda d: encode(upscale(255 - d, 64).convert("RGB"), "BMP"),
    "webp": lambda d: encode(upscale(255 - d, 96).convert("RGB"), "WEBP", quality=85),
    "tiff": lambda d: encode(upscale(d, 64), "TIFF", compression="tiff_lzw"),
    "1-bit": lambda d: encode(upscale(d, 112).point(lambda v: 255 if v > 100 else 0).convert("1")),
    "wide canvas": lambda d: encode(on_canvas(upscale(d, 60), (900, 70), (700, 5))),
    "uneven lighting": lambda d: encode(_uneven(d)),
    "dust specks": lambda d: encode(_specks(d)),
    "thin pen on big paper": lambda d: encode(_thin(d)),
}


def _alpha_canvas(digit, colour):
    alpha = upscale(digit, 280)
    rgba = Image.new("RGBA", (280, 280), colour + (0,))
    rgba.putalpha(alpha)
    return rgba


def _uneven(digit):
    paper = np.linspace(120, 240, 300)[None, :] * np.linspace(0.8, 1.0, 300)[:, None]
    ink = np.asarray(on_canvas(upscale(digit, 150), (300, 300), (70, 80)), float) / 255
    return Image.fromarray(np.clip(paper * (1 - 0.8 * ink), 0, 255).astype(np.uint8))


def _specks(digit):
    image = np.asarray(on_canvas(upscale(255 - digit, 150), (400, 400), (120, 130), 250)).copy()
    rng = np.random.default_rng(0)
    for y, x in rng.integers(0, 400, (12, 2)):
        if not (100 < y < 300 and 100 < x < 300):
            image[y:y + 3, x:x + 3] = 30
    return Image.fromarray(image)


def _thin(digit):
    big = upscale(digit, 700).point(lambda v: 255 if v > 200 else 0)
    thin = big.filter(__import__("PIL.ImageFilter", fromlist=["x"]).MinFilter(15))
    return ImageOps.invert(on_canvas(thin, (1000, 900), (150, 100)))


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("i", [0, 1, 3])
def test_variants_recover_the_mnist_digit(name, i):
    digit = mnist_digit(i)
    out = preprocess(VARIANTS[name](digit))
    assert_mnist_like(out)
    threshold = 0.8 if name in ("1-bit", "thin pen on big paper") else 0.87
    assert similarity(out, digit) > threshold, similarity(out, digit)


def test_exif_orientation_is_applied():
    digit = mnist_digit(0)
    upright = upscale(255 - digit, 200).convert("RGB")
    stored = upright.rotate(90, expand=True)  # stored turned left; tag 6 turns it back
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(stored, "JPEG", quality=90, exif=exif)
    assert decode_image(data).size == (200, 200)
    assert similarity(preprocess(data), digit) > 0.85
    exif[0x0112] = 1  # without the rotation the digit really is sideways
    assert similarity(preprocess(encode(stored, "JPEG", quality=90, exif=exif)), digit) < 0.7


def test_animated_gif_uses_the_first_frame():
    digit = mnist_digit(0)
    frames = [upscale(255 - digit, 84).convert("P"), Image.new("P", (84, 84), 0)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert similarity(preprocess(data), digit) > 0.9


def test_a_preprocessed_upload_scales_to_the_networks_range():
    X = scale_pixels(preprocess(DIGITS[0].read_bytes())[None])
    assert X.shape == (1, 784) and X.dtype == np.float32
    assert X.min() == 0.0 and X.max() == 1.0


@pytest.mark.parametrize("image", [
    Image.new("L", (64, 64), 255), Image.new("L", (64, 64), 0), Image.new("RGB", (30, 10), (90, 90, 90)),
    Image.new("RGBA", (280, 280), (0, 0, 0, 0)),
    Image.fromarray(np.random.default_rng(0).integers(120, 135, (64, 64)).astype(np.uint8)),
])
def test_blank_images_are_rejected(image):
    with pytest.raises(BlankImage):
        normalize_digit(image)


@pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + bytes(30),
                                  b"GIF89a" + bytes(10), b"BM" + bytes(40), b"\xff\xd8\xff" + bytes(100)])
def test_garbage_is_invalid_image(data):
    with pytest.raises(InvalidImage):
        preprocess(data)


def test_truncated_files_are_invalid_image():
    digit = upscale(255 - mnist_digit(0), 200).convert("RGB")
    for fmt in ("PNG", "JPEG", "WEBP", "GIF", "TIFF", "BMP"):
        data = encode(digit.convert("P") if fmt == "GIF" else digit, fmt)
        with pytest.raises(InvalidImage):
            preprocess(data[: len(data) // 2])


def test_pixel_limit_is_checked_before_decoding():
    big = encode(Image.new("L", (3000, 3000), 255))
    with pytest.raises(ImageTooLarge, match="9,000,000"):
        decode_image(big, max_pixels=1_000_000)


def test_unaccepted_format_is_refused():
    data = encode(upscale(mnist_digit(0), 56), "PPM")
    with pytest.raises(InvalidImage, match="not a supported image"):
        decode_image(data)


def test_background_estimate_follows_shading_and_drops_strokes():
    # Paper lit from one corner, with two 5 px strokes crossing it (ink bright).
    h, w = 108, 144
    paper = (np.linspace(20, 80, w)[None] + np.linspace(0, 30, h)[:, None]).astype(np.float32)
    image = paper.copy()
    image[27:81, 72:77] += 150
    image[54:59, 18:126] += 150
    background = smooth_background(image)
    assert background.shape == (h, w)
    inner = (slice(h // 10, -h // 10), slice(w // 10, -w // 10))
    assert np.abs(background - paper)[inner].max() < 5  # the shading is followed...
    assert (background - paper)[image > paper + 100].max() < 5  # ...the strokes are not
    for n, cells in ((144, 16), (37, 5), (160, 4)):
        down, up = smoothing_resampler(n, cells)
        assert down.shape == (cells, n) and up.shape == (n, cells)
        np.testing.assert_allclose(down.sum(axis=1), 1, rtol=1e-6)  # area averages...
        np.testing.assert_allclose(up.sum(axis=1), 1, rtol=1e-6)  # ...and interpolation weights
        assert (down >= 0).all() and (up >= 0).all()


def test_outputs_match_the_recorded_ones_on_the_rerendered_set():
    """The pipeline gives byte-identical digits for a fixed set of re-rendered uploads.

    ``preprocessing-golden.npz`` was written before preprocessing.py was split into
    the pipeline and imaging.py's kernels (119 uploads: every kind of upload for MNIST
    test digits, optdigits and pyclustering digits). A change that moves any output
    must be deliberate: regenerate the file in the same commit and say why.
    """
    import hashlib

    from evaluation.handwriting import load_source
    from evaluation.uploads import rerender_set
    from model.data import load_dataset

    from conftest import SHARED_DATASETS

    golden = np.load(RESOURCES / "preprocessing-golden.npz")
    ds = load_dataset("mnist", SHARED_DATASETS, download=False)
    items = rerender_set(ds.test_images[:200], ds.test_labels[:200], 5, seed=11)
    optdigits = load_source("optdigits", 40, 2)
    items += rerender_set(optdigits.images, optdigits.labels, 1, seed=12)
    drawn = load_source("pyclustering", 40, 2)
    items += rerender_set(drawn.images, drawn.labels, 1, seed=13)
    assert [k for k, *_ in items] == golden["kinds"].tolist()
    # The uploads themselves must be the recorded ones (else the renderer, not the pipeline, moved).
    assert [hashlib.sha256(d).hexdigest() for _, _, d, _ in items] == golden["upload_sha256"].tolist()
    digits = np.stack([preprocess(d) for _, _, d, _ in items])
    changed = [i for i in range(len(items)) if not np.array_equal(digits[i], golden["digits"][i])]
    assert not changed, f"{len(changed)} outputs changed, e.g. {[items[i][0] for i in changed[:5]]}"
