"""Hostile uploads against a real gunicorn: the committed corpus, plus raw-socket abuse.

Every case must get its documented status and a JSON error body, quickly;
none may get a 500, hang, or hurt the requests that follow. The corpus is
``tests/resources/nasty/`` (rebuilt by ``tests/system/make_nasty_corpus.py``).
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests

from conftest import BUNDLED_ARTIFACTS, DIGIT_PNG, RESOURCES
from live import live_server

NASTY = RESOURCES / "nasty"
CASES = json.loads((NASTY / "manifest.json").read_text())
MAX_UPLOAD = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {"ARTIFACTS_DIR": BUNDLED_ARTIFACTS, "MAX_UPLOAD_BYTES": MAX_UPLOAD, "TIMEOUT": 10,
           "ACCESS_LOG": "false"}
    with live_server(env, tmp_path_factory.mktemp("nasty")) as s:
        yield s


def multipart(data: bytes, filename: bytes = b"x.png", field: bytes = b"image",
              content_type: bytes = b"image/png") -> tuple[bytes, str]:
    boundary = b"nastyboundary1234"
    body = (b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"" + field
            + b"\"; filename=\"" + filename + b"\"\r\nContent-Type: " + content_type + b"\r\n\r\n"
            + data + b"\r\n--" + boundary + b"--\r\n")
    return body, f"multipart/form-data; boundary={boundary.decode()}"


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_corpus(server, case):
    data = (NASTY / case["file"]).read_bytes()
    headers = dict(case.get("headers", {}))
    if case["how"] == "multipart":
        filename = (bytes.fromhex(case["filename_bytes"]) if "filename_bytes" in case
                    else case.get("filename", case["file"]).encode())
        body, headers["Content-Type"] = multipart(data, filename, content_type=case["content_type"].encode())
    else:
        body, headers["Content-Type"] = data, case["content_type"]
    started = time.monotonic()
    r = requests.post(server.url + case.get("path", "/v1/predict"), data=body, headers=headers, timeout=30)
    elapsed = time.monotonic() - started
    assert r.status_code == case["status"], (r.status_code, r.text[:300])
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    if case["status"] >= 400:
        assert body["status"] == case["status"] and body["error"]
        if case["code"]:
            assert body["code"] == case["code"], body
    elif "label" in case:
        assert body["label"] == case["label"]
    assert elapsed < 10, f"{case['file']} took {elapsed:.1f}s"
    # The server is still fine afterwards.
    assert requests.post(server.url + "/v1/predict", data=DIGIT_PNG, headers={"Content-Type": "image/png"},
                         timeout=10).status_code == 200


def test_oversized_body_is_refused_before_it_is_read(server):
    # Claim 1 GB and send nothing more: the answer comes from the header alone.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                  b"Content-Length: 1000000000\r\n\r\n")
        reply = b""
        while b"}" not in reply:  # the JSON body may come in a later segment
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b'"code":"payload_too_large"' in reply


def _raw(server, payload: bytes, read_timeout: float = 10.0) -> bytes:
    port = server.port
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def test_content_length_shorter_than_claimed(server):
    # The client promises 5000 bytes, sends 100 and closes its side.
    reply = _raw(server, b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                         b"Content-Length: 5000\r\n\r\n" + DIGIT_PNG[:100])
    assert not reply.startswith(b"HTTP/1.1 5"), reply[:200]
    assert b"Traceback" not in reply


def test_content_length_longer_than_claimed(server):
    # The extra bytes after the announced body are not a request: a 400, never a 500.
    body, ctype = multipart(DIGIT_PNG)
    reply = _raw(server, b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: " + ctype.encode()
                 + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                 + b"GARBAGE THAT IS NOT HTTP\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    assert b" 500 " not in reply


def test_malformed_request_lines(server):
    for payload in (b"NOT HTTP AT ALL\r\n\r\n", b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\n\r\n",
                    b"POST /v1/predict HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                    b"POST /v1/predict HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
        reply = _raw(server, payload)
        assert not reply.startswith(b"HTTP/1.1 5") or reply.startswith(b"HTTP/1.1 503"), reply[:100]


def test_slow_upload_does_not_block_other_clients(server):
    """A client trickling its body keeps one thread busy; everyone else is served."""
    body, ctype = multipart(DIGIT_PNG)
    port = server.port
    done = {}

    def slow_client():
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: " + ctype.encode()
                      + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
            for i in range(0, len(body), 40):
                s.sendall(body[i:i + 40])
                time.sleep(0.05)
            done["reply"] = s.recv(65536)

    thread = threading.Thread(target=slow_client)
    thread.start()
    time.sleep(0.3)
    latencies = []
    for _ in range(20):
        started = time.monotonic()
        r = requests.post(server.url + "/v1/predict", data=DIGIT_PNG, headers={"Content-Type": "image/png"},
                          timeout=10)
        latencies.append(time.monotonic() - started)
        assert r.status_code == 200
    thread.join(30)
    assert max(latencies) < 1.0, latencies
    assert done["reply"].startswith(b"HTTP/1.1 200")


def test_many_multipart_fields(server):
    parts = b"".join(b"--b\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\nx\r\n" % i
                     for i in range(5000))
    r = requests.post(server.url + "/v1/predict", data=parts + b"--b--\r\n",
                      headers={"Content-Type": "multipart/form-data; boundary=b"}, timeout=30)
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
