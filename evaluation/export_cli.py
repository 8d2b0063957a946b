"""``train.py export``: write an artifact as ONNX, check it against the service, record it.

    python train.py export ARTIFACT --format onnx --out FILE [--check] [--data-dir DIR]

ARTIFACT is a ``model.npz`` or a version directory holding one. The model is
written by ``model.export.export_onnx``. ``--check`` runs the exported file
in onnxruntime and compares it with the service's own in-process answers
(``service_answers``: what ``service.digits`` computes) on the dataset's whole
test split and on ``--uploads`` preprocessed uploads (MNIST test digits
rendered as every kind of file people send, ``evaluation.uploads``, through
the service's decoding and preprocessing, each classified alone as
``/v1/predict`` does): the largest absolute difference of the probabilities
and of the digit scores, and whether every argmax agrees. It fails (exit 1)
beyond ``TOLERANCE``. When ARTIFACT is a version directory, the export's facts
(and the check's figures) are recorded in its model card
(``evaluation.card.record_export``).
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path

import numpy as np

from model.artifact import LoadedModel, load_artifact
from model.data import load_dataset, scale_pixels
from model.store import ARTIFACT_FILE

from .card import record_export

__all__ = ["TOLERANCE", "compare", "main", "parity", "parser", "service_answers"]

TOLERANCE = 1e-5  # the largest absolute difference of a probability or digit score allowed
DEFAULT_UPLOADS = 1000
UPLOAD_SEED = 0
BATCH = 1024


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train.py export",
                                description="Export an artifact to ONNX (for onnxruntime, Triton, KServe).")
    p.add_argument("artifact", help="a model.npz, or a version directory holding one (then its model card "
                                    "records the export)")
    p.add_argument("--format", choices=["onnx"], default="onnx")
    p.add_argument("--out", required=True, metavar="FILE", help="the ONNX file to write")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: model.export.OPSET)")
    p.add_argument("--check", action="store_true",
                   help="compare onnxruntime's answers with the service's on the test split and uploads")
    p.add_argument("--uploads", type=int, default=DEFAULT_UPLOADS, metavar="N",
                   help="preprocessed uploads for --check (MNIST models only; 0: none)")
    p.add_argument("--data-dir")
    p.add_argument("--no-download", action="store_true")
    p.add_argument("--no-verify", action="store_true", help="skip the dataset's checksums")
    p.add_argument("--no-record", action="store_true", help="leave the model card as it is")
    return p


def service_answers(loaded: LoadedModel, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (probabilities (n, k), digit scores (n,)) as the service answers them
    (``service.digits._judge``: the artifact's score, else the top probability)."""
    return loaded.predictor(X)


def compare(expected: tuple[np.ndarray, np.ndarray], got: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict:
    """Return the parity figures of onnxruntime's (probs, classes, scores) against the service's."""
    probs, scores = expected
    onnx_probs, onnx_classes, onnx_scores = got
    argmax = probs.argmax(axis=1)
    return {"n": int(len(probs)),
            "max_abs_diff_probabilities": float(np.abs(onnx_probs - probs).max(initial=0.0)),
            "max_abs_diff_digit_score": float(np.abs(onnx_scores - scores).max(initial=0.0)),
            "argmax_agree": int(((onnx_classes == argmax) & (onnx_probs.argmax(axis=1) == argmax)).sum())}


def _in_batches(fn, X: np.ndarray) -> tuple[np.ndarray, ...]:
    parts = [fn(X[i:i + BATCH]) for i in range(0, len(X), BATCH)]
    return tuple(np.concatenate(column) for column in zip(*parts))


def parity(loaded: LoadedModel, session, test_images: np.ndarray, upload_digits: np.ndarray | None) -> dict:
    """Return the parity figures on ``test_images`` (uint8 (n, 28, 28), classified in batches)
    and on ``upload_digits`` (preprocessed uploads, uint8 (m, 28, 28), each classified alone)."""
    from model.export import run_onnx

    X = scale_pixels(test_images)
    report = {"test": compare(_in_batches(lambda b: service_answers(loaded, b), X),
                              _in_batches(lambda b: run_onnx(session, b), X))}
    if upload_digits is not None and len(upload_digits):
        U = scale_pixels(upload_digits)
        alone = [service_answers(loaded, U[i:i + 1]) for i in range(len(U))]
        expected = (np.concatenate([p for p, _ in alone]), np.concatenate([s for _, s in alone]))
        report["uploads"] = compare(expected, run_onnx(session, U))
    worst = max(max(r["max_abs_diff_probabilities"], r["max_abs_diff_digit_score"]) for r in report.values())
    report["tolerance"] = TOLERANCE
    report["passed"] = bool(worst <= TOLERANCE and all(r["argmax_agree"] == r["n"] for r in report.values()
                                                       if isinstance(r, dict)))
    return report


def preprocessed_uploads(images: np.ndarray, labels: np.ndarray, n: int,
                         seed: int = UPLOAD_SEED) -> np.ndarray:
    """Return ``n`` digits rendered as every kind of upload in turn and put through the service's
    decoding and preprocessing: uint8 (n, 28, 28)."""
    from imaging.preprocessing import preprocess

    from .uploads import KINDS, rerender_set

    rendered = rerender_set(images, labels, math.ceil(n / len(KINDS)), seed=seed)
    return np.stack([preprocess(data) for _, _, data, _ in rendered[:n]])


def _check(args: argparse.Namespace, loaded: LoadedModel, out: Path) -> dict:
    import onnxruntime

    from model.export import onnx_session

    dataset = load_dataset(loaded.metadata.dataset.name, args.data_dir, download=not args.no_download,
                           verify=not args.no_verify, progress=False)
    uploads = (preprocessed_uploads(dataset.test_images, dataset.test_labels, args.uploads)
               if args.uploads and dataset.name == "mnist" else None)
    report = parity(loaded, onnx_session(out), dataset.test_images, uploads)
    report["dataset"] = dataset.name
    report["onnxruntime"] = onnxruntime.__version__
    return report


def _describe(report: dict) -> list[str]:
    lines = []
    for name, label in (("test", f"{report['dataset']} test"), ("uploads", "preprocessed uploads")):
        if name in report:
            r = report[name]
            lines.append(f"  {label:<22} {r['n']:6d} images: max |diff| probabilities "
                         f"{r['max_abs_diff_probabilities']:.2e}, digit score "
                         f"{r['max_abs_diff_digit_score']:.2e}, "
                         f"argmax agrees on {r['argmax_agree']} of {r['n']}")
    return lines


def run(args: argparse.Namespace, argv: list[str]) -> int:
    from model.export import OPSET, UnsupportedLayer, export_onnx

    source = Path(args.artifact)
    loaded = load_artifact(source / ARTIFACT_FILE if source.is_dir() else source)
    out = Path(args.out)
    try:
        facts = export_onnx(loaded, out, args.opset or OPSET)
    except UnsupportedLayer as exc:
        print(f"error: {loaded.path}: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}: ONNX opset {facts['opset']}, {facts['bytes']:,} bytes, sha256 {facts['sha256']}")
    facts["command"] = shlex.join(["python", "train.py", "export", *argv])
    passed = True
    if args.check:
        facts["parity"] = _check(args, loaded, out)
        passed = facts["parity"]["passed"]
        print(f"parity with the service (onnxruntime {facts['parity']['onnxruntime']}, tolerance "
              f"{TOLERANCE:g}): {'passed' if passed else 'FAILED'}")
        print("\n".join(_describe(facts["parity"])))
    if source.is_dir() and not args.no_record:
        record_export(source, {**facts, "file": out.name})
        print(f"recorded in {source / 'model-card.md'} and model-card.json")
    return 0 if passed else 1


def main(argv: list[str] | None = None) -> int:
    """Run ``train.py export`` with ``argv`` (the arguments after ``export``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    try:
        import onnx  # noqa: F401 - say what to install before anything is loaded
    except ImportError:
        print("error: exporting needs the onnx package: pip install -e '.[export]'", file=sys.stderr)
        return 2
    if args.check:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            print("error: --check needs onnxruntime: pip install onnxruntime", file=sys.stderr)
            return 2
    return run(args, argv)
