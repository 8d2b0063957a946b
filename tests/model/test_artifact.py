
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
    np.testing.assert_array_equal(loaded.net.infer(X)[0], net.infer(X)[0])
    assert loaded.metadata == meta
    assert loaded.net.temperature == 1.7 and loaded.labels == list("0123456789")
    assert read_metadata(path) == meta


def test_artifact_contains_only_plain_arrays(tiny_artifact):
    with zipfile.ZipFile(tiny_artifact) as zf:
        assert sorted(zf.namelist()) == ["0.W.npy", "0.b.npy", "2.W.npy", "2.b.npy", "metadata.npy"]
    with np.load(tiny_artifact, allow_pickle=False) as npz:
        assert npz["metadata"].dtype.kind == "U"
        assert all(npz[k].dtype == np.float32 for k in ("0.W", "0.b", "2.W", "2.b"))


def test_save_refuses_metadata_of_another_network(tmp_path):
    net = make_tiny_net(seed=1)
    meta = build_metadata(make_tiny_net(seed=2), name="m", labels=list("0123456789"),
                          dataset={"name": "mnist"})
    with pytest.raises(ValueError, match="sha256"):
        save_artifact(tmp_path / "m.npz", net, meta)


def _nan_weight(m):
    m["0.W"] = m["0.W"].copy()
    m["0.W"][0, 0] = np.nan


def _tamper_weight(m):
    m["2.W"] = m["2.W"] + np.float32(1e-3)


def _pickled_member(m):
    m["0.W"] = np.array([{"evil": 1}], dtype=object)


CASES = {
    "tampered weights": (_tamper_weight, "SHA-256"),
    "NaN weights": (_nan_weight, "NaN"),
    "wrong shape": (lambda m: m.update({"2.W": m["2.W"][:, :5].copy(), "2.b": m["2.b"][:5].copy()}), "shape"),
    "wrong dtype": (lambda m: m.update({"0.W": m["0.W"].astype(np.float64)}), "dtype"),
    "missing array": (lambda m: m.pop("2.b"), "missing"),
    "extra array": (lambda m: m.update(extra=np.zeros(3, np.float32)), "unexpected"),
    "no metadata": (lambda m: m.pop("metadata"), "no metadata"),
    "metadata not text": (lambda m: m.update(metadata=np.zeros(3)), "0-d unicode"),
    "metadata not json": (lambda m: m.update(metadata=np.array("{not json")), "not valid JSON"),
    "pickled member": (_pickled_member, "unreadable"),
    "future format": (edit_metadata(lambda d: d.update(format_version=3)), "format version 3"),
    "old format name, new version": (edit_metadata(lambda d: d.update(format="mnist-mlp-npz")), "version 1"),
    "labels vs outputs": (edit_metadata(lambda d: d.update(labels=["a", "b", "c"])), "3 labels for 10"),
    "architecture vs arrays": (edit_metadata(lambda d: d["architecture"].update(
        layers=[{"kind": "dense", "units": 10}])), "unexpected"),
    "unknown layer kind": (edit_metadata(lambda d: d["architecture"]["layers"].append({"kind": "warp"})), "warp"),
    "layer setting out of range": (edit_metadata(lambda d: d["architecture"]["layers"][0].update(units=0)),
                                   "units"),
    "unservable input": (edit_metadata(lambda d: d["architecture"].update(input_shape=[3, 28, 28])),
                         "input shape"),
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



# -- convolutional artifacts ------------------------------------------------------


def small_cnn_artifact(tmp_path, seed=0):
    from model.network import Network, cnn_layers

    rng = np.random.default_rng(seed)
    net = Network((1, 28, 28), cnn_layers(10, filters=(4, 8), kernels=(5, 3), dense=16), rng)
    for _ in range(2):  # non-trivial running statistics
        net.forward(rng.random((8, 1, 28, 28), dtype=np.float32), training=True)
    net.temperature = 1.2
    meta = build_metadata(net, name="mnist", labels=list("0123456789"), dataset={"name": "mnist"})
    return net, save_artifact(tmp_path / "cnn.npz", net, meta)


def test_cnn_round_trip_gives_identical_predictions(tmp_path):
    net, path = small_cnn_artifact(tmp_path)
    loaded = load_artifact(path)
    X = np.random.default_rng(1).random((20, 784), dtype=np.float32)
    np.testing.assert_array_equal(loaded.net.infer(X)[0], net.infer(X)[0])
    assert loaded.metadata.architecture.kind == "cnn"
    assert loaded.net.spec == net.spec
    with np.load(path, allow_pickle=False) as npz:
        assert {"0.W", "2.gamma", "2.beta", "2.running_mean", "2.running_var"} <= set(npz.files)


def _negative_variance(m):
    m["2.running_var"] = -np.abs(m["2.running_var"])


CNN_CASES = {
    "tampered kernel": (lambda m: m.update({"0.W": m["0.W"] * np.float32(1.01)}), "SHA-256"),
    "kernel of another shape": (lambda m: m.update({"0.W": m["0.W"][:, :, :3, :3].copy()}), "shape"),
    "negative running variance": (_negative_variance, "negative variances"),
    "missing running statistics": (lambda m: m.pop("2.running_mean"), "missing"),
    "kernel too large": (edit_metadata(lambda d: d["architecture"]["layers"][0].update(kernel=31)), "kernel"),
    "pool size": (edit_metadata(lambda d: d["architecture"]["layers"][1].update(size=3)), "size"),
    "dropout of one": (edit_metadata(lambda d: d["architecture"]["layers"][-2].update(p=1.0)), "p"),
    "convolution on flat input": (edit_metadata(lambda d: d["architecture"].update(input_shape=[784])),
                                  "architecture"),
}


@pytest.mark.parametrize("case", sorted(CNN_CASES))
def test_invalid_cnn_artifacts_are_rejected_clearly(tmp_path, case):
    _, path = small_cnn_artifact(tmp_path)
    change, message = CNN_CASES[case]
    bad = rewrite(path, tmp_path / "bad.npz", change)
    with pytest.raises(InvalidArtifact, match=message):
        load_artifact(bad)


# -- version 1 (MLP) artifacts ----------------------------------------------------


def write_version_1(path, net, temperature=1.0):
    """Write ``net`` (dense, relu, dense) as the original format: W0, b0, W1, b1 + sizes."""
    dense = [layer for layer in net.layers if layer.kind == "dense"]
    arrays = {f"{p}{i}": a for i, layer in enumerate(dense) for p, a in zip("Wb", layer.params)}
    sizes = [dense[0].params[0].shape[0]] + [layer.params[0].shape[1] for layer in dense]
    meta = {"format": "mnist-mlp-npz", "format_version": 1, "name": "mnist",
            "created_at": "2026-11-24T04:56:09+00:00", "dataset": {"name": "mnist"},
            "labels": list("0123456789"), "architecture": {"sizes": sizes, "activation": "relu"},
            "temperature": temperature, "weights_sha256": weights_sha256(list(arrays.values()))}
    with open(path, "wb") as f:
        np.savez(f, metadata=np.array(json.dumps(meta)), **arrays)
    return path


def test_version_1_artifacts_still_load_and_serve(tmp_path):
    net = make_tiny_net(seed=3, hidden=(12,))
    path = write_version_1(tmp_path / "v1.npz", net, temperature=1.5)
    loaded = load_artifact(path)
    assert loaded.metadata.format_version == 1 and loaded.metadata.legacy
    assert loaded.net.spec == net.spec and loaded.net.temperature == 1.5
    X = np.random.default_rng(2).random((6, 784), dtype=np.float32)
    net.temperature = 1.5
    np.testing.assert_allclose(loaded.net.infer(X)[0], net.infer(X)[0], rtol=1e-6)
    with pytest.raises(InvalidArtifact, match="SHA-256"):
        load_artifact(rewrite(path, tmp_path / "bad.npz", lambda m: m.update(W1=m["W1"] + np.float32(1))))
    with pytest.raises(InvalidArtifact, match="version-1 architecture"):
        load_artifact(rewrite(path, tmp_path / "bad2.npz",
                              edit_metadata(lambda d: d["architecture"].update(sizes=[784, -3, 10]))))


def test_the_bundled_version_1_artifact_loads():
    from conftest import BUNDLED_ARTIFACTS

    loaded = load_artifact(BUNDLED_ARTIFACTS / "mnist" / "1" / "model.npz")
    assert loaded.metadata.legacy and loaded.net.describe() == "dense800 relu dense10"
