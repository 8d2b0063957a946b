"""Reading whole numbers: segmentation of constructed lines with the bundled model, boxes in the
upload's pixels, and /v1/read's answers, errors, limits and metrics."""

import io
import math

import numpy as np
import pytest
from PIL import Image

from model.ood import CONFIDENCE_THRESHOLDS, Verdicts
from service import create_app
from imaging.numbers import MarksOnly, TooManyDigits, read, read_image
from service.schemas import ReadResponse
from service.settings import Settings

from conftest import BUNDLED_ARTIFACTS, RESOURCES, bundled_model

SCALE = 4  # constructed lines are drawn at 4x MNIST's pixels
DIGITS = {}  # label -> an MNIST test digit's ink (uint8, cropped), from the bundled PNGs
for path in sorted(RESOURCES.glob("mnist_test_*_label*.png")):
    label = path.stem.rsplit("label", 1)[1]
    if label not in DIGITS:
        image = np.asarray(Image.open(path))
        rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
        DIGITS[label] = image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def line(text: str, gaps=None, drops=None, pieces=None):
    """Return (ink uint8 white on black, boxes [x, y, w, h] at 1x) of ``text`` written with the
    MNIST digits (any other character: ``pieces[char]``, an ink array), 1x scale."""
    gaps = gaps if gaps is not None else [6] * (len(text) - 1)
    drops = drops or [0] * len(text)
    parts = [DIGITS[c] if c in DIGITS else pieces[c] for c in text]
    height = 40
    width = 8 + sum(p.shape[1] for p in parts) + sum(gaps) + 8
    canvas = np.zeros((height, width), np.uint8)
    x, boxes = 8, []
    for i, part in enumerate(parts):
        h, w = part.shape
        y = 30 - h + drops[i]
        region = canvas[y:y + h, x:x + w]
        np.maximum(region, part, out=region)
        boxes.append([x, y, w, h])
        x += w + (gaps[i] if i < len(gaps) else 0)
    return canvas, boxes


def png(ink: np.ndarray, scale: int = SCALE, dark_on_light: bool = True, angle: float = 0.0) -> bytes:
    img = Image.fromarray(ink).resize((ink.shape[1] * scale, ink.shape[0] * scale), Image.BILINEAR)
    if angle:
        img = img.rotate(angle, Image.BILINEAR, expand=True)
    if dark_on_light:
        img = Image.fromarray(255 - np.asarray(img))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def read_bytes(data: bytes, max_digits: int = 32):
    model = bundled_model()
    image, ink = read_image(data, 40_000_000)
    return read(image, ink, lambda X: model.predictor.assess(X, model.thresholds), model.labels, max_digits)


def assert_boxes(got, expected, scale=SCALE, slack=3):
    """Each read box covers the digit's box (in upload pixels), give or take ``slack`` 1x pixels."""
    for (x, y, w, h), (ex, ey, ew, eh) in zip(got, expected):
        ex, ey, ew, eh = (v * scale for v in (ex, ey, ew, eh))
        s = slack * scale
        assert abs(x - ex) <= s and abs(y - ey) <= s and abs(x + w - ex - ew) <= s and abs(y + h - ey - eh) <= s, \
            ((x, y, w, h), (ex, ey, ew, eh))


def test_digits_with_gaps_read_in_order_with_their_boxes():
    ink, boxes = line("7210")
    reading = read_bytes(png(ink))
    assert reading.text == "7210" and reading.marks == []
    assert [d["verdict"] for d in reading.digits] == ["digit"] * 4
    assert_boxes([d["box"] for d in reading.digits], boxes)
    assert 0.5 < reading.confidence == pytest.approx(np.prod([d["confidence"] for d in reading.digits]))
    for d in reading.digits:
        assert sum(d["probabilities"]) == pytest.approx(1, abs=1e-5) and d["input"].shape == (28, 28)


def test_leading_zeros_uneven_baseline_and_sizes():
    ink, _ = line("0041", drops=[0, -3, 2, 0])
    assert read_bytes(png(ink)).text == "0041"
    small = np.asarray(Image.fromarray(DIGITS["9"]).resize((11, 14), Image.BILINEAR))
    ink, _ = line("7x9", pieces={"x": small})
    assert read_bytes(png(ink)).text == "799"


def test_a_touching_pair_is_split():
    ink, _ = line("4177", gaps=[-2, 6, 6])
    assert read_bytes(png(ink)).text == "4177"
    ink, _ = line("210", gaps=[-1, -1])
    assert read_bytes(png(ink)).text == "210"


def test_a_broken_stroke_and_a_detached_top_stay_one_digit():
    five = DIGITS["5"].copy()
    top_rows = max(2, five.shape[0] // 4)
    broken = five.copy()
    broken[top_rows:top_rows + 2] = 0  # the top bar floats above the body
    ink, _ = line("5x9", pieces={"x": broken})
    assert read_bytes(png(ink)).text == "559"
    seven = DIGITS["7"].copy()
    seven[:, seven.shape[1] // 2] = 0  # a vertical crack through the 7's bar: two pieces side by side
    ink, _ = line("1x", pieces={"x": seven})
    assert read_bytes(png(ink)).text == "17"


def test_dust_above_below_and_between_digits_is_ignored():
    ink, _ = line("507")
    upload = np.asarray(Image.fromarray(ink).resize((ink.shape[1] * SCALE, ink.shape[0] * SCALE),
                                                    Image.BILINEAR)).copy()
    for y, x in [(2, 40), (150, 80), (5, 120), (100, 170), (155, 200)]:  # above, below, between
        upload[y:y + 2, x:x + 2] = 255  # a speck of dust on a scan: 2x2 upload pixels
    buf = io.BytesIO()
    Image.fromarray(255 - upload).save(buf, format="PNG")
    reading = read_bytes(buf.getvalue())
    assert reading.text == "507" and reading.marks == []


def test_a_comma_is_a_mark_not_a_digit():
    comma = np.zeros((7, 3), np.uint8)
    comma[:4, :] = 255
    comma[4:, 0] = 200
    ink, boxes = line("4,1", pieces={",": comma}, drops=[0, 4, 0])
    reading = read_bytes(png(ink))
    assert reading.text == "41"
    assert len(reading.marks) == 1 and reading.marks[0]["kind"] == "mark"
    x, _, w, _ = reading.marks[0]["box"]
    assert abs(x - boxes[1][0] * SCALE) <= 3 * SCALE


def test_a_tilted_line_is_levelled_and_its_boxes_still_land_on_the_digits():
    ink, boxes = line("7210", gaps=[10, 10, 10])
    reading = read_bytes(png(ink, angle=6.0))
    assert reading.text == "7210"
    # Where each digit's centre went when the picture was turned 6 degrees about its centre.
    h, w = ink.shape[0] * SCALE, ink.shape[1] * SCALE
    rad = math.radians(6.0)
    W = w * math.cos(rad) + h * math.sin(rad)
    H = w * math.sin(rad) + h * math.cos(rad)
    for (x, y, bw, bh), d in zip(boxes, reading.digits):
        cx, cy = (x + bw / 2) * SCALE - w / 2, (y + bh / 2) * SCALE - h / 2
        tx, ty = W / 2 + cx * math.cos(rad) + cy * math.sin(rad), H / 2 - cx * math.sin(rad) + cy * math.cos(rad)
        gx, gy, gw, gh = d["box"]
        assert gx <= tx <= gx + gw and gy <= ty <= gy + gh, (d["label"], (tx, ty), d["box"])


def test_boxes_are_in_the_upright_picture_of_an_exif_rotated_photo():
    ink, boxes = line("4190")
    img = Image.fromarray(255 - ink).resize((ink.shape[1] * SCALE, ink.shape[0] * SCALE), Image.BILINEAR)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned; readers turn it 90 degrees clockwise
    buf = io.BytesIO()
    img.convert("RGB").transpose(Image.Transpose.ROTATE_90).save(buf, format="JPEG", quality=95, exif=exif)
    reading = read_bytes(buf.getvalue())
    assert reading.text == "4190"
    assert_boxes([d["box"] for d in reading.digits], boxes)


def test_too_many_digits_and_marks_only_are_refused():
    ink, _ = line("7210")
    with pytest.raises(TooManyDigits):
        read_bytes(png(ink), max_digits=3)
    rng = np.random.default_rng(0)
    scribble = np.zeros((40, 120), np.uint8)
    for _ in range(6):  # hatching: parallel strokes, not digits
        x = int(rng.integers(0, 60))
        for t in range(60):
            scribble[5 + t // 2, min(119, x + t)] = 255
    with pytest.raises(MarksOnly):
        read_bytes(png(np.maximum(scribble, np.roll(scribble, 1, axis=0))))


# -- the endpoint --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    return create_app(Settings(artifacts_dir=BUNDLED_ARTIFACTS, access_log=False, max_read_digits=5),
                      poll=False).test_client()


def digits_read(client) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    line_ = next(x for x in text.splitlines() if x.startswith("mnist_read_digits_count "))
    return float(line_.split()[-1])


@pytest.mark.parametrize("form", ["multipart", "raw", "json"])
def test_read_takes_every_upload_form(client, form):
    import base64

    data, expected = png(line("941")[0]), "941"
    before = digits_read(client)
    if form == "multipart":
        r = client.post("/v1/read?include=input", data={"image": (io.BytesIO(data), "n.png")})
    elif form == "raw":
        r = client.post("/v1/read?include=input", data=data, content_type="image/png")
    else:
        r = client.post("/v1/read?include=input", json={"image": base64.b64encode(data).decode()})
    assert r.status_code == 200, r.json
    body = ReadResponse.model_validate(r.json)
    assert body.text == expected and len(body.digits) == 3 and body.model.name == "mnist"
    assert all(d.input_image.startswith("data:image/png;base64,") for d in body.digits)
    assert r.headers["X-Model-Version"] == body.model.version
    assert digits_read(client) == before + 1


@pytest.mark.parametrize("data, status, code", [
    (b"", 400, "invalid_image"),
    (b"not an image", 400, "invalid_image"),
    ("blank", 422, "blank_image"),
    ("six digits", 422, "too_many_digits"),
])
def test_read_errors_are_clean_json(client, data, status, code):
    if data == "blank":
        buf = io.BytesIO()
        Image.new("L", (300, 100), 255).save(buf, format="PNG")
        data = buf.getvalue()
    elif data == "six digits":
        data = png(line("721041")[0])
    r = client.post("/v1/read", data=data, content_type="image/png")
    assert r.status_code == status and r.json["code"] == code, r.json
    assert set(r.json) >= {"error", "code", "status", "request_id"}


def test_read_is_in_the_openapi_document(client):
    doc = client.get("/openapi.json").json
    assert "/v1/read" in doc["paths"] and "ReadResponse" in doc["components"]["schemas"]
