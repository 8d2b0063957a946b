"""Judging a trained model: after training, and ``train.py evaluate ARTIFACT``.

    after_training(net, n_digits, scorer, ...)   the evaluations ``train.py`` puts in the model card:
                                                 handwriting that is not MNIST's (``independent``)
                                                 and digits against not-digits (``notdigits``)
    main(argv)                                   ``train.py evaluate``: MNIST's test split, both
                                                 evaluations, printed (and optionally as JSON)

An evaluation that fails is reported and left out, never the reason a
trained network is lost. Nothing here trains or chooses anything.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from model.artifact import load_artifact
from model.calibration import expected_calibration_error
from model.data import DATASETS, DatasetError, load_dataset, scale_pixels
from model.inference import Predictor
from model.losses import softmax
from model.ood import CONFIDENCE_THRESHOLDS, Scorer, Verdicts
from model.store import ARTIFACT_FILE
from model.training import evaluate as evaluate_split

from . import independent, notdigits
from .card import confusion_matrix, per_class_accuracy, text_table

__all__ = ["ECE_BINS", "after_training", "feedback_metrics", "main", "test_metrics"]

ECE_BINS = 15


def _say(quiet: bool):
    return None if quiet else (lambda part: print(f"  evaluating: {part}", file=sys.stderr))


def run_independent(predictor, dataset, per_kind: int, quiet: bool = False, native_limit: int | None = 2000) -> dict:
    """Return (and print) the evaluation on handwriting that is not MNIST's (``independent``)."""
    report = independent.evaluate(predictor, (dataset.test_images, dataset.test_labels), per_kind=per_kind,
                                  native_limit=native_limit, progress=_say(quiet))
    print(text_table(*independent.table(report)))
    return report


def run_notdigits(net, n_digits: int, scorer: Scorer | None, raw_scorers: dict[str, Scorer],
                  thresholds: Verdicts, dataset, data_dir: str | None, per_kind: int, quiet: bool = False) -> dict:
    """Return (and print) digits against not-digits (``notdigits``): the shipped score with its
    verdicts, and every method's AUROC on the same uploads."""
    try:
        fashion_test = load_dataset("fashion-mnist", data_dir, download=False, progress=False).test_images
    except DatasetError:
        fashion_test = None
    collected = notdigits.collect(dataset.test_images, dataset.test_labels, fashion_test, per_kind=per_kind,
                                  progress=_say(quiet))
    result = notdigits.report(Predictor(net, n_digits, scorer), collected, thresholds)
    result["methods"] = {m: notdigits.report(Predictor(net, n_digits, s), collected) for m, s in raw_scorers.items()}
    print("\n".join(notdigits.summary_lines(result)))
    return result


def after_training(net, n_digits: int, scorer: Scorer | None, raw_scorers: dict[str, Scorer],
                   thresholds: Verdicts, dataset, data_dir: str | None, per_kind: int, quiet: bool) -> dict:
    """Return the evaluations of a freshly trained digit network that finished (by name)."""
    parts = {"independent": lambda: run_independent(Predictor(net, n_digits, scorer), dataset, per_kind, quiet),
             "notdigits": lambda: run_notdigits(net, n_digits, scorer, raw_scorers, thresholds, dataset, data_dir,
                                                per_kind, quiet)}
    out = {}
    for name, run in parts.items():
        try:
            out[name] = run()
        except Exception as exc:  # noqa: BLE001 - an evaluation is a report, not a step of training
            print(f"warning: the {name} evaluation failed ({type(exc).__name__}: {exc}); "
                  "publishing without it", file=sys.stderr)
    return out


def test_metrics(net, data, dataset) -> tuple[dict, np.ndarray]:
    """Return the figures of a trained, calibrated network (its temperature set) on the
    validation split and ``dataset``'s test split, and the test confusion matrix."""
    k = data.n_digits
    val_loss, val_accuracy, _ = evaluate_split(net, data.val_images, data.val_labels, k)
    _, test_accuracy, logits = evaluate_split(net, dataset.test_images, dataset.test_labels, k)
    z = logits.astype(np.float64)
    calibrated = softmax(z / net.temperature)
    labels = dataset.test_labels
    confusion = confusion_matrix(labels, logits.argmax(axis=1), k)
    return {"test_accuracy": test_accuracy,
            "test_loss": float(-np.log(np.maximum(calibrated[np.arange(len(labels)), labels], 1e-300)).mean()),
            "val_accuracy": val_accuracy, "val_loss": val_loss,
            "ece_before": expected_calibration_error(softmax(z), labels, ECE_BINS),
            "ece_after": expected_calibration_error(calibrated, labels, ECE_BINS),
            "per_class_accuracy": per_class_accuracy(confusion)}, confusion


def feedback_metrics(predictor, data) -> dict:
    """Return the feedback folded into training (``data.counts``) with the accuracy on the held-out
    entries of this network (``predictor``) and of the versions that answered them."""
    out = dict(data.counts["feedback"])
    heldout = data.heldout_feedback
    if heldout:
        probs, _ = predictor(scale_pixels(np.stack([e.image for e in heldout])))
        out["heldout_accuracy"] = float((probs.argmax(axis=1) == np.array([e.label for e in heldout])).mean())
        before = [e.predicted == e.label for e in heldout if e.predicted is not None]
        out["heldout_accuracy_before"] = float(np.mean(before)) if before else None
        print(f"held-out feedback: {100 * out['heldout_accuracy']:.2f}% right (the versions that answered: "
              + (f"{100 * out['heldout_accuracy_before']:.2f}%)" if before else "n/a)"))
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train.py evaluate",
                                description="Re-evaluate an artifact on a dataset's test split.")
    p.add_argument("artifact", help="a model.npz, or a version directory holding one")
    p.add_argument("--dataset", choices=sorted(DATASETS), help="default: the dataset recorded in the artifact")
    p.add_argument("--data-dir")
    p.add_argument("--no-download", action="store_true")
    p.add_argument("--no-verify", action="store_true")
    p.add_argument("--independent", type=int, default=20, metavar="N",
                   help="digits per source of handwriting that is not MNIST's and kind of upload "
                        "(0: MNIST test only)")
    p.add_argument("--native-limit", type=int, default=None, metavar="N",
                   help="classify at most N digits of each source as drawn (default: all)")
    p.add_argument("--json", help="also write the evaluations to this JSON file")
    return p


def main(argv: list[str]) -> int:
    """``train.py evaluate``: print an artifact's figures; return the exit status."""
    args = parser().parse_args(argv)
    path = Path(args.artifact)
    if path.is_dir():
        path = path / ARTIFACT_FILE
    loaded = load_artifact(path)
    meta = loaded.metadata
    dataset = load_dataset(args.dataset or meta.dataset.name, args.data_dir,
                           download=not args.no_download, verify=not args.no_verify)
    k = len(meta.labels)
    if len(dataset.labels) != k:
        print(f"error: {dataset.name} has {len(dataset.labels)} classes, the artifact {k}", file=sys.stderr)
        return 2
    _, accuracy, logits = evaluate_split(loaded.net, dataset.test_images, dataset.test_labels, k)
    ece = expected_calibration_error(softmax(logits.astype(np.float64) / meta.temperature), dataset.test_labels,
                                     ECE_BINS)
    cm = confusion_matrix(dataset.test_labels, logits.argmax(axis=1), k)
    print(f"{path}: {meta.name}, {meta.dataset.name} model, evaluated on {dataset.name} test "
          f"({len(dataset.test_labels)} images)")
    print(f"accuracy {100 * accuracy:.2f}%   ECE ({ECE_BINS} bins, T={meta.temperature:.3f}) {100 * ece:.2f}%")
    print(text_table(["class", "test accuracy", "n"],
                     [[label, f"{100 * acc:.2f}%", f"(n={n})"]
                      for label, acc, n in zip(meta.labels, per_class_accuracy(cm), cm.sum(axis=1))]))
    if not args.independent or dataset.name != "mnist":
        return 0
    print(f"\nhandwriting that is not MNIST's ({args.independent} digits per source and kind of upload):")
    report = run_independent(loaded.predictor, dataset, args.independent, False, args.native_limit)
    print("\naccuracy per kind of upload:")
    print(text_table(*independent.kind_table(report)))
    print("\naccuracy as scanning systems stored digits:")
    print(text_table(*independent.scanned_table(report)))
    print("\ndigits against not-digits, as uploads:")
    raw = {m: Scorer(m, None) for m in ("msp", "energy")}
    if meta.ood is not None:
        raw[meta.ood.method] = replace(loaded.scorer, platt=None)
    scorer = loaded.scorer or Scorer("msp", None)  # a model without a score: its confidence stands in
    result = run_notdigits(loaded.net, k, scorer, raw, loaded.thresholds if meta.ood else CONFIDENCE_THRESHOLDS,
                           dataset, args.data_dir, args.independent)
    if args.json:
        Path(args.json).write_text(json.dumps({**report, "notdigits": result}, indent=1) + "\n")
        print(f"\nwrote {args.json}")
    return 0
