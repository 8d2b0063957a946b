"""Write the corpus of hostile uploads in tests/resources/nasty/ (deterministic).

    python tests/system/make_nasty_corpus.py

Each file is listed in ``manifest.json`` with how it is sent (a multipart
``image`` field, a raw body with a content type, or JSON) and the status and
error code the service must answer. ``test_nasty_uploads.py`` replays them;
requests that need a raw socket (lying Content-Length, slow uploads) live in
that test instead, since they are not files.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).parents[1] / "resources" / "nasty"
DIGIT = Path(__file__).parents[1] / "resources" / "mnist_test_0_label7.png"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_bomb(width: int, height: int) -> bytes:
    """A ~60-byte PNG whose header claims width x height pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\0" * 1024, 9)) + _png_chunk(b"IEND", b""))


def png_zlib_bomb(width: int, height: int) -> bytes:
    """A valid all-black grayscale PNG: enormous when decoded, tiny as a file."""
    raw = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte + pixels
    chunks = [raw.compress(row) for _ in range(height)] + [raw.flush()]
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(chunks))
            + _png_chunk(b"IEND", b""))


def gif_header_bomb() -> bytes:
    """A GIF whose logical screen and image claim 65535 x 65535 pixels."""
    header = b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x80\x00\x00" + b"\0\0\0\xff\xff\xff"
    image = b"\x2c" + struct.pack("<HHHH", 0, 0, 65535, 65535) + b"\x00" + b"\x02\x02\x44\x01\x00"
    return header + image + b"\x3b"


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def build() -> list[dict]:
    digit = Image.open(DIGIT)
    big = digit.resize((280, 280), Image.BICUBIC)
    inverted = Image.eval(big, lambda v: 255 - v)
    cases: list[dict] = []

    def add(name: str, data: bytes, status: int, code: str, how: str = "multipart",
            content_type: str = "image/png", **extra) -> None:
        (HERE / name).write_bytes(data)
        cases.append({"file": name, "how": how, "content_type": content_type, "status": status,
                      "code": code, **extra})

    add("bomb-header-100000x100000.png", png_header_bomb(100_000, 100_000), 413, "image_too_large")
    add("bomb-zlib-8000x5001.png", png_zlib_bomb(8000, 5001), 413, "image_too_large")
    add("bomb-header-65535x65535.gif", gif_header_bomb(), 413, "image_too_large", content_type="image/gif")
    frames = [inverted.convert("P")] + [Image.new("P", (280, 280), i % 256) for i in range(1, 400)]
    add("animated-400-frames.gif", encode(frames[0], "GIF", save_all=True, append_images=frames[1:],
                                          duration=10), 200, "", content_type="image/gif", label="7")
    line = Image.new("L", (6000, 4), 255)
    line.paste(0, (100, 1, 5900, 3))
    add("aspect-6000x4-line.png", encode(line, "PNG"), 200, "")
    add("aspect-1x3000-blank.png", encode(Image.new("L", (1, 3000), 255), "PNG"), 422, "blank_image")
    add("one-pixel.png", encode(Image.new("L", (1, 1), 0), "PNG"), 422, "blank_image")
    for fmt, ext, mime in (("PNG", "png", "image/png"), ("JPEG", "jpg", "image/jpeg"),
                           ("GIF", "gif", "image/gif"), ("WEBP", "webp", "image/webp"),
                           ("TIFF", "tiff", "image/tiff"), ("BMP", "bmp", "image/bmp")):
        source = inverted.convert("P") if fmt == "GIF" else inverted.convert("RGB")
        data = encode(source, fmt)
        add(f"truncated.{ext}", data[: len(data) // 3], 400, "invalid_image", content_type=mime)
    rng = np.random.default_rng(0)
    add("garbage-with-png-signature.png", b"\x89PNG\r\n\x1a\n" + rng.bytes(3000), 400, "invalid_image")
    add("random-bytes.bin", rng.bytes(4096), 400, "invalid_image", how="raw",
        content_type="image/jpeg")
    add("svg.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"/>', 400,
        "invalid_image", how="raw", content_type="image/svg+xml")
    add("ico.ico", encode(big.convert("RGB").resize((64, 64)), "ICO"), 400, "invalid_image",
        how="raw", content_type="image/x-icon")
    add("png-as-text.png", DIGIT.read_bytes(), 415, "unsupported_media_type", how="raw",
        content_type="text/plain")
    add("png-as-octet-stream.png", DIGIT.read_bytes(), 415, "unsupported_media_type", how="raw",
        content_type="application/octet-stream")
    add("path-like-filename.png", DIGIT.read_bytes(), 200, "", filename="../../../etc/passwd", label="7")
    # RFC 7578 part headers are UTF-8; Werkzeug's form parser cannot read the form, and the
    # error says so (the upload itself is fine: resent with a UTF-8 name it is a 200).
    add("non-utf8-filename.png", DIGIT.read_bytes(), 400, "bad_request", filename_bytes="ff fe 2e 70 6e 67")
    add("json-nan.json", b'{"image": NaN}', 400, "bad_request", how="raw", content_type="application/json")
    add("json-huge-number.json", b'{"image": 1e999999}', 400, "bad_request", how="raw",
        content_type="application/json")
    add("json-deep-nesting.json", b'{"image": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", 400,
        "bad_request", how="raw", content_type="application/json")
    add("json-not-base64.json", b'{"image": "!!!not base64!!!"}', 400, "bad_request", how="raw",
        content_type="application/json")
    add("json-base64-of-text.json", b'{"image": "aGVsbG8gd29ybGQ="}', 400, "invalid_image", how="raw",
        content_type="application/json")
    v2 = "/v2/models/mnist/infer"
    tensor = {"name": "images", "datatype": "FP32", "shape": [1, 784], "data": [0.5] * 784}
    for name, body, status in (
        ("v2-wrong-shape.json", {"inputs": [{**tensor, "shape": [1, 785]}]}, 400),
        ("v2-wrong-datatype.json", {"inputs": [{**tensor, "datatype": "BYTES"}]}, 400),
        ("v2-absurd-batch.json", {"inputs": [{**tensor, "shape": [2**40, 784]}]}, 413),
        ("v2-negative-shape.json", {"inputs": [{**tensor, "shape": [-5, 784]}]}, 400),
        ("v2-huge-values.json", {"inputs": [{**tensor, "data": [1e300] * 784}]}, 400),
        ("v2-too-few-values.json", {"inputs": [{**tensor, "data": [0.5] * 783}]}, 400),
        ("v2-string-values.json", {"inputs": [{**tensor, "data": ["0.5"] * 784}]}, 400),
        ("v2-no-inputs.json", {"inputs": []}, 400),
    ):
        add(name, json.dumps(body).encode(), status, "", how="raw", content_type="application/json",
            path=v2)
    read = "/v1/read"
    add("read-bomb-header.png", png_header_bomb(100_000, 100_000), 413, "image_too_large", path=read)
    add("read-random-bytes.bin", rng.bytes(2048), 400, "invalid_image", how="raw",
        content_type="image/png", path=read)
    add("read-blank.png", encode(Image.new("L", (900, 200), 255), "PNG"), 422, "blank_image", path=read)
    dust = np.full((200, 2000), 255, np.uint8)  # 160 specks of one size in a row: far too many "digits"
    for i in range(160):
        dust[90:98, 12 * i:12 * i + 5] = 0
    add("read-160-specks.png", encode(Image.fromarray(dust), "PNG"), 422, "too_many_digits", path=read)
    add("read-aspect-1x3000-blank.png", encode(Image.new("L", (1, 3000), 255), "PNG"), 422, "blank_image",
        path=read)
    nan = np.full((1, 784), np.nan, "<f4").tobytes()
    header = json.dumps({"inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 784],
                                     "parameters": {"binary_data_size": len(nan)}}]}).encode()
    add("v2-binary-nan.bin", header + nan, 400, "bad_request", how="raw",
        content_type="application/octet-stream", path=v2,
        headers={"Inference-Header-Content-Length": str(len(header))})
    return cases


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    for old in HERE.iterdir():
        old.unlink()
    cases = build()
    (HERE / "manifest.json").write_text(json.dumps(cases, indent=1) + "\n")
    total = sum((HERE / c["file"]).stat().st_size for c in cases)
    print(f"wrote {len(cases)} cases, {total / 1024:.0f} KiB, to {HERE}")


if __name__ == "__main__":
    main()
