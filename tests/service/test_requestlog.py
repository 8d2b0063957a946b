"""The JSON access log, request ids, CORS and the unread-body drain (service/requestlog.py, logs.py)."""

import io
import json
import logging
import os
import re
import threading
import time

import pytest

from service import create_app
from service.logs import PIPE_BUF, BufferedStreamHandler, JsonFormatter, log_fields
from service.requestlog import request_id_from

from conftest import DIGIT_PNG, derive


@pytest.fixture
def access_lines(settings):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("service.access")
    logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


def test_one_json_line_per_request(settings, access_lines):
    app = create_app(derive(settings, access_log=True), poll=False)
    client = app.test_client()
    client.post("/v1/predict", data=DIGIT_PNG, content_type="image/png", headers={"X-Request-ID": "req-42"})
    client.get("/missing")
    client.put("/v1/models/active", json={"version": "1"},
               headers={"Authorization": "Bearer secret-token-that-is-wrong"})
    first, second, third = access_lines()
    assert first["request_id"] == "req-42" and first["endpoint"] == "v1.predict"
    assert first["status"] == 200 and first["model_version"] == "1" and first["latency_ms"] > 0
    assert first["method"] == "POST" and first["path"] == "/v1/predict" and first["level"] == "info"
    assert second["status"] == 404 and second["endpoint"] == "unmatched"
    assert third["status"] == 401
    assert "secret-token" not in json.dumps(access_lines())  # tokens are never logged


def test_access_log_can_be_turned_off(settings, access_lines):
    create_app(derive(settings, access_log=False), poll=False).test_client().get("/healthz")
    assert access_lines() == []


def test_cors_is_applied_only_to_configured_origins(settings):
    app = create_app(derive(settings, cors_origins="https://ok.example"), poll=False)
    client = app.test_client()
    r = client.get("/v1/models", headers={"Origin": "https://ok.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://ok.example"
    r = client.get("/v1/models", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers


def test_buffered_access_log_writes_in_batches_and_on_time():
    stream = io.StringIO()
    handler = BufferedStreamHandler(stream, interval=0.2, capacity=4096)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.buffered")
    logger.propagate, logger.handlers = False, [handler]
    logger.setLevel(logging.INFO)
    try:
        for i in range(3):
            log_fields(logger, "request", {"i": i, "path": "/v1/predict"})
        assert stream.getvalue() == ""  # held back...
        deadline = time.monotonic() + 5
        while not stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]  # ...then written by the flusher
        assert [line["i"] for line in lines] == [0, 1, 2]
        assert lines[0]["logger"] == "test.buffered" and lines[0]["level"] == "info"
        assert lines[0]["msg"] == "request" and lines[0]["ts"].endswith("Z")

        log_fields(logger, "request", {"i": 3})
        logger.warning("disk almost full")  # a warning goes out at once, with what waits before it
        last = [json.loads(line) for line in stream.getvalue().splitlines()[-2:]]
        assert last[0].get("i") == 3 and last[1]["msg"] == "disk almost full"
    finally:
        logger.handlers = []
        handler.close()

    # Capacity reached: written without waiting for the (here far off) flusher.
    stream = io.StringIO()
    handler = BufferedStreamHandler(stream, interval=60, capacity=4096)
    logger.handlers = [handler]
    try:
        for i in range(100):  # ~150 bytes each: about 27 lines fill 4 KiB
            log_fields(logger, "request", {"i": i, "pad": "x" * 100})
        written = [json.loads(line)["i"] for line in stream.getvalue().splitlines()]
        assert 100 - len(written) <= 4096 // 100  # at most a capacity's worth still waits
        assert written == list(range(len(written)))  # in order, whole lines
    finally:
        logger.handlers = []
        handler.close()


def test_log_fields_matches_the_formatter_and_falls_back_to_logging():
    direct, via_logging = io.StringIO(), io.StringIO()
    buffered = BufferedStreamHandler(direct, interval=60)
    buffered.setFormatter(JsonFormatter())
    plain = logging.StreamHandler(via_logging)
    plain.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.fields")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    fields = {"request_id": "r1", "status": 200, "latency_ms": 0.25, "model_version": None}
    try:
        logger.handlers = [buffered]
        log_fields(logger, "request", fields)
        buffered.flush()
        logger.handlers = [plain]  # any other handler: the ordinary logging call
        log_fields(logger, "request", fields)
    finally:
        logger.handlers = []
    ours, theirs = json.loads(direct.getvalue()), json.loads(via_logging.getvalue())
    assert ours.pop("ts")[:16] == theirs.pop("ts")[:16]
    assert ours == theirs == {"level": "info", "logger": "test.fields", "msg": "request", **fields}


def test_access_log_flush_zero_writes_each_line(settings, capsys):
    app = create_app(derive(settings, access_log=True, access_log_flush=0), poll=False)
    app.test_client().get("/healthz")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["path"] == "/healthz" and line["status"] == 200


def test_metrics_know_their_process_after_a_fork():
    # prometheus-client's multiprocess files are per process: the remembered pid
    # must follow a fork, or two workers would write to one file.
    from service import procinfo

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reports its remembered and its real pid
        os.write(write, f"{procinfo.pid()} {os.getpid()}".encode())
        os._exit(0)
    os.close(write)
    remembered, real = os.read(read, 100).decode().split()
    os.waitpid(pid, 0)
    os.close(read)
    assert remembered == real == str(pid) and procinfo.pid() == os.getpid()


def test_buffered_lines_go_out_in_whole_line_writes_no_larger_than_pipe_buf():
    # Workers share one stderr pipe; only writes up to PIPE_BUF bytes are atomic.
    class Recorder(io.StringIO):
        def __init__(self):
            super().__init__()
            self.writes = []

        def write(self, text):
            self.writes.append(text)
            return super().write(text)

    stream = Recorder()
    handler = BufferedStreamHandler(stream, interval=60, capacity=1 << 30)
    logger = logging.getLogger("test.pipebuf")
    logger.propagate, logger.handlers = False, [handler]
    logger.setLevel(logging.INFO)
    try:
        for i in range(200):
            log_fields(logger, "request", {"i": i, "path": "/v1/prédict/" + "é" * (i % 50)})
        handler.flush()
    finally:
        logger.handlers = []
    assert len(stream.writes) > 1
    assert all(len(w.encode()) <= PIPE_BUF and w.endswith("\n") for w in stream.writes)
    assert [json.loads(line)["i"] for line in stream.getvalue().splitlines()] == list(range(200))


def test_buffered_handler_closes_twice_flushes_on_demand_and_forgets_lines_across_fork():
    from service.logs import flush_buffered

    stream = io.StringIO()
    handler = BufferedStreamHandler(stream, interval=60)
    logger = logging.getLogger("test.lifecycle")
    logger.propagate, logger.handlers = False, [handler]
    logger.setLevel(logging.INFO)
    try:
        log_fields(logger, "request", {"i": 1})
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child must not write the parent's pending line again...
            pending, started = len(handler._lines), handler._flusher
            log_fields(logger, "request", {"i": 2})  # ...and starts its own flusher thread
            flusher = any(t.name == "log-flusher" and t.is_alive() for t in threading.enumerate())
            os.write(write, f"{pending},{started},{flusher}".encode())
            os._exit(0)
        os.close(write)
        assert os.read(read, 32) == b"0,False,True"
        os.waitpid(pid, 0)
        os.close(read)
        assert stream.getvalue() == ""
        flush_buffered(timeout=1.0)  # what a worker does before it is killed
        assert json.loads(stream.getvalue())["i"] == 1
    finally:
        logger.handlers = []
    handler.close()
    handler.close()  # a second close (logging.shutdown at exit) is harmless
    assert handler._stop.is_set()


def test_request_ids_are_new_in_every_process_and_a_sane_incoming_one_is_kept():
    assert request_id_from("abc-123.x:y") == "abc-123.x:y"
    fresh = [request_id_from(bad) for bad in (None, "", "a b", "x" * 129, "caf\u00e9")]
    assert all(re.fullmatch("[0-9a-f]{32}", new) for new in fresh), fresh
    assert len(set(fresh)) == len(fresh)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a forked worker must not repeat its parent's sequence
        os.write(write, ",".join(request_id_from(None) for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 4096).decode().split(",")
    os.close(read)
    parent = [request_id_from(None) for _ in range(3)]
    assert len(set(child + parent)) == 6


def test_an_unread_upload_is_drained_before_the_answer(settings):
    """An early answer (here a 404) reads the rest of the upload first, so a kept-alive
    connection is not closed under the client by gunicorn's 64 KB drain limit."""
    from service.requestlog import DRAIN_FACTOR

    client = create_app(derive(settings, max_upload_bytes=64 * 1024), poll=False).test_client()
    body = io.BytesIO(b"x" * 100_000)
    r = client.post("/v1/nowhere", input_stream=body, content_length=100_000, content_type="image/png")
    assert r.status_code == 404 and body.tell() == 100_000
    # One above DRAIN_FACTOR x MAX_UPLOAD_BYTES is not read at all (gunicorn then closes).
    huge = io.BytesIO(b"x" * (DRAIN_FACTOR * 64 * 1024 + 50_000))
    r = client.post("/v1/predict", input_stream=huge, content_length=len(huge.getvalue()),
                    content_type="image/png")
    assert r.status_code == 413 and huge.tell() == 0
    # Nor one the client waits to send until told to continue.
    waiting = io.BytesIO(b"x" * 100_000)
    r = client.post("/v1/nowhere", input_stream=waiting, content_length=100_000, content_type="image/png",
                    headers={"Expect": "100-continue"})
    assert r.status_code == 404 and waiting.tell() == 0
