import os
import threading

import pytest

from model.store import ARTIFACT_FILE, ArtifactStore, VersionNotFound, is_version


def publish_dummy(store, payload=b"x"):
    return store.publish(lambda d: (d / ARTIFACT_FILE).write_bytes(payload))


def test_versions_are_numbered_listed_and_never_overwritten(tmp_path):
    store = ArtifactStore(tmp_path, "mnist")
    assert store.versions() == [] and store.latest() is None
    first = publish_dummy(store, b"1")
    second = publish_dummy(store, b"2")
    assert (first.version, second.version) == ("1", "2")
    assert [e.version for e in store.versions()] == ["1", "2"]
    assert store.latest().version == "2"
    assert (tmp_path / "mnist" / "1" / ARTIFACT_FILE).read_bytes() == b"1"
    (tmp_path / "mnist" / "10").mkdir()  # an incomplete directory is not a version...
    assert store.latest().version == "2"
    assert publish_dummy(store).version == "11"  # ...but its number is never reused


def test_versions_sort_numerically(tmp_path):
    store = ArtifactStore(tmp_path, "m")
    for v in ("2", "10", "9"):
        (tmp_path / "m" / v).mkdir(parents=True)
        (tmp_path / "m" / v / ARTIFACT_FILE).write_bytes(b"")
    assert [e.version for e in store.versions()] == ["2", "9", "10"]


def test_failed_publish_leaves_no_version(tmp_path):
    store = ArtifactStore(tmp_path, "mnist")

    def fail(directory):
        (directory / ARTIFACT_FILE).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        store.publish(fail)
    assert store.versions() == []
    assert os.listdir(tmp_path / "mnist") == []  # the temporary directory is gone too


def test_concurrent_publishers_get_distinct_versions(tmp_path):
    store = ArtifactStore(tmp_path, "mnist")
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(publish_dummy(store, bytes([i]))))
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(int(r.version) for r in results) == list(range(1, 9))
    assert sorted((tmp_path / "mnist" / r.version / ARTIFACT_FILE).read_bytes() for r in results) == \
        [bytes([i]) for i in range(8)]


def test_pin_unpin_and_validation(tmp_path):
    store = ArtifactStore(tmp_path, "mnist")
    publish_dummy(store)
    publish_dummy(store)
    assert store.pinned() is None
    store.pin("1")
    assert store.pinned() == "1"
    assert ArtifactStore(tmp_path, "mnist").pinned() == "1"  # on disk, seen by any process
    store.pin("latest")
    assert store.pinned() is None
    with pytest.raises(VersionNotFound):
        store.pin("3")
    (tmp_path / "mnist" / "pin.json").write_text("{garbage")
    assert store.pinned() is None


@pytest.mark.parametrize("bad", ["0", "01", "-1", "../1", "1/..", "..", "", "1.0", "latest", "a" * 5])
def test_malformed_versions_cannot_escape_the_store(tmp_path, bad):
    assert not is_version(bad)
    with pytest.raises(VersionNotFound):
        ArtifactStore(tmp_path, "mnist").get(bad)


@pytest.mark.parametrize("name", ["", "a/b", ".hidden"])
def test_bad_model_names(tmp_path, name):
    with pytest.raises(ValueError):
        ArtifactStore(tmp_path, name)
