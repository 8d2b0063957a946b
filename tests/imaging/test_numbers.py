"""Reading whole numbers: segmentation of constructed lines with the bundled model, boxes in the
upload's pixels, and /v1/read's answers, errors, limits and metrics."""

import io
import itertools
import math

import numpy as np
import pytest
from PIL import Image

from service import create_app
from imaging.cuts import cheapest_cuts, cut_paths, drop_fall
from imaging.numbers import MarksOnly, TooManyDigits, best_segmentation, read, read_image
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


# -- cut paths and the choice of a segmentation ---------------------------------------------------


def rings(contact: int = 19, size: int = 40, radius: float = 8.5, width: float = 1.6) -> tuple[np.ndarray, ...]:
    """Return (mask, left, right): two rings side by side (a touching "00"), the left one's
    rightmost ink and the right one's leftmost ink both in column ``contact``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    left = np.abs(np.hypot(yy - 20, xx - (contact - radius)) - radius) <= width
    right = np.abs(np.hypot(yy - 20, xx - (contact + radius)) - radius) <= width
    return left | right, left, right


def slanted_bars(shear: float = 0.5, size: int = 40, gap: int = 3) -> tuple[np.ndarray, ...]:
    """Return (mask, left, right): two bars 4 px wide leaning right by ``shear`` columns per
    row, ``gap`` columns apart (the left one's right edge from column 36 at the top to 20
    at the bottom)."""
    yy, xx = np.mgrid[0:size, 0:size * 2].astype(float)
    axis = 18 + shear * (size - 1 - yy)  # x of the left bar's right edge in each row
    left = (xx > axis - 4) & (xx <= axis) & (yy >= 4) & (yy < size - 4)
    right = (xx > axis + gap) & (xx <= axis + gap + 4) & (yy >= 4) & (yy < size - 4)
    return left | right, left, right


def splits(path: np.ndarray, left: np.ndarray, right: np.ndarray, slack: int = 0) -> bool:
    """Whether ``path`` puts every pixel of ``left`` left of it and of ``right`` right of it,
    but for the pixels within ``slack`` columns of it (the contact)."""
    cols = np.arange(left.shape[1])[None, :]
    near = np.abs(cols - path[:, None]) <= slack
    return not (left & (cols >= path[:, None]) & ~near).any() and not (right & (cols < path[:, None]) & ~near).any()


@pytest.mark.parametrize("from_bottom", [False, True])
@pytest.mark.parametrize("lean", [-1, 1])
def test_drop_fall_splits_a_touching_pair_at_the_contact(from_bottom, lean):
    mask, left, right = rings(contact=19)
    path = drop_fall(mask, 19, from_bottom=from_bottom, lean=lean, lo=4, hi=36)
    assert path.shape == (40,) and splits(path, left, right, slack=2)
    assert np.all(np.abs(path[16:25] - 19) <= 2)  # it goes through where they meet


def test_drop_fall_follows_a_slanted_gap():
    mask, left, right = slanted_bars(shear=0.5, gap=3)
    path = drop_fall(mask, int(18 + 0.5 * 35) + 2, lo=0, hi=80)
    assert splits(path, left, right) and path[5] - path[34] >= 10  # not a vertical line
    assert not mask[np.arange(40), path].any()  # through the background all the way


def test_the_cheapest_cut_goes_through_the_least_ink():
    mask, left, right = slanted_bars(shear=0.5, gap=3)
    (path,) = cheapest_cuts(mask.astype(np.float32), [29], band=9)  # the band covers the slant
    assert splits(path, left, right) and not mask[np.arange(40), path].any()
    (narrow,) = cheapest_cuts(mask.astype(np.float32), [29], band=3)  # a band too narrow for the slant
    assert mask[np.arange(40), narrow].any()


def test_cut_paths_of_a_touching_pair_include_the_contact():
    mask, left, right = rings(contact=19)
    cuts = cut_paths(mask, height=20.0, stroke=3.0)
    assert cuts and all((a <= b).all() for (a, _), (b, _) in itertools.pairwise(cuts))  # they never cross
    assert any(splits(path, left, right, slack=2) for path, _ in cuts)


def test_the_best_segmentation_maximises_the_sum_of_scores_less_the_cuts():
    # nodes 0..4; one wide candidate (0, 4) against two pairs of narrower ones
    edges = {(0, 4): -1.0, (0, 2): -0.2, (2, 4): -0.3, (0, 1): -3.0, (1, 4): -0.1, (1, 2): -2.0}
    assert best_segmentation(4, edges, [0, 0, 0, 0, 0]) == [(0, 2), (2, 4)]
    # a costly cut at node 2 (through much ink) makes the whole reading win
    assert best_segmentation(4, edges, [0, 0, 1.0, 0, 0]) == [(0, 4)]
    # ...unless another path avoids it: node 1 is cheap, but (0, 1) reads badly
    assert best_segmentation(4, {**edges, (0, 1): -0.1}, [0, 0, 1.0, 0, 0]) == [(0, 1), (1, 4)]
    assert best_segmentation(4, {(0, 1): 0.0, (2, 4): 0.0}, [0] * 5) == []  # no path reaches the end


def fake_assess(X: np.ndarray):
    """A judge that knows one digit: a narrow upright stroke is a confident 1 (digit score
    0.97); anything wider is not a digit (score 0.01)."""
    images = X.reshape(-1, 28, 28) > 0.3
    widths = np.array([np.ptp(np.flatnonzero(im.any(axis=0))) + 1 if im.any() else 0 for im in images])
    probs = np.full((len(X), 10), 0.005, np.float32)
    probs[:, 1] = 0.955
    scores = np.where(widths <= 9, 0.97, 0.01).astype(np.float32)
    return probs, scores, ["digit" if s > 0.5 else "not_a_digit" for s in scores]


def test_a_wide_piece_is_cut_where_the_judge_sees_two_digits():
    bar = np.zeros((20, 4), np.uint8)
    bar[:, :] = 255
    joined = np.zeros((20, 16), np.uint8)  # a "U": two bars joined at the bottom
    joined[:, :4] = joined[:, 12:] = 255
    joined[16:, :] = 255
    ink, _ = line("1u1", pieces={"1": bar, "u": joined}, gaps=[8, 8])
    image, working = read_image(png(ink), 40_000_000)
    reading = read(image, working, fake_assess, [str(d) for d in range(10)], 32)
    assert reading.text == "1111" and reading.marks == []


def touching(parts: list[np.ndarray], overlap: int, level: int = 90) -> np.ndarray:
    """Return ink (uint8, 1x) with ``parts`` side by side on a baseline, each touching the one
    before: slid left until their ink (pixels of ``level`` or more) overlaps by ``overlap``
    pixels in the row where they come closest."""
    height = max(p.shape[0] for p in parts) + 16
    canvas = np.zeros((height, sum(p.shape[1] for p in parts) + 16), np.uint8)
    x, before = 8, None
    for part in parts:
        y = height - 6 - part.shape[0]
        if before is not None:
            bx, by, b = before
            rows = range(max(by, y), min(by + b.shape[0], y + part.shape[0]))
            x = max(bx + np.flatnonzero(b[r - by] >= level)[-1] - np.flatnonzero(part[r - y] >= level)[0]
                    for r in rows if (b[r - by] >= level).any() and (part[r - y] >= level).any()) - overlap + 1
        region = canvas[y:y + part.shape[0], x:x + part.shape[1]]
        np.maximum(region, part, out=region)
        before = (x, y, part)
        x += part.shape[1] + 6
    return canvas[:, :np.flatnonzero(canvas.any(axis=0))[-1] + 9]


def upright(digit: np.ndarray, degrees: float) -> np.ndarray:
    """Return ``digit`` turned counter-clockwise by ``degrees``, cropped to its ink."""
    turned = np.asarray(Image.fromarray(digit).rotate(degrees, Image.BILINEAR, expand=True))
    rows, cols = np.flatnonzero(turned.max(axis=1) > 20), np.flatnonzero(turned.max(axis=0) > 20)
    return turned[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def crop_of(path) -> np.ndarray:
    image = np.asarray(Image.open(path))
    rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    return image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


ONES = [crop_of(RESOURCES / "mnist_test_2_label1.png"), crop_of(RESOURCES / "mnist_test_5_label1.png")]


@pytest.mark.parametrize("overlap", [1, 2, 3])
@pytest.mark.parametrize("text, parts", [
    ("11", [upright(ONES[0], 20), ONES[1]]),  # an upright 1 and a slanted one meeting at the foot
    ("00", [DIGITS["0"], DIGITS["0"]]),
    ("17", [DIGITS["1"], DIGITS["7"]]),
])
def test_touching_pairs_read_right(text, parts, overlap):
    ink = touching(parts, overlap)
    assert len(np.flatnonzero(np.diff((ink.max(axis=0) > 0).astype(int)) == 1)) == 1  # one piece
    assert read_bytes(png(ink)).text == text


def test_a_dash_is_a_mark_not_a_digit():
    dash = np.zeros((3, 9), np.uint8)
    dash[:] = 255
    ink, boxes = line("41-72", pieces={"-": dash}, drops=[0, 0, -10, 0, 0])
    reading = read_bytes(png(ink))
    assert reading.text == "4172"
    assert len(reading.marks) == 1 and reading.marks[0]["kind"] == "mark"
    x, _, w, _ = reading.marks[0]["box"]
    assert abs(x - boxes[2][0] * SCALE) <= 3 * SCALE and abs(w - boxes[2][2] * SCALE) <= 3 * SCALE


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
