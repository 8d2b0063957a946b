"""Accuracy on handwriting MNIST never saw, as the service would receive it.

``evaluate`` runs a model over every available source of ``handwriting``:

- *native*: each digit image put into MNIST's form by the service's own
  preprocessing (``normalize_digit``) and classified: accuracy and ECE;
- *uploads*: a sample of the digits rendered by ``uploads`` as every kind of
  file a person sends (canvas drawings, scans, phone photos, ...), posted
  through the service's decoding and preprocessing: accuracy per kind;
- *scanned*: each digit as old scanning systems stored digits (``scans``:
  stretched to fill a cell, one bit per pixel, 12-16 pixels), put into
  MNIST's form and classified: accuracy per style.

MNIST test digits go through the same paths for comparison. The
independent figure is the mean over the sources, so a big source does not
drown a small one. Nothing here trains or selects anything (``selection``
uses the per-source figures, leaving one source out at a time).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from PIL import Image

from model.calibration import expected_calibration_error
from model.data import scale_pixels
from imaging.preprocessing import normalize_digit, preprocess

from .handwriting import SOURCES, SourceUnavailable, load_source
from .scans import STYLES, restyle
from .uploads import KINDS, rerender_set

__all__ = ["ECE_BINS", "evaluate", "kind_table", "scanned", "scanned_table", "table"]

ECE_BINS = 15
BATCH = 512
MNIST_SCANNED = 2000  # MNIST test digits restyled as scanners stored them (a sample: the figure is a reference)

# float32 (n, 784) -> (probabilities (n, k), digit scores (n,)): a ``model.inference.Predictor``
Predict = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def _classify(predict: Predict, digits: np.ndarray) -> np.ndarray:
    """Return the probabilities for uint8 (n, 28, 28) digits, in batches."""
    out = [predict(scale_pixels(digits[i:i + BATCH]))[0] for i in range(0, len(digits), BATCH)]
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


def scanned(predict: Predict, images: list[np.ndarray], labels: np.ndarray,
            styles: Iterable[str] = tuple(STYLES), drawn: float | None = None) -> dict[str, float]:
    """Return the accuracy on ``images`` restyled as each scanning style stores digits
    (``scans``), each put into MNIST's form and classified; ``drawn``, when given, is the
    accuracy on these images as they are (the "drawn" style), already measured."""
    out = {}
    for style in styles:
        if style == "drawn" and drawn is not None:
            out[style] = drawn
            continue
        digits = np.stack([normalize_digit(Image.fromarray(restyle(np.asarray(img), style))) for img in images])
        out[style] = float((_classify(predict, digits).argmax(axis=1) == labels).mean())
    return out


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
             kinds: Iterable[str] = KINDS, seed: int = 0, styles: Iterable[str] = tuple(STYLES),
             progress: Callable[[str], None] | None = None) -> dict:
    """Return accuracy, ECE and per-kind upload accuracy on MNIST test and each source.

    Parameters
    ----------
    predict : the model's predictor (``LoadedModel.predictor``) or any callable like it.
    mnist_test : (uint8 images (n, 28, 28), labels), evaluated the same way.
    per_kind : digits of each source rendered as each kind of upload.
    native_limit : classify at most this many digits per source natively
        (a random sample, the same for a seed); None for all.
    styles : the scanning styles (``scans.STYLES``) to classify each source in.
    progress : called with the name of each part as it starts.
    """
    kinds = tuple(kinds)
    report: dict = {"sources": {}, "unavailable": {}, "per_kind": per_kind, "seed": seed}
    if mnist_test is not None:
        images, labels = mnist_test
        if progress:
            progress("mnist test")
        native = _scores(_classify(predict, images), labels)
        report["mnist_test"] = {**native, "uploads": _uploads(predict, list(images), labels, per_kind, seed, kinds)
                                if per_kind else None,
                                "scanned": scanned(predict, list(images[:MNIST_SCANNED]), labels[:MNIST_SCANNED],
                                                   styles)}
    for name in sources:
        if progress:
            progress(name)
        try:
            source = load_source(name, native_limit, seed)
        except SourceUnavailable as exc:
            report["unavailable"][name] = str(exc)
            continue
        native = _native(predict, source.images, source.labels)
        uploads = _uploads(predict, source.images, source.labels, per_kind, seed, kinds) if per_kind else None
        report["sources"][name] = {**native, "uploads": uploads,
                                   "scanned": scanned(predict, source.images, source.labels, styles,
                                                      drawn=native["accuracy"])}
    done = report["sources"].values()
    if done:
        report["independent"] = {
            "native_accuracy": float(np.mean([s["accuracy"] for s in done])),
            "uploads_accuracy": float(np.mean([s["uploads"]["accuracy"] for s in done])) if per_kind else None,
            "scanned_accuracy": float(np.mean([np.mean(list(s["scanned"].values())) for s in done]))
            if styles else None,
            "sources": sorted(report["sources"]),
        }
    return report


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _rows(report: dict) -> list[tuple[str, dict]]:
    return ([("MNIST test", report["mnist_test"])] if "mnist_test" in report else []) + list(report["sources"].items())


def _mean(values) -> float | None:
    values = list(values)
    return float(np.mean(values)) if values else None


def table(report: dict) -> tuple[list[str], list[list[str]]]:
    """Return (header, rows) of a report, one row per source, then the mean and the sources that
    were unavailable: the one layout the CLI prints and the model card shows."""
    header = ["source", "digits", "as drawn", "ECE", "as uploads", "as scanned (mean of styles)", "confident errors"]
    rows = [[name, str(r["n"]), _pct(r["accuracy"]), _pct(r["ece"]),
             _pct(r["uploads"]["accuracy"] if r.get("uploads") else None),
             _pct(_mean(r.get("scanned", {}).values())), f"{r['confident_errors']} of {r['errors']}"]
            for name, r in _rows(report)]
    if "independent" in report:
        ind = report["independent"]
        rows.append([f"independent (mean of {len(ind['sources'])})", "", _pct(ind["native_accuracy"]), "",
                     _pct(ind["uploads_accuracy"]), _pct(ind.get("scanned_accuracy")), ""])
    rows += [[name, f"unavailable: {why}", "", "", "", "", ""] for name, why in report["unavailable"].items()]
    return header, rows


def scanned_table(report: dict) -> tuple[list[str], list[list[str]]]:
    """Return (header, rows) of the accuracy per scanning style (rows) and source (columns)."""
    sources = [(name, r) for name, r in _rows(report) if r.get("scanned")]
    styles = list(sources[0][1]["scanned"]) if sources else []
    return (["scanned as"] + [name for name, _ in sources],
            [[style] + [_pct(r["scanned"][style]) for _, r in sources] for style in styles])


def kind_table(report: dict) -> tuple[list[str], list[list[str]]]:
    """Return (header, rows) of the accuracy per kind of upload (rows) and source (columns)."""
    sources = [(name, r) for name, r in _rows(report) if r.get("uploads")]
    kinds = list(sources[0][1]["uploads"]["by_kind"]) if sources else []
    return (["kind of upload"] + [name for name, _ in sources],
            [[kind] + [_pct(r["uploads"]["by_kind"][kind]) for _, r in sources] for kind in kinds])
