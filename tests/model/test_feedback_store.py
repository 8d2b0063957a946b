"""The feedback store's entries: raw pixels, and entries in the older PNG form still read."""

import base64
import io
import json

import numpy as np
from PIL import Image

from model.feedback import FeedbackStore, load_feedback


def test_an_entry_keeps_the_exact_pixels(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    store = FeedbackStore(tmp_path, 10, 10**6)
    entry_id = store.add(image, 7, "3", 1, answered=1, request_id="r-1")
    (entry,) = load_feedback(tmp_path)
    assert entry.id == entry_id and entry.label == 7 and entry.version == "3" and entry.predicted == 1
    np.testing.assert_array_equal(entry.image, image)
    stored = json.loads((tmp_path / f"{entry_id}.json").read_text())
    assert base64.b64decode(stored["pixels"]) == image.tobytes() and "image" not in stored


def test_entries_written_as_png_before_are_still_read(tmp_path):
    image = np.arange(784, dtype=np.uint8).reshape(28, 28)
    buffer = io.BytesIO()
    Image.fromarray(image, "L").save(buffer, format="PNG")
    (tmp_path / "0000000000001-old.json").write_text(json.dumps(
        {"id": "old", "image": base64.b64encode(buffer.getvalue()).decode(), "label": 4, "version": "1",
         "predicted": 9, "time": 1.0}))
    (entry,) = load_feedback(tmp_path)
    assert entry.label == 4 and entry.predicted == 9
    np.testing.assert_array_equal(entry.image, image)


def test_a_wrong_sized_image_is_skipped_not_fatal(tmp_path):
    (tmp_path / "0000000000001-short.json").write_text(json.dumps(
        {"id": "short", "pixels": base64.b64encode(b"\x00" * 100).decode(), "label": 1, "time": 1.0}))
    assert load_feedback(tmp_path) == []
