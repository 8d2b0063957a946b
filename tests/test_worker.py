"""The gunicorn worker's one-write responses: same bytes as gunicorn's, fewer writes."""

import re
import socket
import sys

import pytest
import requests
from gunicorn.config import Config
from gunicorn.http import RequestParser, wsgi

from conftest import BUNDLED_ARTIFACTS
from live import live_server
from service.worker import COALESCE_LIMIT, CoalescingResponse


class RecordingSocket:
    """Stands in for the client socket: keeps every sendall() separately."""

    def __init__(self):
        self.writes: list[bytes] = []

    def sendall(self, data):
        self.writes.append(bytes(data))

    def send(self, data):
        self.writes.append(bytes(data))
        return len(data)


def respond(response_class, method: str, status: str, headers: list, body: list[bytes]):
    """Answer one HTTP/1.1 request with ``response_class``; return the socket's writes."""
    cfg = Config()
    raw = f"{method} /x HTTP/1.1\r\nHost: t\r\n\r\n".encode()
    req = next(RequestParser(cfg, iter([raw]), ("127.0.0.1", 5000)))
    sock = RecordingSocket()
    resp, _ = wsgi.create(req, sock, ("127.0.0.1", 5000), ("127.0.0.1", 8000), cfg,
                          response_class=response_class)
    resp.start_response(status, headers)
    for chunk in body:
        resp.write(chunk)
    resp.close()
    return sock.writes


def without_date(data: bytes) -> bytes:
    return b"\r\n".join(line for line in data.split(b"\r\n") if not line.startswith(b"Date:"))


CASES = {
    "small json": ("POST", "200 OK", [("Content-Length", "13")], [b'{"class": 7}\n']),
    "two chunks with length": ("GET", "200 OK", [("Content-Length", "6")], [b"abc", b"def"]),
    "empty body": ("OPTIONS", "200 OK", [("Content-Length", "0")], []),
    "head": ("HEAD", "200 OK", [("Content-Length", "5")], [b"hello"]),
    "no content": ("DELETE", "204 No Content", [], []),
    "chunked": ("GET", "200 OK", [], [b"stream", b"ed"]),
    "large": ("GET", "200 OK", [("Content-Length", str(COALESCE_LIMIT))], [b"x" * COALESCE_LIMIT]),
}


@pytest.mark.parametrize("case", CASES)
def test_the_bytes_on_the_wire_are_gunicorns(case):
    ours = respond(CoalescingResponse, *CASES[case])
    theirs = respond(wsgi.Response, *CASES[case])
    assert without_date(b"".join(ours)) == without_date(b"".join(theirs))
    assert b"".join(ours).startswith(b"HTTP/1.1 ")


def test_a_small_response_is_one_write():
    writes = respond(CoalescingResponse, *CASES["small json"])
    assert len(writes) == 1 and writes[0].endswith(b'\r\n\r\n{"class": 7}\n')
    assert len(respond(wsgi.Response, *CASES["small json"])) == 2  # what gunicorn alone does


def test_bodies_without_a_first_write_still_send_the_head():
    for case in ("empty body", "head", "no content"):
        writes = respond(CoalescingResponse, *CASES[case])
        assert len(writes) == 1 and writes[0].endswith(b"\r\n\r\n"), case


def test_large_and_chunked_bodies_are_not_copied_into_the_head():
    large = respond(CoalescingResponse, *CASES["large"])
    assert len(large) == 2 and large[1] == b"x" * COALESCE_LIMIT
    chunked = respond(CoalescingResponse, *CASES["chunked"])
    assert chunked[0].endswith(b"\r\n\r\n") and chunked[-1] == b"0\r\n\r\n"


def test_every_method_gets_an_answer_through_gunicorn(tmp_path):
    with live_server({"ARTIFACTS_DIR": BUNDLED_ARTIFACTS, "ACCESS_LOG": "false"}, tmp_path) as server:
        session = requests.Session()  # one kept-alive connection for all of them
        for method, path, status in [("HEAD", "/", 200), ("OPTIONS", "/v2", 200), ("GET", "/v2", 200),
                                     ("HEAD", "/static/app.js", 200), ("OPTIONS", "/nowhere", 404),
                                     ("PUT", "/v1/predict", 405), ("GET", "/healthz", 200)]:
            r = session.request(method, server.url + path, timeout=5)
            assert r.status_code == status, (method, path)
        # a raw HEAD on a fresh socket: the head arrives and the connection stays usable
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            data = b""
            while not (data.count(b"HTTP/1.1 200") == 2 and data.rstrip().endswith(b"}")):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        assert data.count(b"HTTP/1.1 200") == 2
        assert data.split(b"\r\n\r\n", 1)[1].startswith(b"HTTP/1.1 200")  # the HEAD answer has no body


def test_the_date_header_is_current_and_in_http_format():
    from datetime import datetime, timezone
    from email.utils import parsedate_to_datetime

    from service.worker import http_date

    assert re.fullmatch(r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT", http_date())
    when = parsedate_to_datetime(http_date())
    assert abs((datetime.now(timezone.utc) - when).total_seconds()) < 2
    assert http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"


def test_a_failure_after_start_response_can_still_become_a_500():
    # The head is only held, not sent: gunicorn (and start_response with
    # exc_info) may still replace it with an error response.
    cfg = Config()
    req = next(RequestParser(cfg, iter([b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"]), ("127.0.0.1", 5000)))
    sock = RecordingSocket()
    resp, _ = wsgi.create(req, sock, ("127.0.0.1", 5000), ("127.0.0.1", 8000), cfg,
                          response_class=CoalescingResponse)
    resp.start_response("200 OK", [("X-First", "1")])  # chunked: an empty first chunk writes nothing
    resp.write(b"")
    assert not resp.headers_sent and sock.writes == []
    try:
        raise RuntimeError("the app failed while streaming")
    except RuntimeError:
        resp.start_response("500 Internal Server Error", [("Content-Length", "4")], sys.exc_info())
    resp.write(b"oops")
    resp.close()
    wire = b"".join(sock.writes)
    assert wire.startswith(b"HTTP/1.1 500 ") and b"200 OK" not in wire and wire.endswith(b"\r\n\r\noops")
    assert b"X-First" not in wire and wire.lower().count(b"transfer-encoding") == 0  # the error's headers only
