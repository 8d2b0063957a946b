"""Accuracy on handwriting MNIST never saw, as the service would receive it.

``evaluate`` runs a model over every available source of ``handwriting``:

- *native*: each digit image put into MNIST's form by the service's own
  preprocessing (``normalize_digit``) and classified: accuracy and ECE;
- *uploads*: a sample of the digits rendered by ``uploads`` as every kind of
  file a person sends (canvas drawings, scans, phone photos, ...), posted
  through the service's decoding and preprocessing: accuracy per kind.

MNIST test digits go through the same two paths for comparison. The
independent figure is the mean over the sources, so a big source does not
drown a small one. Nothing here trains or selects anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from PIL import Image

from model.calibration import expected_calibration_error
from model.data import scale_pixels
from service.preprocessing import normalize_digit, preprocess

from .handwriting import SOURCES, SourceUnavailable, load_source
from .uploads import KINDS, rerender_set

__all__ = ["ECE_BINS", "evaluate", "summary_lines"]

ECE_BINS = 15
BATCH = 512

Predict = Callable[[np.ndarray], np.ndarray]  # float32 (n, 784) -> probabilities (n, k)


def _classify(predict: Predict, digits: np.ndarray) -> np.ndarray:
    """Return the probabilities for uint8 (n, 28, 28) digits, in batches."""
    out = [predict(scale_pixels(digits[i:i + BATCH])) for i in range(0, len(digits), BATCH)]
    return np.concatenate(out) if out else np.zeros((0, 10), np.float32)


def _scores(probs: np.ndarray, labels: np.ndarray) -> dict:
    right = probs.argmax(axis=1) == labels
    confident_errors = int(((probs.max(axis=1) >= 0.9) & ~right).sum())
    return {"n": int(len(labels)), "accuracy": float(right.mean()) if len(labels) else None,
            "ece": expected_calibration_error(probs.astype(np.float64), labels, ECE_BINS) if len(labels) else None,
            "errors": int((~right).sum()), "confident_errors": confident_errors}


def _native(predict: Predict, images: list[np.ndarray], labels: np.ndarray) -> dict:
    digits = np.stack([normalize_digit(Image.fromarray(img)) for img in images])
    return _scores(_classify(predict, digits), labels)


def _uploads(predict: Predict, images: list[np.ndarray], labels: np.ndarray, per_kind: int, seed: int,
             kinds: Iterable[str]) -> dict:
    """Render ``per_kind`` digits as each kind of upload and classify what the service makes of them."""
    by_kind: dict[str, list] = {k: [[], []] for k in kinds}
    for kind, label, data, _ in rerender_set(images, labels, per_kind, seed=seed, kinds=tuple(by_kind)):
        by_kind[kind][0].append(preprocess(data))
        by_kind[kind][1].append(label)
    results, all_probs, all_labels = {}, [], []
    for kind, (digits, kind_labels) in by_kind.items():
        probs = _classify(predict, np.stack(digits))
        results[kind] = float((probs.argmax(axis=1) == np.array(kind_labels)).mean())
        all_probs.append(probs)
        all_labels += kind_labels
    overall = _scores(np.concatenate(all_probs), np.array(all_labels))
    return {**overall, "by_kind": results}


def evaluate(predict: Predict, mnist_test: tuple[np.ndarray, np.ndarray] | None = None,
             sources: Iterable[str] = tuple(SOURCES), per_kind: int = 20, native_limit: int | None = None,
             kinds: Iterable[str] = KINDS, seed: int = 0,
             progress: Callable[[str], None] | None = None) -> dict:
    """Return accuracy, ECE and per-kind upload accuracy on MNIST test and each source.

    Parameters
    ----------
    predict : the model's ``predict_proba`` on float32 (n, 784) inputs.
    mnist_test : (uint8 images (n, 28, 28), labels), evaluated the same way.
    per_kind : digits of each source rendered as each kind of upload.
    native_limit : classify at most this many digits per source natively
        (a random sample, the same for a seed); None for all.
    progress : called with the name of each part as it starts.
    """
    kinds = tuple(kinds)
    report: dict = {"sources": {}, "unavailable": {}, "per_kind": per_kind, "seed": seed}
    if mnist_test is not None:
        images, labels = mnist_test
        if progress:
            progress("mnist test")
        native = _scores(_classify(predict, images), labels)
        report["mnist_test"] = {**native, "uploads": _uploads(predict, list(images), labels, per_kind, seed,
                                                              kinds)}
    for name in sources:
        if progress:
            progress(name)
        try:
            source = load_source(name, native_limit, seed)
        except SourceUnavailable as exc:
            report["unavailable"][name] = str(exc)
            continue
        native = _native(predict, source.images, source.labels)
        uploads = _uploads(predict, source.images, source.labels, per_kind, seed, kinds)
        report["sources"][name] = {**native, "uploads": uploads}
    done = report["sources"].values()
    if done:
        report["independent"] = {
            "native_accuracy": float(np.mean([s["accuracy"] for s in done])),
            "uploads_accuracy": float(np.mean([s["uploads"]["accuracy"] for s in done])),
            "sources": sorted(report["sources"]),
        }
    return report


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def summary_lines(report: dict) -> list[str]:
    """Return a plain-text table of a report: one line per source."""
    lines = [f"{'source':<14}{'n':>7}{'native':>10}{'ECE':>8}{'uploads':>10}{'conf. errors':>14}"]
    rows = ([("MNIST test", report["mnist_test"])] if "mnist_test" in report else [])
    rows += list(report["sources"].items())
    for name, r in rows:
        lines.append(f"{name:<14}{r['n']:>7}{_pct(r['accuracy']):>10}{_pct(r['ece']):>8}"
                     f"{_pct(r['uploads']['accuracy']):>10}{r['confident_errors']:>8} of {r['errors']}")
    if "independent" in report:
        ind = report["independent"]
        lines.append(f"{'independent':<14}{'':>7}{_pct(ind['native_accuracy']):>10}{'':>8}"
                     f"{_pct(ind['uploads_accuracy']):>10}   (mean over {', '.join(ind['sources'])})")
    for name, why in report["unavailable"].items():
        lines.append(f"{name:<14} unavailable: {why}")
    return lines
