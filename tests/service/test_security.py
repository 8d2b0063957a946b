"""Security properties that cut across modules."""

import ast

import numpy as np
import pytest

from conftest import REPO

PRODUCT = [p for d in ("model", "service") for p in (REPO / d).rglob("*.py")] + [REPO / "train.py"]


def test_no_pickle_in_product_code():
    for path in PRODUCT:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n.split(".")[0] in ("pickle", "dill", "cloudpickle", "joblib") for n in names), path
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "load" \
                    and getattr(node.func.value, "id", "") == "np":
                kwargs = {k.arg: k.value for k in node.keywords}
                assert "allow_pickle" in kwargs and isinstance(kwargs["allow_pickle"], ast.Constant) \
                    and kwargs["allow_pickle"].value is False, f"{path}:{node.lineno} np.load without allow_pickle=False"


def test_object_arrays_in_an_artifact_never_execute(tmp_path):
    """An .npz carrying a pickled object is refused without unpickling it."""
    from model.artifact import InvalidArtifact, load_artifact

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickle ran')",))

    path = tmp_path / "evil.npz"
    with open(path, "wb") as f:
        np.savez(f, W0=np.array([Boom()], dtype=object), metadata=np.array("{}"))
    with pytest.raises(InvalidArtifact):
        load_artifact(path)


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
