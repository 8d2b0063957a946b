"""Shared fixtures: real MNIST when ../shared/datasets is present, synthetic IDX otherwise."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.artifact import build_metadata, save_artifact
from model.data import Dataset, load_dataset, write_idx
from model.network import Network, mlp_layers
from model.store import ARTIFACT_FILE

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"
BUNDLED_ARTIFACTS = REPO / "artifacts"
RESOURCES = REPO / "tests" / "resources"
DIGIT_PNG_PATH = RESOURCES / "mnist_test_0_label7.png"  # an MNIST test 7, as a PNG
DIGIT_PNG = DIGIT_PNG_PATH.read_bytes()
SHEETS = REPO / "tests" / "out" / "contact-sheets"  # pictures the tests draw for people to look at


def make_synthetic_mnist(directory: Path, n_train: int = 2000, n_test: int = 500, seed: int = 0) -> Path:
    """Write four gzipped IDX files of a learnable 10-class problem; return the directory.

    Each class is a random 28x28 template; examples are the template with
    noise and a random one-pixel shift, so a small MLP separates them easily.
    """
    rng = np.random.default_rng(seed)
    templates = (rng.random((10, 28, 28)) < 0.15) * 200.0
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = templates[labels] + rng.normal(0, 25, (n, 28, 28))
        shifts = rng.integers(-1, 2, (n, 2))
        for i, (dy, dx) in enumerate(shifts):
            images[i] = np.roll(images[i], (dy, dx), axis=(0, 1))
        write_idx(directory / f"{split}-images-idx3-ubyte.gz", np.clip(images, 0, 255).astype(np.uint8))
        write_idx(directory / f"{split}-labels-idx1-ubyte.gz", labels)
    return directory


@pytest.fixture(scope="session")
def mnist_source(tmp_path_factory) -> tuple[Path, bool]:
    """Return (directory, is_real): the shared MNIST copy, or synthetic files."""
    real = SHARED_DATASETS / "mnist"
    if (real / "train-images-idx3-ubyte.gz").is_file():
        return real, True
    return make_synthetic_mnist(tmp_path_factory.mktemp("synthetic-mnist")), False


@pytest.fixture(scope="session")
def mnist_dataset(mnist_source) -> Dataset:
    """MNIST from ``mnist_source`` (the shared copy, or the synthetic stand-in), loaded once."""
    directory, real = mnist_source
    return load_dataset("mnist", directory, download=False, verify=real, progress=False)


@pytest.fixture(scope="session")
def mnist_test(mnist_dataset) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's test images (uint8 (n, 28, 28)) and labels."""
    return mnist_dataset.test_images, mnist_dataset.test_labels


def make_tiny_net(seed: int = 0, hidden: tuple[int, ...] = (16,), k: int = 10) -> Network:
    return Network((784,), mlp_layers(hidden, k), np.random.default_rng(seed))


def write_tiny_artifact(path: Path, seed: int = 0, name: str = "mnist", labels=None,
                        temperature: float = 1.0, **metrics) -> Path:
    """Save a small random network as an artifact at ``path`` (a .npz file)."""
    net = make_tiny_net(seed)
    net.temperature = temperature
    labels = labels or [str(d) for d in range(10)]
    meta = build_metadata(net, name=name, labels=labels,
                          dataset={"name": "mnist", "test_size": 10000},
                          metrics={"test_accuracy": 0.5, **metrics})
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_artifact(path, net, meta)


@pytest.fixture
def tiny_artifact(tmp_path) -> Path:
    return write_tiny_artifact(tmp_path / "artifact" / ARTIFACT_FILE)


# -- service fixtures -------------------------------------------------------------


def write_constant_artifact(path: Path, probs, name: str = "mnist", test_accuracy: float = 0.9,
                            ood: dict | None = None) -> Path:
    """Save a network whose output is ``probs`` whatever the input (a known fake).

    All weights are zero and the output bias is log(probs), so softmax gives
    back ``probs`` exactly (up to float32 rounding) for every image. ``ood``:
    the artifact's digit-score block (``model.artifact.OutOfDistribution``).
    """
    probs = np.asarray(probs, dtype=np.float64)
    net = Network((784,), mlp_layers([4], len(probs)))
    net.params[-1][...] = np.log(probs).astype(np.float32)
    meta = build_metadata(net, name=name, labels=[str(i) for i in range(len(probs))],
                          dataset={"name": "mnist", "test_size": 10000},
                          metrics={"test_accuracy": test_accuracy}, ood=ood)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_artifact(path, net, meta)


def one_hot_probs(k: int, hot: int = 3, p: float = 0.91) -> list[float]:
    rest = (1 - p) / (k - 1)
    return [p if i == hot else rest for i in range(k)]


def publish_constant(artifacts: Path, hot: int, name: str = "mnist", ood: dict | None = None) -> str:
    """Publish a constant model that predicts class ``hot``; return its version."""
    from model.store import ArtifactStore

    store = ArtifactStore(artifacts, name)
    entry = store.publish(lambda d: write_constant_artifact(d / ARTIFACT_FILE, one_hot_probs(10, hot),
                                                            name=name, ood=ood))
    return entry.version


@pytest.fixture
def artifacts_dir(tmp_path) -> Path:
    """An artifacts directory with version 1 of a constant model predicting 3."""
    root = tmp_path / "artifacts"
    publish_constant(root, hot=3)
    return root


@pytest.fixture
def settings(artifacts_dir, tmp_path):
    """Settings for the test's artifacts; feedback goes to the test's directory, not the checkout."""
    from service.settings import Settings

    return Settings(artifacts_dir=artifacts_dir, admin_token="test-admin-token-0123456789",
                    access_log=False, feedback_dir=tmp_path / "feedback")


def derive(settings, **changes):
    """Return a validated copy of ``settings`` with ``changes``."""
    return type(settings)(**{**dict(settings), **changes})


@pytest.fixture
def app(settings):
    from service import create_app

    return create_app(settings, poll=False)


@pytest.fixture
def client(app):
    return app.test_client()


@functools.lru_cache(maxsize=1)
def bundled_model():
    """Return the newest bundled artifact (the service's default model), loaded."""
    from model.artifact import load_artifact
    from model.store import ArtifactStore

    return load_artifact(ArtifactStore(BUNDLED_ARTIFACTS, "mnist").latest().path)


def write_sheet(name: str, images: np.ndarray, labels: np.ndarray, per_row: int = 12) -> None:
    """Write images as a grid, one row per label (as many as there are, up to ``per_row``)."""
    rows = []
    for label in sorted(set(labels.tolist())):
        row = [np.pad(np.clip(im, 0, 255).astype(np.uint8), 1, constant_values=70)
               for im in images[labels == label][:per_row]]
        row += [np.full((30, 30), 70, np.uint8)] * (per_row - len(row))
        rows.append(np.concatenate(row, axis=1))
    SHEETS.mkdir(parents=True, exist_ok=True)
    sheet = np.concatenate(rows, axis=0)
    Image.fromarray(sheet).resize((sheet.shape[1] * 2, sheet.shape[0] * 2), Image.NEAREST).save(
        SHEETS / f"{name.replace('/', '-')}.png")


def pytest_collection_modifyitems(config, items):
    """Mark every test under tests/system/ as ``system`` (live gunicorn, browser, wrk)."""
    system = REPO / "tests" / "system"
    for item in items:
        if system in Path(item.fspath).parents:
            item.add_marker(pytest.mark.system)
