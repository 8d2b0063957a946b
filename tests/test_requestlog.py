"""The JSON access log and the settings' validation."""

import io
import json
import logging

import pytest

from service import create_app
from service.logs import JsonFormatter
from service.settings import SettingsError, load_settings

from conftest import derive


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
    png = open("tests/resources/mnist_test_0_label7.png", "rb").read()
    client.post("/v1/predict", data=png, content_type="image/png", headers={"X-Request-ID": "req-42"})
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


@pytest.mark.parametrize("env, names", [
    ({"PORT": "0"}, ["PORT"]), ({"PORT": "http"}, ["PORT"]), ({"WORKERS": "-1"}, ["WORKERS"]),
    ({"POLL_INTERVAL": "0"}, ["POLL_INTERVAL"]), ({"MAX_UPLOAD_BYTES": "ten"}, ["MAX_UPLOAD_BYTES"]),
    ({"LOG_LEVEL": "LOUD"}, ["LOG_LEVEL"]), ({"ADMIN_TOKEN": "abc"}, ["ADMIN_TOKEN"]),
    ({"MODEL_NAME": "../etc"}, ["MODEL_NAME"]), ({"PORT": "-5", "THREADS": "0"}, ["PORT", "THREADS"]),
])
def test_invalid_settings_name_the_variable(monkeypatch, env, names):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    for name in names:
        assert f"  {name}:" in message
    if "ADMIN_TOKEN" in env:
        assert "abc" not in message


def test_settings_defaults_and_env(monkeypatch):
    for key in ("HOST", "PORT", "WORKERS", "ARTIFACTS_DIR", "ADMIN_TOKEN", "POLL_INTERVAL"):
        monkeypatch.delenv(key, raising=False)
    s = load_settings()
    assert (s.host, s.port, s.workers, str(s.artifacts_dir), s.admin_token) == \
        ("0.0.0.0", 8000, 2, "artifacts", None)
    monkeypatch.setenv("PORT", "9001")
    monkeypatch.setenv("ADMIN_TOKEN", "")  # empty means unset
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    s = load_settings()
    assert s.port == 9001 and s.admin_token is None
    assert s.cors_origin_list == ["https://a.example", "https://b.example"]


def test_cors_is_applied_only_to_configured_origins(settings):
    app = create_app(derive(settings, cors_origins="https://ok.example"), poll=False)
    client = app.test_client()
    r = client.get("/v1/models", headers={"Origin": "https://ok.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://ok.example"
    r = client.get("/v1/models", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers
