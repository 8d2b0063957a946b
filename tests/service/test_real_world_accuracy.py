"""End-to-end accuracy on MNIST test digits re-rendered as real uploads.

Each rendering kind of ``evaluation.uploads`` (phone photos with EXIF rotation, canvas
drawings in the alpha channel, inverted, palette/16-bit/LA/CMYK, GIF/BMP/
WebP/TIFF, thick and thin pens, noise) is posted to ``/v1/predict`` and
classified by the bundled artifact. Target: >= 98% overall.
"""

import collections

import numpy as np
import pytest
from PIL import Image

from model.data import load_dataset
from service import create_app
from service.settings import Settings

from conftest import BUNDLED_ARTIFACTS, RESOURCES, SHARED_DATASETS
from evaluation.uploads import KINDS, rerender_set

PER_KIND = 60
TARGET = 0.98


@pytest.fixture(scope="module")
def digits():
    """MNIST test digits: the real test split when present, else the bundled samples."""
    if (SHARED_DATASETS / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
        ds = load_dataset("mnist", SHARED_DATASETS, download=False)
        order = np.random.default_rng(2026).permutation(len(ds.test_images))[:PER_KIND * len(KINDS)]
        return ds.test_images[order], ds.test_labels[order]
    paths = sorted(RESOURCES.glob("mnist_test_*_label*.png"))
    images = np.stack([np.asarray(Image.open(p)) for p in paths])
    labels = np.array([int(p.stem.rsplit("label", 1)[1]) for p in paths])
    return images, labels


def test_rerendered_uploads_reach_the_accuracy_target(digits):
    images, labels = digits
    per_kind = min(PER_KIND, len(images))
    app = create_app(Settings(artifacts_dir=BUNDLED_ARTIFACTS, access_log=False), poll=False)
    client = app.test_client()
    right = collections.Counter()
    total = collections.Counter()
    for kind, label, data, mime in rerender_set(images, labels, per_kind, seed=7):
        r = client.post("/v1/predict", data=data, content_type=mime)
        assert r.status_code == 200, (kind, r.json)
        total[kind] += 1
        right[kind] += r.json["predicted_class"] == label
    accuracy = sum(right.values()) / sum(total.values())
    report = ", ".join(f"{k} {right[k] / total[k]:.0%}" for k in KINDS)
    print(f"\nend-to-end accuracy {accuracy:.2%} on {sum(total.values())} uploads: {report}")
    assert set(total) == set(KINDS)
    assert accuracy >= TARGET, report
    assert min(right[k] / total[k] for k in KINDS) >= 0.9, report
