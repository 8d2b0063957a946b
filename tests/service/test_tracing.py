"""W3C trace context: traceparent accepted, logged and returned; OpenTelemetry export over OTLP to
a real (local) receiver when OTEL_* asks for it, and nothing registered when it does not."""

import http.server
import subprocess
import sys
import threading

import pytest

from service import create_app
from service.requestlog import trace_from

from conftest import DIGIT_PNG, REPO, derive
from test_requestlog import access_lines  # noqa: F401 - a fixture

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize("header, expected", [
    (PARENT, PARENT),
    ("  " + PARENT + " ", PARENT),
    ("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future", "00-" + PARENT[3:]),
    ("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", None),
    ("00-00000000000000000000000000000000-b7ad6b7169203331-01", None),
    ("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", None),
    ("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", None),
    ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra", None),
    ("garbage", None), ("", None), (None, None),
])
def test_traceparent_parsing_follows_w3c_trace_context(header, expected):
    assert trace_from(header) == expected


def test_traceparent_is_returned_and_its_trace_id_logged(settings, access_lines):  # noqa: F811
    client = create_app(derive(settings, access_log=True), poll=False).test_client()
    r = client.post("/v1/predict", data=DIGIT_PNG, content_type="image/png", headers={"traceparent": PARENT})
    assert r.status_code == 200 and r.headers["traceparent"] == PARENT
    bad = client.post("/v1/predict", data=b"junk", content_type="image/png", headers={"traceparent": PARENT})
    assert bad.status_code == 400 and bad.headers["traceparent"] == PARENT  # errors too
    plain = client.get("/healthz")
    assert "traceparent" not in plain.headers
    lines = access_lines()
    assert [line.get("trace_id") for line in lines] == [TRACE, TRACE, None]


def test_tracing_is_off_without_otel_variables(settings, monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    app = create_app(settings, poll=False)
    assert "tracer_provider" not in app.extensions
    assert all(f.__module__ != "service.tracing" for f in app.before_request_funcs[None])


class _Collector(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver: keeps every export request's body."""

    bodies: list[bytes] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args):
        pass


SERVE_AND_FLUSH = """
import sys
from service import create_app
from service.settings import Settings
from conftest import DIGIT_PNG, publish_constant
import pathlib, tempfile
root = pathlib.Path(tempfile.mkdtemp()) / "artifacts"
publish_constant(root, hot=3)
app = create_app(Settings(artifacts_dir=root, access_log=False), poll=False)
r = app.test_client().post("/v1/predict", data=DIGIT_PNG, content_type="image/png",
                           headers={"traceparent": sys.argv[1]})
print(r.headers.get("traceparent"))
app.extensions["tracer_provider"].force_flush()
"""


def test_spans_are_exported_over_otlp_when_configured(tmp_path):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    server = http.server.HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO}:{REPO / 'tests'}",
               "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_port}",
               "OTEL_SERVICE_NAME": "mnist-test"}
        out = subprocess.run([sys.executable, "-c", SERVE_AND_FLUSH, PARENT], capture_output=True, text=True,
                             env=env, cwd=REPO, timeout=60)
        assert out.returncode == 0, out.stderr
    finally:
        server.shutdown()
    returned = out.stdout.strip().splitlines()[-1]
    assert returned.startswith(f"00-{TRACE}-") and returned != PARENT  # this server's span, same trace
    spans = []
    for body in _Collector.bodies:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            for scope in resource_spans.scope_spans:
                spans += scope.spans
    (span,) = [s for s in spans if s.name == "v1.predict"]
    assert span.trace_id.hex() == TRACE and span.parent_span_id.hex() == PARENT[36:52]
    assert span.span_id.hex() == returned[36:52]
    attributes = {a.key: a.value for a in span.attributes}
    assert attributes["http.response.status_code"].int_value == 200
    assert attributes["mnist.model_version"].string_value == "1"
