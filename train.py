#!/usr/bin/env python3
"""Train a NumPy network and publish a new artifact version; evaluate or export one.

    python train.py [--arch cnn|mlp] [--data-dir DIR] [--epochs N] [--seed S] [...]
    python train.py evaluate ARTIFACT [--data-dir DIR]
    python train.py export ARTIFACT --format onnx --out FILE

The command line only: flags come from the recipe (``model.recipes``: one
flag per setting, defaults there), then data (``model.data``), the training
set (``model.trainset``), the network and its training (``model.training``),
calibration (``model.calibration``), the digit score (``model.ood``), the
evaluations (``evaluation.evaluate``), and the model card and publishing
(``evaluation.card``, ``model.store``). Every value used is recorded in the
artifact's metadata and model card.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from model import recipes, trainset
from model.artifact import InvalidArtifact, build_metadata, save_artifact
from model.calibration import fit_temperature
from model.data import DATASETS, DatasetError, IDXError, load_dataset, scale_pixels
from model.feedback import load_feedback
from model.inference import Predictor
from model.ood import Scorer, Verdicts, fit_scorer
from model.store import ARTIFACT_FILE, ArtifactStore
from model.training import evaluate, train


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train.py",
        description="Train a NumPy network, calibrate it, and publish a new artifact version. "
                    "'train.py evaluate ARTIFACT' re-evaluates one; 'train.py export ARTIFACT' exports it.")
    p.add_argument("--dataset", choices=sorted(DATASETS), default="mnist", help="default: mnist")
    p.add_argument("--data-dir", help="a folder with the dataset's four IDX files, or with mnist/ and "
                   "fashion-mnist/ in it (else $DATA_DIR, the cache, then a download)")
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading")
    p.add_argument("--no-verify", action="store_true",
                   help="accept IDX files whose checksums differ from the canonical ones")
    p.add_argument("--out", default="artifacts", help="artifacts directory (default: artifacts)")
    p.add_argument("--name", help="model name (sub-directory of --out); default: the dataset name")
    p.add_argument("--feedback", metavar="DIR", help="a feedback store (the service's FEEDBACK_DIR): fold its "
                   "entries into training, holding a share out to report accuracy on")
    p.add_argument("--feedback-holdout", type=float, default=0.2, help="share of the feedback entries held out (default: 0.2)")
    p.add_argument("--train-size", type=int, help="use only this many MNIST training images (quick runs)")
    p.add_argument("--seed", type=int, default=0, help="every random choice follows from it (default: 0)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    recipes.add_flags(p)
    return p


def _fashion(args: argparse.Namespace, recipe: recipes.Recipe):
    """Return Fashion-MNIST (its training clothes are 'not a digit'), or None, saying why."""
    if args.dataset != "mnist":
        return None
    try:
        fashion = load_dataset("fashion-mnist", args.data_dir, download=not args.no_download,
                               verify=not args.no_verify, progress=not args.quiet)
    except DatasetError as exc:
        what = "training without its clothes as 'not a digit'" if recipe.clothes else "no clothes to validate with"
        print(f"fashion-mnist: not found, {what} (the model card says so)\n  {exc}".replace("\n", "\n  "))
        return None
    print(f"fashion-mnist: {fashion.source}")
    return fashion


def _progress(args: argparse.Namespace, steps: int, epochs: int):
    """Return (on_batch, on_epoch) callbacks: a tqdm bar per epoch and a line after it."""
    from tqdm import tqdm

    bar: list = [None]

    def on_batch(epoch: int, step: int, loss: float, accuracy: float) -> None:
        if args.quiet:
            return
        if step == 0:
            bar[0] = tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=False, dynamic_ncols=True)
        bar[0].update(1)
        if step % 20 == 0:
            bar[0].set_postfix(loss=f"{loss:.4f}", acc=f"{100 * accuracy:.2f}%", refresh=False)

    def on_epoch(s) -> None:
        if bar[0] is not None:
            bar[0].close()
        tqdm.write(f"epoch {s.epoch:3d}/{epochs}  train loss {s.train_loss:.4f} acc {100 * s.train_accuracy:.2f}%"
                   f"  val loss {s.val_loss:.4f} acc {100 * s.val_accuracy:.2f}%  lr {s.lr:.2e}  {s.seconds:.1f}s")

    return on_batch, on_epoch


def _drawing(args: argparse.Namespace, total: int):
    if args.quiet or not total:
        return None
    from tqdm import tqdm

    bar = tqdm(total=total, desc="drawing digits", unit="digit", leave=False, dynamic_ncols=True)
    return lambda done: bar.update(done - bar.n) if done < total else bar.close()


def run(args: argparse.Namespace, argv: list[str]) -> int:
    from evaluation.card import write_model_card
    from evaluation.evaluate import after_training, feedback_metrics, test_metrics

    started = time.perf_counter()
    recipe = recipes.with_flags(args)
    dataset = load_dataset(args.dataset, args.data_dir, download=not args.no_download, verify=not args.no_verify,
                           progress=not args.quiet)
    print(f"{dataset.name}: {dataset.source}")
    fashion = _fashion(args, recipe)
    feedback = load_feedback(args.feedback) if args.feedback else None
    data = trainset.build(recipe, dataset, args.seed, fashion, feedback, args.feedback_holdout, args.train_size,
                          _drawing(args, recipe.synthetic))
    print("training set: " + ", ".join(f"{k} {v}" for k, v in data.counts.items() if not isinstance(v, dict))
          + f"; {len(data.images)} images, {len(data.val_images)} for validation")
    if "feedback" in data.counts:
        f = data.counts["feedback"]
        print(f"feedback from {args.feedback}: {f['entries']} entries, {f['trained']} trained on, {f['heldout']} held out")
    net = recipe.network(data.n_outputs, np.random.default_rng([args.seed, 1]))
    print(f"{recipe.arch.upper()} {net.describe()} ({net.n_params:,} parameters), {recipe.optimizer} lr {recipe.lr} "
          f"{recipe.schedule}, batch {recipe.batch_size}, {recipe.epochs} epochs, augment "
          f"{'off' if recipe.augment is None else 'on'}, seed {args.seed}")
    config = recipe.training(args.seed)
    result = train(net, data.images, data.labels, data.val_images, data.val_labels, config,
                   *_progress(args, len(data.images) // recipe.batch_size, recipe.epochs))
    net.temperature = fit_temperature(evaluate(net, data.val_images, data.val_labels, data.n_digits)[2],
                                      data.val_labels)
    metrics, confusion = test_metrics(net, data, dataset)
    ood, ood_arrays, scorer = None, {}, None
    if dataset.name == "mnist":
        groups, negatives = trainset.scoring_validation(data, args.seed)
        fit = np.random.default_rng([args.seed, 3]).choice(data.n_mnist, min(10000, data.n_mnist), replace=False)
        ood, ood_arrays, raw = fit_scorer(net, data.n_digits, groups, negatives, scale_pixels(data.images[fit]),
                                          data.labels[fit], recipe.target_accuracy)
        scorer = Scorer(ood["method"], tuple(ood["platt"]), (ood_arrays["ood.means"], ood_arrays["ood.precision"])
                        if ood_arrays else None)
        print(f"digit score: {ood['method']}; not_a_digit below {ood['thresholds']['not_a_digit_below']:.4f}, "
              f"uncertain below {ood['thresholds']['uncertain_below']:.4f}")
        best = max(row["auroc"] for row in ood["comparison"])
        if best <= 0.5:
            print(f"warning: no digit score tells digits from not-digits on the validation data (best AUROC "
                  f"{best:.3f}): digit_score and the verdicts mean little for this model", file=sys.stderr)
        if recipe.independent:
            metrics.update(after_training(net, data.n_digits, scorer, raw, Verdicts(**ood["thresholds"]), dataset,
                                          args.data_dir, recipe.independent, args.quiet))
    if data.heldout_feedback is not None:
        metrics["feedback"] = feedback_metrics(Predictor(net, data.n_digits), data)
    metadata = build_metadata(
        net, name=args.name or dataset.name, ood=ood, ood_arrays=ood_arrays, labels=list(dataset.labels),
        dataset={"name": dataset.name, "sha256": dataset.sha256, "train_size": len(data.images),
                 "val_size": len(data.val_images), "test_size": len(dataset.test_images)},
        metrics=metrics,
        training={"command": shlex.join(["python", "train.py", *argv]), "config": recipe.as_dict(),
                  "training_set": data.counts, "seconds": round(time.perf_counter() - started, 1),
                  "train_seconds": round(result.seconds, 1), "epochs_run": len(result.history),
                  "best_epoch": result.best_epoch, "seed": args.seed, "numpy": np.__version__,
                  "python": platform.python_version(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"})

    def write(directory: Path) -> None:
        save_artifact(directory / ARTIFACT_FILE, net, metadata, ood_arrays)
        write_model_card(directory, metadata, [vars(h) for h in result.history], confusion, not args.no_plots)

    store = ArtifactStore(args.out, metadata.name)
    try:
        entry = store.publish(write)
    except OSError as exc:
        print(f"error: could not write the artifact under {store.dir}: {exc}\n"
              "No version was published (the partial files were removed).", file=sys.stderr)
        return 1
    print(f"temperature {net.temperature:.4f}; test ECE {100 * metrics['ece_before']:.2f}% before, "
          f"{100 * metrics['ece_after']:.2f}% after calibration")
    print(f"test accuracy {100 * metrics['test_accuracy']:.2f}% (best epoch {result.best_epoch}, validation "
          f"{100 * metrics['val_accuracy']:.2f}%), {time.perf_counter() - started:.0f}s in all "
          f"({result.seconds:.0f}s training)")
    print(f"published {metadata.name} version {entry.version}: {entry.path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["evaluate"]:
            from evaluation.evaluate import main as evaluate_main
            return evaluate_main(argv[1:])
        if argv[:1] == ["export"]:
            from evaluation.export_cli import main as export_main
            return export_main(argv[1:])
        if argv[:1] == ["train"]:
            argv = argv[1:]
        return run(parser().parse_args(argv), argv)
    except argparse.ArgumentTypeError as exc:
        print(f"train.py: error: {exc}", file=sys.stderr)
        return 2
    except (DatasetError, IDXError, InvalidArtifact) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing was published", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
