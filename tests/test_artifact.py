
import json
import pickle
import zipfile

import numpy as np
import pytest

from model.artifact import (InvalidArtifact, build_metadata, load_artifact, read_metadata,
                            save_artifact, weights_sha256)

from conftest import make_tiny_net, write_tiny_artifact


def rewrite(src, dst, change):
    """Copy an artifact, passing its members (name -> array) through ``change``."""
    with np.load(src, allow_pickle=False) as npz:
        members = {k: npz[k] for k in npz.files}
    change(members)
    with open(dst, "wb") as f:
        np.savez(f, **members)
    return dst


def edit_metadata(edit):
    def change(members):
        meta = json.loads(str(members["metadata"]))
        edit(meta)
        members["metadata"] = np.array(json.dumps(meta))
    return change


def test_round_trip_gives_identical_predictions(tmp_path):
    net = make_tiny_net(seed=5, hidden=(32, 16))
    net.temperature = 1.7
    meta = build_metadata(net, name="mnist", labels=list("0123456789"), dataset={"name": "mnist"})
    path = save_artifact(tmp_path / "m.npz", net, meta)
    loaded = load_artifact(path)
    X = np.random.default_rng(0).random((50, 784), dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))
    assert loaded.metadata == meta
    assert loaded.net.temperature == 1.7 and loaded.labels == list("0123456789")
    assert read_metadata(path) == meta


def test_artifact_contains_only_plain_arrays(tiny_artifact):
    with zipfile.ZipFile(tiny_artifact) as zf:
        assert sorted(zf.namelist()) == ["W0.npy", "W1.npy", "b0.npy", "b1.npy", "metadata.npy"]
    with np.load(tiny_artifact, allow_pickle=False) as npz:
        assert npz["metadata"].dtype.kind == "U"
        assert all(npz[k].dtype == np.float32 for k in ("W0", "b0", "W1", "b1"))


def test_save_refuses_metadata_of_another_network(tmp_path):
    net = make_tiny_net(seed=1)
    meta = build_metadata(make_tiny_net(seed=2), name="m", labels=list("0123456789"),
                          dataset={"name": "mnist"})
    with pytest.raises(ValueError, match="sha256"):
        save_artifact(tmp_path / "m.npz", net, meta)


def _nan_weight(m):
    m["W0"] = m["W0"].copy()
    m["W0"][0, 0] = np.nan


def _tamper_weight(m):
    m["W1"] = m["W1"] + np.float32(1e-3)


def _pickled_member(m):
    m["W0"] = np.array([{"evil": 1}], dtype=object)


CASES = {
    "tampered weights": (_tamper_weight, "SHA-256"),
    "NaN weights": (_nan_weight, "NaN"),
    "wrong shape": (lambda m: m.update(W1=m["W1"][:, :5].copy(), b1=m["b1"][:5].copy()), "shape"),
    "wrong dtype": (lambda m: m.update(W0=m["W0"].astype(np.float64)), "dtype"),
    "missing array": (lambda m: m.pop("b1"), "missing"),
    "extra array": (lambda m: m.update(extra=np.zeros(3, np.float32)), "unexpected"),
    "no metadata": (lambda m: m.pop("metadata"), "no metadata"),
    "metadata not text": (lambda m: m.update(metadata=np.zeros(3)), "0-d unicode"),
    "metadata not json": (lambda m: m.update(metadata=np.array("{not json")), "not valid JSON"),
    "pickled member": (_pickled_member, "unreadable"),
    "future format": (edit_metadata(lambda d: d.update(format_version=2)), "format version 2"),
    "labels vs outputs": (edit_metadata(lambda d: d.update(labels=["a", "b", "c"])), "3 labels for 10"),
    "architecture vs arrays": (edit_metadata(lambda d: d["architecture"].update(sizes=[784, 10])), "unexpected"),
    "input spec": (edit_metadata(lambda d: d["input"].update(shape=[32, 32])), "input shape"),
    "pixel scaling": (edit_metadata(lambda d: d["input"].update(scale=1.0)), "pixel scaling"),
    "temperature": (edit_metadata(lambda d: d.update(temperature=-1)), "temperature"),
    "unknown field": (edit_metadata(lambda d: d.update(surprise=1)), "surprise"),
    "bad name": (edit_metadata(lambda d: d.update(name="../../etc")), "name"),
    "accuracy out of range": (edit_metadata(lambda d: d["metrics"].update(test_accuracy=3)), "test_accuracy"),
    "no created_at": (edit_metadata(lambda d: d.pop("created_at")), "created_at"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_artifacts_are_rejected_clearly(tiny_artifact, tmp_path, case):
    change, message = CASES[case]
    bad = rewrite(tiny_artifact, tmp_path / "bad.npz", change)
    with pytest.raises(InvalidArtifact, match=message):
        load_artifact(bad)


def test_truncated_and_garbage_files_are_rejected(tiny_artifact, tmp_path):
    data = tiny_artifact.read_bytes()
    for cut in (0, 10, len(data) // 2, len(data) - 5):
        (tmp_path / "cut.npz").write_bytes(data[:cut])
        with pytest.raises(InvalidArtifact):
            load_artifact(tmp_path / "cut.npz")
    (tmp_path / "pickle.npz").write_bytes(pickle.dumps({"W0": 1}))
    with pytest.raises(InvalidArtifact, match="unreadable"):
        load_artifact(tmp_path / "pickle.npz")
    with pytest.raises(InvalidArtifact, match="no such file"):
        load_artifact(tmp_path / "absent.npz")


def test_zip_bomb_member_is_refused_before_reading(tmp_path, monkeypatch):
    import model.artifact as artifact

    path = write_tiny_artifact(tmp_path / "m.npz")
    monkeypatch.setattr(artifact, "MAX_MEMBER_BYTES", 1000)
    with pytest.raises(InvalidArtifact, match="declares"):
        load_artifact(path)


def test_weights_hash_covers_shapes():
    a = np.zeros((2, 3), np.float32)
    assert weights_sha256([a]) != weights_sha256([a.reshape(3, 2)])
    assert weights_sha256([a]) == weights_sha256([a.copy()])


def test_pickle_free_load(tiny_artifact, monkeypatch):
    """Loading never touches pickle, even indirectly."""
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("pickle.loads called"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("pickle.load called"))
    load_artifact(tiny_artifact)

