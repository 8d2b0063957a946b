"""A read-only artifacts directory (a KServe /mnt/models, a read-only volume) is a supported mode:
the newest version is served, polling changes nothing, every write answers 409 ``read_only``."""

from __future__ import annotations

import io
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from service import create_app

from conftest import DIGIT_PNG, derive, publish_constant

TOKEN = "test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@contextmanager
def read_only(directory: Path):
    """Make ``directory`` truly read-only for this process: a read-only bind mount as root
    (root ignores permissions), else permissions."""
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", str(directory), str(directory)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(directory)], check=True)
            yield
        finally:
            subprocess.run(["umount", str(directory)], check=True)
    else:
        modes = {p: p.stat().st_mode for p in [directory, *directory.rglob("*")] if p.is_dir()}
        for p in modes:
            p.chmod(0o555)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)


def test_a_read_only_artifacts_directory_serves_and_refuses_every_write(settings, artifacts_dir, tmp_path):
    publish_constant(artifacts_dir, hot=5)  # version 2: answers 5
    feedback = tmp_path / "feedback"
    feedback.mkdir()
    app = create_app(derive(settings, feedback_dir=str(feedback)), poll=False)
    client = app.test_client()
    with read_only(artifacts_dir), read_only(feedback):
        with pytest.raises(OSError):
            (artifacts_dir / "probe").touch()
        answer = client.post("/v1/predict", data=DIGIT_PNG, content_type="image/png")
        assert answer.status_code == 200 and answer.headers["X-Model-Version"] == "2"
        for path, body in [("/v1/models/active", {"version": "1"}), ("/v1/models/active", {"version": "latest"}),
                           ("/v1/models/shadow", {"version": "1"}),
                           ("/v1/models/canary", {"version": "1", "percent": 10})]:
            r = client.put(path, json=body, headers=AUTH)
            assert r.status_code == 409 and r.json["code"] == "read_only", (path, r.status_code, r.json)
            assert "read-only" in r.json["error"] and not r.json["error"].startswith("[Errno")
        r = client.post("/v1/feedback", data={"image": (io.BytesIO(DIGIT_PNG), "d.png"), "label": "3"},
                        content_type="multipart/form-data")
        assert r.status_code == 409 and r.json["code"] == "read_only", r.json
        # Still serving the newest version, and nothing was written.
        assert client.post("/v1/predict", data=DIGIT_PNG, content_type="image/png").headers["X-Model-Version"] == "2"
        assert client.get("/readyz").status_code == 200
    assert sorted(p.name for p in (artifacts_dir / "mnist").iterdir()) == ["1", "2"]
    assert list(feedback.iterdir()) == []

