"""Fuzz the upload preprocessing with mutated real images.

Seeds are a real MNIST digit rendered in every accepted format and several
modes (PNG L/RGBA/P/16-bit, JPEG RGB/CMYK/progressive, GIF, TIFF, BMP, WebP).
Hypothesis flips, inserts, deletes and truncates bytes; whatever comes out,
``preprocess`` must return a valid 28x28 uint8 digit or raise ``ImageError``
(which the service turns into a 4xx), within a time limit, and memory must
stay bounded. The number of cases run is printed.
"""

from __future__ import annotations

import io
import resource
import signal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imaging.decode import ImageError
from imaging.preprocessing import preprocess

from conftest import DIGIT_PNG_PATH

DIGIT = Image.open(DIGIT_PNG_PATH)
PER_CASE_SECONDS = 5
RUN = {"cases": 0, "ok": 0, "rejected": 0}


def _seed_images() -> list[bytes]:
    big = DIGIT.resize((96, 96), Image.BICUBIC)
    dark = Image.eval(big, lambda v: 255 - v)
    rgba = Image.new("RGBA", big.size, (0, 0, 0, 0))
    rgba.putalpha(big)
    seeds = []
    for image, fmt, kwargs in (
        (DIGIT, "PNG", {}), (rgba, "PNG", {}), (dark.convert("P"), "PNG", {}),
        (Image.fromarray(np.asarray(big).astype(np.uint16) * 257), "PNG", {}),
        (dark.convert("RGB"), "JPEG", {"quality": 80}), (dark.convert("CMYK"), "JPEG", {}),
        (dark.convert("RGB"), "JPEG", {"progressive": True}), (dark.convert("P"), "GIF", {}),
        (dark, "TIFF", {"compression": "tiff_lzw"}), (dark.convert("RGB"), "BMP", {}),
        (dark.convert("RGB"), "WEBP", {"quality": 70}), (rgba, "WEBP", {"lossless": True}),
    ):
        buf = io.BytesIO()
        image.save(buf, format=fmt, **kwargs)
        seeds.append(buf.getvalue())
    return seeds


SEEDS = _seed_images()


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "byte", "insert", "delete", "truncate", "duplicate"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte" and data:
            data[at] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80]))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        elif kind == "truncate":
            del data[at:]
        else:
            data[at:at] = data[at:at + draw(st.integers(1, 256))]
    return bytes(data)


def _alarm(signum, frame):
    raise TimeoutError(f"preprocess took more than {PER_CASE_SECONDS} s")


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    print(f"\npreprocessing fuzz: {RUN['cases']} cases, {RUN['ok']} became digits, "
          f"{RUN['rejected']} were rejected with ImageError, 0 other outcomes")


@settings(max_examples=4000, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=mutated())
def test_mutated_images_become_digits_or_clean_errors(data):
    RUN["cases"] += 1
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(PER_CASE_SECONDS)
    try:
        digit = preprocess(data, max_pixels=4_000_000)
    except ImageError as exc:
        RUN["rejected"] += 1
        assert exc.status in (400, 413, 422) and str(exc)
        return
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    RUN["ok"] += 1
    assert digit.shape == (28, 28) and digit.dtype == np.uint8


def test_memory_stayed_bounded():
    """Runs after the fuzz test: the process never grew past a sane size."""
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert peak_mb < 2048, f"peak RSS {peak_mb:.0f} MB"
