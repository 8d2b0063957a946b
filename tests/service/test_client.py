"""The requests-based client and its CLI, against a real gunicorn."""

import pytest

from service.client import Client, ClientError, Unreachable, main

from conftest import DIGIT_PNG_PATH, RESOURCES, publish_constant
from live import free_port, live_server

TOKEN = "client-admin-token-0123456789"


pytestmark = pytest.mark.system  # the client against a live gunicorn


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("client")
    publish_constant(root / "artifacts", hot=3)
    publish_constant(root / "artifacts", hot=5)
    with live_server({"ARTIFACTS_DIR": root / "artifacts", "ADMIN_TOKEN": TOKEN}, root) as s:
        yield s


def test_client_predicts_lists_and_pins(server):
    client = Client(server.url, token=TOKEN)
    assert client.ready()
    assert client.predict(DIGIT_PNG_PATH)["label"] == "5"
    assert client.predict(DIGIT_PNG_PATH.read_bytes())["model"]["version"] == "2"
    batch = client.predict_batch([DIGIT_PNG_PATH, RESOURCES / "not_an_image.txt", DIGIT_PNG_PATH])
    assert [p.get("label") for p in batch] == ["5", None, "5"]
    assert batch[1]["code"] == "invalid_image"
    assert [v["version"] for v in client.models()["versions"]] == ["2", "1"]
    assert client.pin("1") == {"name": "mnist", "version": "1", "pinned": "1"}
    assert client.pin("latest")["version"] == "2"


def test_client_errors_carry_the_server_message(server):
    with pytest.raises(ClientError) as info:
        Client(server.url).predict(RESOURCES / "not_an_image.txt")
    assert info.value.status == 400 and info.value.code == "invalid_image"
    assert "not a supported image" in info.value.message
    with pytest.raises(ClientError) as info:
        Client(server.url, token="wrong-token-0123456789").pin("1")
    assert info.value.status == 401
    with pytest.raises(ClientError, match="cannot read"):
        Client(server.url).predict(RESOURCES / "missing.png")


def test_unreachable_server_is_a_clear_error():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(Unreachable, match="cannot reach .* connection refused"):
        Client(url, timeout=2).predict(DIGIT_PNG_PATH)


def test_cli(server, capsys, monkeypatch):
    assert main(["--url", server.url, "predict", str(DIGIT_PNG_PATH)]) == 0
    out = capsys.readouterr().out
    assert "mnist_test_0_label7.png" in out and " 5 " in out and "v2" in out
    assert main(["--url", server.url, "predict", str(DIGIT_PNG_PATH), str(RESOURCES / "not_an_image.txt")]) == 1
    assert "error (400 invalid_image)" in capsys.readouterr().out
    assert main(["--url", server.url, "models"]) == 0
    out = capsys.readouterr().out
    assert "serving version 2" in out and "following the newest" in out
    monkeypatch.delenv("ADMIN_TOKEN", raising=False)
    assert main(["--url", server.url, "pin", "1"]) == 2
    assert "admin token" in capsys.readouterr().err
    monkeypatch.setenv("ADMIN_TOKEN", TOKEN)
    assert main(["--url", server.url, "pin", "1"]) == 0
    assert "serving version 1 (pinned)" in capsys.readouterr().out
    assert main(["--url", server.url, "pin", "9"]) == 1
    assert "[404 model_not_found]" in capsys.readouterr().err
    assert main(["--url", server.url, "pin", "latest"]) == 0
    assert main(["--url", f"http://127.0.0.1:{free_port()}", "models"]) == 3
    assert "cannot reach" in capsys.readouterr().err
