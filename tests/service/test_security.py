"""Security properties that cut across modules."""

import numpy as np
import pytest

from model.artifact import InvalidArtifact, load_artifact, read_metadata
from model.store import ARTIFACT_FILE
from service import create_app

from conftest import DIGIT_PNG, one_hot_probs, write_constant_artifact

AUTH = {"Authorization": "Bearer test-admin-token-0123456789"}


class Trap:
    """Unpickling this creates ``marker``: proof that a loader ran pickle."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def write_pickled_artifact(path, member: str, marker):
    """Write a valid artifact at ``path``, then store ``member`` as a pickled ``Trap``."""
    write_constant_artifact(path, one_hot_probs(10))
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays[member] = np.array([Trap(marker)], dtype=object)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


# The metadata is the member every loader reads first; 0.W is read only with the weights.
@pytest.mark.parametrize("member", ["metadata", "0.W"])
def test_a_pickled_member_is_refused_and_never_unpickled(tmp_path, member):
    marker = tmp_path / "pickle-ran"
    path = write_pickled_artifact(tmp_path / "evil" / ARTIFACT_FILE, member, marker)
    with pytest.raises(InvalidArtifact, match="unreadable artifact"):
        load_artifact(path)
    if member == "metadata":
        with pytest.raises(InvalidArtifact, match="unreadable artifact"):
            read_metadata(path)
    else:
        assert read_metadata(path).name == "mnist"  # the weights are left unread
    assert not marker.exists()
    with np.load(path, allow_pickle=True) as npz:  # the trap is armed: a pickling loader runs it
        npz[member]
    assert marker.exists()


@pytest.mark.parametrize("member", ["metadata", "0.W"])
def test_the_service_never_unpickles_a_version(settings, artifacts_dir, tmp_path, member):
    """Startup, the version listing and a pin all refuse a pickled version 2 and keep serving 1."""
    marker = tmp_path / "pickle-ran"
    write_pickled_artifact(artifacts_dir / "mnist" / "2" / ARTIFACT_FILE, member, marker)
    client = create_app(settings, poll=False).test_client()
    r = client.post("/v1/predict", data=DIGIT_PNG, content_type="image/png")
    assert r.status_code == 200 and r.json["model"]["version"] == "1"
    listing = client.get("/v1/models").json
    assert listing["last_load_error"]["version"] == "2"
    assert [(v["version"], v["valid"]) for v in listing["versions"]] == [("2", False), ("1", True)]
    r = client.put("/v1/models/active", json={"version": "2"}, headers=AUTH)
    assert r.status_code == 422 and r.json["code"] == "invalid_artifact"
    assert not marker.exists()


@pytest.mark.parametrize("path", ["/v1/predict", "/v1/models", "/healthz", "/openapi.json", "/nope", "/"])
def test_headers_fit_an_api(client, path):
    r = client.get(path)
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY" and r.headers["Referrer-Policy"] == "no-referrer"
    assert "Server" not in r.headers  # the app names no server; gunicorn's banner: test_hot_swap
    assert "Access-Control-Allow-Origin" not in r.headers


def test_tokens_are_compared_in_constant_time(client, monkeypatch, settings):
    """Every token check goes through hmac.compare_digest (and a wrong token still fails)."""
    import hmac

    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    ok = client.put("/v1/models/active", json={"version": "1"},
                    headers={"Authorization": "Bearer test-admin-token-0123456789"})
    bad = client.put("/v1/models/active", json={"version": "1"},
                     headers={"Authorization": "Bearer test-admin-token-012345678X"})
    assert ok.status_code == 200 and bad.status_code == 401
    assert [a for a, _ in calls] == [b"test-admin-token-0123456789", b"test-admin-token-012345678X"]


def test_wrong_tokens_of_every_length_are_refused(client):
    for token in ["", "x", "test-admin-token-012345678", "test-admin-token-0123456789x",
                  "TEST-ADMIN-TOKEN-0123456789", "test-admin-token-0123456789\x00"]:
        r = client.put("/v1/models/active", json={"version": "1"},
                       headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, token


def test_version_paths_cannot_escape_the_artifacts_directory(client, artifacts_dir):
    for version in ["../1", "..%2F1", "1/../../etc", "/etc/passwd", "1%00", "./1"]:
        r = client.put("/v1/models/active", json={"version": version},
                       headers={"Authorization": "Bearer test-admin-token-0123456789"})
        assert r.status_code in (400, 404), version
        r = client.get(f"/v2/models/mnist/versions/{version}")
        assert r.status_code in (400, 404), version
