"""Settings: every variable validated at start, with a message naming it."""

import pytest

from service.settings import SettingsError, load_settings


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


def test_gevent_needs_its_package_and_the_control_socket_is_opt_in(monkeypatch):
    import importlib.util

    monkeypatch.setenv("WORKER_CLASS", "gevent")
    assert load_settings().worker_class == "gevent"  # installed here (with the test extras)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "gevent" else real(name))
    with pytest.raises(SettingsError, match="WORKER_CLASS: .*pip install gevent"):
        load_settings()
    monkeypatch.delenv("WORKER_CLASS")
    assert load_settings().control_socket is None
    monkeypatch.setenv("CONTROL_SOCKET", "")
    assert load_settings().control_socket is None
    monkeypatch.setenv("CONTROL_SOCKET", "/run/mnist.ctl")
    assert str(load_settings().control_socket) == "/run/mnist.ctl"


def test_sync_means_sync_threads_are_refused_with_a_clear_message():
    """gunicorn silently runs its gthread worker when a sync worker is given threads."""
    with pytest.raises(SettingsError, match=r"WORKER_CLASS=sync .* THREADS=2: gunicorn would silently run") as refused:
        load_settings(worker_class="sync", threads=2, admin_token="a-secret-token-of-some-length")
    assert "a-secret-token" not in str(refused.value)  # a rule across variables shows none of their values
    assert load_settings(worker_class="sync").threads == 1 and load_settings().threads == 1
    assert load_settings(worker_class="gthread", threads=4).threads == 4
