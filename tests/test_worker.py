"""The gunicorn worker: one-write responses (same bytes as gunicorn's, fewer writes),
and complete requests on kept-alive connections served without the thread pool."""

import os
import re
import socket
import sys
import time
from contextlib import closing

import pytest
import requests
from gunicorn.config import Config
from gunicorn.http import RequestParser, wsgi
from gunicorn.http.errors import InvalidResponseHeader, InvalidResponseHeaderName

from bench.reliability import worker_versions
from conftest import BUNDLED_ARTIFACTS, DIGIT_PNG
from live import live_server
from service import worker as worker_module
from service.worker import COALESCE_LIMIT, CoalescingResponse, buffered_request


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


def test_headers_seen_before_give_the_same_bytes_and_bad_ones_are_still_refused():
    headers = [("Content-Type", "application/json"), ("X-Frame-Options", "DENY"),
               ("Content-Length", "13"), ("Connection", "keep-alive"), ("X-Padded", " v ")]
    case = ("POST", "200 OK", headers, [b'{"class": 7}\n'])
    theirs = without_date(b"".join(respond(wsgi.Response, *case)))
    for _ in range(3):  # the first answer fills the cache, the next ones use it
        assert without_date(b"".join(respond(CoalescingResponse, *case))) == theirs
    assert theirs.count(b"Connection:") == 1 and b"X-Padded: v\r\n" in theirs  # hop-by-hop dropped, value trimmed
    for bad in [("X-Bad", "a\r\nInjected: 1"), ("Bad Name", "x"), ("X-Bytes", b"x")]:
        with pytest.raises((TypeError, InvalidResponseHeader, InvalidResponseHeaderName)):
            respond(CoalescingResponse, "GET", "200 OK", [("X-Frame-Options", "DENY"), bad], [b""])


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


@pytest.fixture
def tcp_pair():
    """A connected loopback TCP pair: (client, server side)."""
    with closing(socket.create_server(("127.0.0.1", 0))) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=5)
        server, _ = listener.accept()
    with closing(client), closing(server):
        yield client, server


def arrived(client, server, data: bytes) -> bool:
    """Send ``data``, let it reach the other side, ask ``buffered_request`` about it."""
    client.sendall(data)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # loopback delivers at once; allow for a busy machine
        if len(server.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)) >= len(data):
            break
        time.sleep(0.001)
    return buffered_request(server)


POST = b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"


@pytest.mark.parametrize("data, complete", [
    (b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", True),
    (b"GET /healthz HTTP/1.1\r\nHost: t\r\n", False),  # the head is not finished
    (POST + b"Content-Length: 10\r\n\r\n12345", False),  # half the body
    (POST + b"content-LENGTH:  10 \r\n\r\n1234567890", True),
    (POST + b"Content-Length: 10\r\n\r\n1234567890GET / HTTP/1.1\r\n", True),  # and more behind it
    (POST + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", False),
    (POST + b"Expect: 100-continue\r\nContent-Length: 0\r\n\r\n", False),
    (b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", False),
])
def test_a_request_counts_as_arrived_only_when_it_is_whole_and_plain(tcp_pair, data, complete):
    client, server = tcp_pair
    assert arrived(client, server, data) is complete
    server.settimeout(5)
    assert server.recv(65536) == data  # nothing was consumed


def test_nothing_or_a_closed_socket_is_not_a_request(tcp_pair):
    client, server = tcp_pair
    assert not buffered_request(server)
    server.close()
    assert not buffered_request(server)


def http_exchange(sock, request: bytes, count: int = 1) -> list[bytes]:
    """Send ``request`` (``count`` pipelined copies are expected back); return the heads."""
    sock.sendall(request)
    data, heads = b"", []
    while len(heads) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(heads)} answers"
            data += chunk
        head, data = data.split(b"\r\n\r\n", 1)
        length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
        while len(data) < length:
            data += sock.recv(65536)
        heads.append(head)
        data = data[length:]
    return heads


def test_a_stalled_upload_does_not_hold_up_complete_requests(tmp_path):
    # One worker, one pool thread. The stalled upload takes the thread; the kept-alive
    # connection's complete requests are served by the event loop meanwhile.
    env = {"ARTIFACTS_DIR": BUNDLED_ARTIFACTS, "ACCESS_LOG": "false", "THREADS": "1"}
    with live_server(env, tmp_path, workers=1) as server:
        address = ("127.0.0.1", server.port)
        health = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
        with socket.create_connection(address, timeout=10) as kept, \
                socket.create_connection(address, timeout=10) as stalled:
            assert http_exchange(kept, health)[0].startswith(b"HTTP/1.1 200")  # via the pool
            upload = DIGIT_PNG
            stalled.sendall(POST + f"Content-Length: {len(upload)}\r\n\r\n".encode() + upload[:10])
            time.sleep(0.5)  # the pool thread is now reading the rest of that body
            started = time.monotonic()
            for _ in range(3):
                assert http_exchange(kept, health)[0].startswith(b"HTTP/1.1 200")
            assert time.monotonic() - started < 2.0
            # 300 pipelined requests in one write: each is answered, in order
            heads = http_exchange(kept, b"".join(
                health.replace(b"Host: t", f"Host: t\r\nX-Request-ID: r{i:03d}".encode())
                for i in range(300)), count=300)
            assert [re.search(rb"X-Request-ID: (r\d+)", h).group(1) for h in heads] == \
                [f"r{i:03d}".encode() for i in range(300)]
            # and the upload, finished late, is answered too
            stalled.sendall(upload[10:])
            answer = http_exchange(stalled, b"")[0]
            assert answer.startswith(b"HTTP/1.1 200"), answer


def test_connection_slots_are_claimed_published_and_freed():
    class Exited:  # what the master holds for an exited worker
        def __init__(self, age, slot):
            self.age, self.mnist_slot = age, slot

    table = bytes(worker_module._table)
    try:
        worker_module._table[:] = bytes(len(table))
        a, b = worker_module._claim_slot(1), worker_module._claim_slot(2)
        assert a != b
        worker_module._SLOT.pack_into(worker_module._table, a * worker_module._SLOT.size, 1, 7)
        worker_module._SLOT.pack_into(worker_module._table, b * worker_module._SLOT.size, 2, 3)
        assert worker_module._least_connections() == 3
        worker_module.release_slot(Exited(2, b))
        assert worker_module._least_connections() == 7  # only live workers count
        worker_module.release_slot(Exited(9, a))  # not its slot: left alone
        assert worker_module._least_connections() == 7
        assert worker_module._claim_slot(3) == b  # a freed slot is reused
    finally:
        worker_module._table[:] = table


def _worker_sockets(workers: list[int], port: int) -> dict[int, int]:
    """Established connections to ``port`` held by each worker process."""
    inodes = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":  # local port, ESTABLISHED
            inodes.add(fields[9])
    held = {}
    for pid in workers:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        held[pid] = sum(link[8:-1] in inodes for link in links if link.startswith("socket:["))
    return held


def test_a_burst_of_kept_alive_connections_is_spread_over_the_workers(tmp_path):
    env = {"ARTIFACTS_DIR": BUNDLED_ARTIFACTS, "ACCESS_LOG": "false"}
    with live_server(env, tmp_path, workers=2) as server:
        deadline = time.monotonic() + 30  # both workers up, their model loaded
        while len(worker_versions(server.url)) < 2:
            assert time.monotonic() < deadline, "the second worker never came up"
            time.sleep(0.1)
        workers = [int(pid) for pid in worker_versions(server.url)]
        health = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
        for attempt in range(3):  # three bursts of 8, as wrk opens them
            clients = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(8)]
            try:
                for client in clients:
                    client.sendall(health)
                for client in clients:
                    assert http_exchange(client, b"")[0].startswith(b"HTTP/1.1 200")
                held = _worker_sockets(workers, server.port)
                assert sum(held.values()) == 8 and len(held) == 2, held
                assert min(held.values()) >= 3, held  # not 8 on one worker and 0 on the other
            finally:
                for client in clients:
                    client.close()
            time.sleep(0.2)
