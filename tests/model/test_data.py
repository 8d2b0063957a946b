import gzip

import numpy as np
import pytest

from model import data
from model.data import (DatasetError, IDXError, load_dataset, parse_idx, read_idx, scale_pixels,
                        split_validation, write_idx)

from conftest import make_synthetic_mnist


@pytest.mark.parametrize("name", ["x.idx", "x.idx.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip_raw_and_gzipped(tmp_path, name, dtype):
    array = (np.arange(2 * 3 * 4).reshape(2, 3, 4) % 100).astype(dtype)
    write_idx(tmp_path / name, array)
    back = read_idx(tmp_path / name)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)


def test_idx_header_layout_is_the_standard_one(tmp_path):
    write_idx(tmp_path / "labels.idx", np.array([7, 2, 1], np.uint8))
    raw = (tmp_path / "labels.idx").read_bytes()
    assert raw == bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1])  # magic 0x00000801, count 3


@pytest.mark.parametrize("raw, message", [
    (b"", "too short"),
    (b"\x00\x00\x08", "too short"),
    (b"\x12\x34\x08\x01\x00\x00\x00\x01\x05", "bad IDX magic"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "bad IDX magic"),
    (b"\x00\x00\x08\x00", "bad IDX magic"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00", "truncated header"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", "truncated"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x01\x01\x02", "trailing bytes"),
])
def test_idx_rejects_malformed_files(raw, message):
    with pytest.raises(IDXError, match=message):
        parse_idx(raw)


def test_idx_rejects_truncated_gzip(tmp_path):
    path = tmp_path / "t.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 100]) + bytes(100))[:-12])
    with pytest.raises(IDXError, match="corrupt or truncated gzip"):
        read_idx(path)


def test_scale_pixels_is_the_training_scaling():
    images = np.tile(np.array([[0, 255], [128, 1]], np.uint8), (1, 14, 14))
    X = scale_pixels(images)
    assert X.dtype == np.float32 and X.shape == (1, 784)
    assert X.min() == 0.0 and X.max() == 1.0
    with pytest.raises(ValueError, match="784 pixels"):
        scale_pixels(np.zeros((1, 10, 10), np.uint8))


def test_load_real_mnist_and_verify_checksums(mnist_source):
    directory, real = mnist_source
    if not real:
        pytest.skip("../shared/datasets/mnist is absent; the synthetic copy has other checksums")
    ds = load_dataset("mnist", directory.parent, download=False)
    assert ds.train_images.shape == (60000, 28, 28) and ds.test_images.shape == (10000, 28, 28)
    assert ds.train_labels.dtype == np.int64 and set(np.unique(ds.test_labels)) == set(range(10))
    assert ds.sha256 == data.DATASETS["mnist"].sha256
    assert ds.labels == tuple("0123456789")


def test_lookup_order_and_checksum_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DATA_DIR", raising=False)
    monkeypatch.setattr(data, "SYSTEM_DIRS", ())
    synthetic = make_synthetic_mnist(tmp_path / "data" / "mnist", n_train=50, n_test=20)
    with pytest.raises(DatasetError, match="SHA-256"):
        load_dataset("mnist", tmp_path / "data", download=False)
    ds = load_dataset("mnist", tmp_path / "data", download=False, verify=False)
    assert ds.source == str(synthetic) and len(ds.train_images) == 50
    monkeypatch.setenv("DATA_DIR", str(synthetic))  # the directory itself also works
    assert load_dataset("mnist", download=False, verify=False).source == str(synthetic)


def test_missing_dataset_offline_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setattr(data, "SYSTEM_DIRS", ())
    with pytest.raises(DatasetError) as info:
        load_dataset("fashion-mnist", tmp_path / "nowhere", download=False)
    message = str(info.value)
    for place in ("nowhere", "env", "cache"):
        assert place in message
    assert "--data-dir" in message and "DATA_DIR" in message


def test_download_failure_is_reported_with_mirrors(tmp_path, monkeypatch):
    import requests

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DATA_DIR", raising=False)
    monkeypatch.setattr(data, "SYSTEM_DIRS", ())
    tried = []

    def refuse(url, **kwargs):
        tried.append(url)
        raise requests.ConnectionError("network unreachable")

    monkeypatch.setattr(requests, "get", refuse)
    with pytest.raises(DatasetError, match="Download failed.*network unreachable"):
        load_dataset("mnist", progress=False)
    assert len(tried) == len(data.DATASETS["mnist"].mirrors)  # every mirror was tried


def test_download_verifies_and_caches(tmp_path, monkeypatch):
    import requests

    source = make_synthetic_mnist(tmp_path / "src", n_train=30, n_test=10)
    spec = data.DatasetSpec("mnist", data.DATASETS["mnist"].labels, ("https://a/", "https://b/"), {
        stem: __import__("hashlib").sha256(gzip.decompress((source / f"{stem}.gz").read_bytes())).hexdigest()
        for stem in data.FILES.values()})
    monkeypatch.setitem(data.DATASETS, "mnist", spec)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DATA_DIR", raising=False)
    monkeypatch.setattr(data, "SYSTEM_DIRS", ())

    class Response:
        def __init__(self, url):
            self.body = b"garbage" if url.startswith("https://a/") else (source / url[10:]).read_bytes()
            self.headers = {"Content-Length": str(len(self.body))}

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def raise_for_status(self):
            pass

        def iter_content(self, size):
            yield self.body

    monkeypatch.setattr(requests, "get", lambda url, **kw: Response(url))
    ds = load_dataset("mnist", progress=False)  # mirror a serves garbage, b the real files
    assert len(ds.train_images) == 30
    assert ds.source == str(tmp_path / "cache" / "mnist-service" / "datasets" / "mnist")
    monkeypatch.setattr(requests, "get", None)  # a second load must not download
    assert len(load_dataset("mnist", progress=False).test_images) == 10


def test_validation_split_is_fixed_by_seed_and_disjoint():
    images = np.arange(100).reshape(100, 1)
    labels = np.arange(100)
    a = split_validation(images, labels, 10, seed=3)
    b = split_validation(images, labels, 10, seed=3)
    c = split_validation(images, labels, 10, seed=4)
    np.testing.assert_array_equal(a[3], b[3])
    assert not np.array_equal(a[3], c[3])
    assert len(a[1]) == 90 and set(a[1]).isdisjoint(a[3])
