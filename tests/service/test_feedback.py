"""Feedback: stored exactly once in every upload form, bounded, summarised, safe with many writers,
corrupt entries skipped; and train.py folding it into training."""

import base64
import io
import json
import os
import threading
import time

import numpy as np
import pytest
from PIL import Image

from model.feedback import STALE_SECONDS, FeedbackStore, load_feedback
from service import create_app
from service.schemas import FeedbackResponse, FeedbackSummary

from conftest import DIGIT_PNG, derive


@pytest.fixture
def feedback_settings(settings, tmp_path):
    return derive(settings, feedback_dir=tmp_path / "feedback")


def post(client, form="multipart", label=7, **fields):
    if form == "multipart":
        return client.post("/v1/feedback", data={"image": (io.BytesIO(DIGIT_PNG), "d.png"), "label": str(label),
                                                 **{k: str(v) for k, v in fields.items()}})
    if form == "json":
        return client.post("/v1/feedback", json={"image": base64.b64encode(DIGIT_PNG).decode(), "label": label,
                                                 **fields})
    return client.post(f"/v1/feedback?label={label}", data=DIGIT_PNG, content_type="image/png")


@pytest.mark.parametrize("form", ["multipart", "json", "raw"])
def test_feedback_is_stored_with_what_the_model_saw(feedback_settings, form):
    client = create_app(feedback_settings, poll=False).test_client()
    r = post(client, form, label=7, **({"request_id": "req-42", "predicted": 3} if form != "raw" else {}))
    assert r.status_code == 202, r.json
    body = FeedbackResponse.model_validate(r.json)
    assert body.label == 7 and body.version == "1" and body.predicted == 3  # the constant model says 3
    (entry,) = load_feedback(feedback_settings.feedback_dir)
    assert entry.id == body.id and entry.label == 7 and entry.version == "1" and entry.predicted == 3
    assert entry.image.shape == (28, 28) and entry.image.dtype == np.uint8
    assert np.array_equal(entry.image, np.asarray(Image.open(io.BytesIO(DIGIT_PNG))))  # MNIST-form upload
    if form != "raw":
        assert entry.request_id == "req-42" and entry.answered == 3


@pytest.mark.parametrize("fields, status", [
    ({}, 400), ({"label": "10"}, 400), ({"label": "-1"}, 400), ({"label": "seven"}, 400),
    ({"label": "3", "predicted": "x"}, 400), ({"label": "3", "request_id": "r" * 200}, 400),
])
def test_bad_feedback_is_refused_and_nothing_stored(feedback_settings, fields, status):
    client = create_app(feedback_settings, poll=False).test_client()
    r = client.post("/v1/feedback", data={"image": (io.BytesIO(DIGIT_PNG), "d.png"), **fields})
    assert r.status_code == status and r.json["status"] == status, r.json
    assert load_feedback(feedback_settings.feedback_dir) == []
    junk = client.post("/v1/feedback", data={"image": (io.BytesIO(b"junk"), "d.png"), "label": "3"})
    assert junk.status_code == 400 and junk.json["code"] == "invalid_image"


def test_the_store_is_bounded_with_a_clear_507(feedback_settings):
    client = create_app(derive(feedback_settings, feedback_max_entries=2), poll=False).test_client()
    assert post(client).status_code == 202 and post(client).status_code == 202
    r = post(client)
    assert r.status_code == 507 and r.json["code"] == "feedback_store_full"
    assert len(load_feedback(feedback_settings.feedback_dir)) == 2


def test_summary_counts_labels_and_the_active_versions_accuracy(feedback_settings):
    client = create_app(feedback_settings, poll=False).test_client()
    for label in (3, 3, 7, 1):
        post(client, label=label)
    summary = FeedbackSummary.model_validate(client.get("/v1/feedback").json)
    assert summary.count == 4 and summary.summarised == 4
    assert summary.per_label["3"] == 2 and summary.per_label["7"] == 1 and summary.per_label["0"] == 0
    assert summary.accuracy == pytest.approx(0.5)  # the constant model answers 3


def test_corrupt_entries_are_skipped_never_fatal(feedback_settings, caplog):
    client = create_app(feedback_settings, poll=False).test_client()
    post(client, label=3)
    directory = feedback_settings.feedback_dir
    (directory / "0000000000001-truncated.json").write_text('{"image": "iVBOR')
    (directory / "0000000000002-wrong.json").write_text(json.dumps({"id": "x", "image": "", "label": 99, "time": 1}))
    entries = load_feedback(directory)
    assert [e.label for e in entries] == [3]
    assert "corrupt feedback entry" in caplog.text
    assert client.get("/v1/feedback").json["summarised"] == 1


def test_many_writers_at_once_store_every_entry_exactly_once(tmp_path):
    stores = [FeedbackStore(tmp_path / "shared", 10_000, 10**9) for _ in range(2)]  # two "replicas"
    digit = np.zeros((28, 28), np.uint8)
    ids, lock = [], threading.Lock()

    def write(store, n):
        for i in range(n):
            entry_id = store.add(digit, i % 10, "1", 0)
            with lock:
                ids.append(entry_id)

    threads = [threading.Thread(target=write, args=(stores[i % 2], 50)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = load_feedback(tmp_path / "shared")
    assert len(ids) == len(set(ids)) == 400
    assert sorted(e.id for e in entries) == sorted(ids)
    assert not list((tmp_path / "shared").glob(".*"))  # no temporary file left behind


def test_a_write_left_unfinished_by_a_killed_process_is_removed_once_stale(tmp_path):
    store = FeedbackStore(tmp_path, max_entries=10, max_bytes=1 << 20)
    store.add(np.zeros((28, 28), np.uint8), 3, "1", 3)
    stale, fresh = tmp_path / ".feedback.abc.tmp", tmp_path / ".feedback.def.tmp"
    stale.write_bytes(b'{"half')
    fresh.write_bytes(b'{"being wri')
    old = time.time() - 2 * STALE_SECONDS
    os.utime(stale, (old, old))
    assert store.usage()[0] == 1  # temporary files are not entries
    assert not stale.exists() and fresh.exists()  # a write in progress is left alone
    assert len(load_feedback(tmp_path)) == 1
