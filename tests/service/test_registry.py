"""The model registry: which version is served, and what happens when loading fails."""

import os
import time

import pytest

import model.artifact
from model.store import ARTIFACT_FILE, ArtifactStore, VersionNotFound
from model.artifact import InvalidArtifact
from service.registry import ModelRegistry

from conftest import publish_constant, write_constant_artifact, one_hot_probs


@pytest.fixture
def store(tmp_path):
    return ArtifactStore(tmp_path / "artifacts", "mnist")


def corrupt_version(store, version: str) -> None:
    d = store.dir / version
    d.mkdir(parents=True)
    (d / ARTIFACT_FILE).write_bytes(b"not a zip")


def test_follows_newest_valid_version(store):
    registry = ModelRegistry(store)
    assert registry.refresh() is None and registry.current() is None
    publish_constant(store.root, hot=1)
    assert registry.refresh().version == "1"
    publish_constant(store.root, hot=2)
    assert registry.refresh().version == "2"
    corrupt_version(store, "3")
    assert registry.refresh().version == "2"
    assert registry.errors[-1].version == "3"
    assert registry.current().predictor(__import__("numpy").zeros((1, 784), "float32"))[0].argmax() == 2


def test_failed_version_is_retried_only_when_its_file_changes(store, monkeypatch):
    publish_constant(store.root, hot=1)
    corrupt_version(store, "2")
    registry = ModelRegistry(store)
    calls = []
    real = model.artifact.load_artifact

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr("service.registry.load_artifact", counting)
    registry.refresh()
    registry.refresh()
    registry.refresh()
    assert [p.parent.name for p in calls] == ["2", "1"]  # 2 failed once, never retried
    path = store.dir / "2" / ARTIFACT_FILE
    write_constant_artifact(path, one_hot_probs(10, 4))  # the operator fixes the file in place
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert registry.refresh().version == "2"
    assert not registry.errors


def test_unreadable_directory_keeps_serving(store, monkeypatch):
    publish_constant(store.root, hot=1)
    registry = ModelRegistry(store)
    registry.refresh()

    def unreadable(*args):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(store, "versions", unreadable)
    assert registry.refresh().version == "1"
    assert "Permission denied" in registry.poll_error
    monkeypatch.undo()
    registry.refresh()
    assert registry.poll_error is None


def test_deleted_active_version_falls_back(store):
    publish_constant(store.root, hot=1)
    publish_constant(store.root, hot=2)
    registry = ModelRegistry(store)
    assert registry.refresh().version == "2"
    (store.dir / "2" / ARTIFACT_FILE).unlink()
    assert registry.refresh().version == "1"


def test_pinned_version_that_breaks_keeps_the_current_model(store):
    publish_constant(store.root, hot=1)
    publish_constant(store.root, hot=2)
    registry = ModelRegistry(store)
    registry.refresh()
    registry.activate("1")
    path = store.dir / "1" / ARTIFACT_FILE
    path.write_bytes(b"garbage")  # the pinned file is damaged on disk
    assert registry.refresh().version == "1"  # the validated copy in memory keeps serving
    fresh = ModelRegistry(store)  # a restart cannot load the pin: newest valid instead
    assert fresh.refresh().version == "2"
    assert fresh.errors[-1].version == "1"


def test_get_loads_other_versions_without_activating(store):
    for hot in (1, 2, 3):
        publish_constant(store.root, hot=hot)
    registry = ModelRegistry(store)
    registry.refresh()
    assert registry.get("1").version == "1" and registry.current().version == "3"
    assert registry.get("1") is registry.get("1")  # cached
    with pytest.raises(VersionNotFound):
        registry.get("9")
    corrupt_version(store, "4")
    with pytest.raises(InvalidArtifact):
        registry.get("4")


def test_artifact_of_another_model_is_refused(store):
    write_constant_artifact(store.dir / "1" / ARTIFACT_FILE, one_hot_probs(10, 1), name="fashion")
    registry = ModelRegistry(store)
    assert registry.refresh() is None
    assert "named 'fashion'" in registry.errors[-1].message


def test_versions_listing(store):
    publish_constant(store.root, hot=1)
    corrupt_version(store, "2")
    registry = ModelRegistry(store)
    registry.refresh()
    rows = registry.versions()
    assert [(r["version"], r["active"], r["valid"]) for r in rows] == [("2", False, False),
                                                                       ("1", True, True)]
    assert rows[1]["test_accuracy"] == 0.9 and rows[1]["created_at"]


def test_poller_thread_picks_up_new_versions(store):
    publish_constant(store.root, hot=1)
    registry = ModelRegistry(store)
    registry.refresh()
    registry.start(0.05)
    try:
        publish_constant(store.root, hot=2)
        deadline = time.monotonic() + 5
        while registry.current().version != "2" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert registry.current().version == "2"
    finally:
        registry.stop()
