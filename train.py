#!/usr/bin/env python3
"""Train the NumPy MLP and publish a new artifact version; or evaluate one.

    python train.py [--dataset mnist] [--data-dir DIR] [--epochs N] [--seed S] [--out artifacts/]
    python train.py evaluate ARTIFACT [--data-dir DIR]

A thin CLI: it parses flags, then calls the ``model`` package (data -> MLP ->
train -> calibrate -> evaluate -> publish). The defaults below are the
recipe of the bundled artifact; every value used is recorded in the
artifact's metadata and model card.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from model.artifact import InvalidArtifact, build_metadata, load_artifact, save_artifact
from model.augment import PRESETS, AugmentConfig
from model.calibration import expected_calibration_error, fit_temperature
from model.data import DATASETS, DatasetError, IDXError, load_dataset, split_validation
from model.losses import softmax
from model.network import MLP
from model.optimizers import OPTIMIZERS, SCHEDULES
from model.report import confusion_matrix, per_class_accuracy, write_model_card
from model.store import ARTIFACT_FILE, ArtifactStore
from model.training import EpochStats, TrainConfig, evaluate, train

DEFAULT_DATASET = "mnist"
DEFAULT_OUT = "artifacts"
DEFAULT_HIDDEN = "800"
DEFAULT_EPOCHS = 60
DEFAULT_BATCH_SIZE = 128
DEFAULT_OPTIMIZER = "adamw"
DEFAULT_LR = 2e-3
DEFAULT_SCHEDULE = "onecycle"
DEFAULT_WEIGHT_DECAY = 1e-4
DEFAULT_DROPOUT = 0.0
DEFAULT_VAL_SIZE = 5000
DEFAULT_SEED = 0
ECE_BINS = 15


def _hidden(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"hidden sizes must be >= 1, got {text!r}")
    return sizes


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def augment_config(args: argparse.Namespace) -> AugmentConfig:
    """Return the dataset's augmentation preset with any flags given applied."""
    overrides = {"rotate_deg": args.rotate, "scale": args.scale, "shear": args.shear,
                 "shift_px": args.shift, "elastic_alpha": args.elastic,
                 "thickness": args.thickness, "hflip": args.hflip}
    return replace(PRESETS[args.dataset], **{k: v for k, v in overrides.items() if v is not None})


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train.py",
        description="Train the NumPy MLP, calibrate it, and publish a new artifact version. "
                    "Use 'train.py evaluate ARTIFACT' to re-evaluate an artifact.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", choices=sorted(DATASETS), default=DEFAULT_DATASET)
    p.add_argument("--data-dir", help="directory with the IDX files (else $DATA_DIR, the cache, "
                   "then a download)")
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading")
    p.add_argument("--no-verify", action="store_true",
                   help="accept IDX files whose checksums differ from the canonical ones")
    p.add_argument("--out", default=DEFAULT_OUT, help="artifacts directory")
    p.add_argument("--name", help="model name (sub-directory of --out); default: the dataset name")
    p.add_argument("--hidden", type=_hidden, default=_hidden(DEFAULT_HIDDEN),
                   help="hidden layer widths, comma-separated, e.g. 512,256")
    p.add_argument("--epochs", type=_positive_int, default=DEFAULT_EPOCHS)
    p.add_argument("--batch-size", type=_positive_int, default=DEFAULT_BATCH_SIZE)
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=DEFAULT_OPTIMIZER)
    p.add_argument("--lr", type=float, default=DEFAULT_LR, help="peak learning rate")
    p.add_argument("--schedule", choices=sorted(SCHEDULES), default=DEFAULT_SCHEDULE)
    p.add_argument("--weight-decay", type=float, default=DEFAULT_WEIGHT_DECAY)
    p.add_argument("--dropout", type=float, default=DEFAULT_DROPOUT)
    p.add_argument("--no-augment", action="store_true", help="train on the images as they are")
    augment = p.add_argument_group(
        "augmentation", "defaults depend on the dataset: " + "; ".join(
            f"{name}: {', '.join(f'{k}={v}' for k, v in preset.as_dict().items())}"
            for name, preset in PRESETS.items()))
    augment.add_argument("--rotate", type=float, help="max rotation, degrees (default: the preset)%(default).0s")
    augment.add_argument("--scale", type=float, help="max relative scale change (default: the preset)%(default).0s")
    augment.add_argument("--shear", type=float, help="max shear factor (default: the preset)%(default).0s")
    augment.add_argument("--shift", type=float, help="max shift, pixels (default: the preset)%(default).0s")
    augment.add_argument("--elastic", type=float, help="RMS elastic displacement in pixels (0 = off) (default: the preset)%(default).0s")
    augment.add_argument("--thickness", type=float,
                         help="random stroke-width change, as a fraction of a 3x3 dilation/erosion "
                              "(default: the preset)%(default).0s")
    augment.add_argument("--hflip", action=argparse.BooleanOptionalAction, help="random mirror images (default: the preset)%(default).0s")
    p.add_argument("--val-size", type=int, default=DEFAULT_VAL_SIZE)
    p.add_argument("--train-size", type=int, help="use only this many training images (quick runs)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def evaluate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train.py evaluate",
                                description="Re-evaluate an artifact on a dataset's test split.")
    p.add_argument("artifact", help="a model.npz, or a version directory holding one")
    p.add_argument("--dataset", choices=sorted(DATASETS),
                   help="default: the dataset recorded in the artifact")
    p.add_argument("--data-dir")
    p.add_argument("--no-download", action="store_true")
    p.add_argument("--no-verify", action="store_true")
    return p


def _progress(args: argparse.Namespace, steps_per_epoch: int, epochs: int):
    """Return (on_batch, on_epoch, close) callbacks driving a tqdm bar per epoch."""
    from tqdm import tqdm

    state: dict = {"bar": None}

    def on_batch(epoch: int, step: int, loss: float, accuracy: float) -> None:
        if args.quiet:
            return
        if step == 0:
            state["bar"] = tqdm(total=steps_per_epoch, desc=f"epoch {epoch}/{epochs}",
                                unit="batch", leave=False, dynamic_ncols=True)
        bar = state["bar"]
        bar.update(1)
        if step % 20 == 0 or step == steps_per_epoch - 1:
            bar.set_postfix(loss=f"{loss:.4f}", acc=f"{100 * accuracy:.2f}%", refresh=False)

    def on_epoch(s: EpochStats) -> None:
        if state["bar"] is not None:
            state["bar"].close()
            state["bar"] = None
        line = (f"epoch {s.epoch:3d}/{epochs}  train loss {s.train_loss:.4f} acc {100 * s.train_accuracy:.2f}%"
                f"  val loss {s.val_loss:.4f} acc {100 * s.val_accuracy:.2f}%  lr {s.lr:.2e}  {s.seconds:.1f}s")
        tqdm.write(line, file=sys.stdout)

    return on_batch, on_epoch


def run_train(args: argparse.Namespace, argv: list[str]) -> int:
    started = time.perf_counter()
    dataset = load_dataset(args.dataset, args.data_dir, download=not args.no_download,
                           verify=not args.no_verify, progress=not args.quiet)
    train_images, train_labels, val_images, val_labels = split_validation(
        dataset.train_images, dataset.train_labels, args.val_size, args.seed)
    if args.train_size:
        train_images, train_labels = train_images[:args.train_size], train_labels[:args.train_size]
    print(f"{dataset.name}: {len(train_images)} train / {len(val_images)} validation / "
          f"{len(dataset.test_images)} test images from {dataset.source}")

    augment = None if args.no_augment else augment_config(args)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
                         lr=args.lr, schedule=args.schedule, weight_decay=args.weight_decay,
                         augment=augment, seed=args.seed)
    sizes = [train_images[0].size, *args.hidden, len(dataset.labels)]
    # One generator initialises the weights and then draws the dropout masks.
    net = MLP(sizes, np.random.default_rng([args.seed, 1]), dropout=args.dropout)
    print(f"MLP {' -> '.join(map(str, sizes))} ({net.n_params:,} parameters), {args.optimizer} "
          f"lr {args.lr} {args.schedule}, batch {args.batch_size}, {args.epochs} epochs, "
          f"augment {'off' if augment is None else 'on'}, seed {args.seed}")

    on_batch, on_epoch = _progress(args, len(train_images) // args.batch_size, args.epochs)
    result = train(net, train_images, train_labels, val_images, val_labels, config,
                   on_batch=on_batch, on_epoch=on_epoch)

    # Calibrate on the validation split, then report on the untouched test split.
    val_loss, val_accuracy, val_logits = evaluate(net, val_images, val_labels)
    temperature = fit_temperature(val_logits, val_labels)
    _, test_accuracy, test_logits = evaluate(net, dataset.test_images, dataset.test_labels)
    probs_before = softmax(test_logits.astype(np.float64))
    probs_after = softmax(test_logits.astype(np.float64) / temperature)
    ece_before = expected_calibration_error(probs_before, dataset.test_labels, ECE_BINS)
    ece_after = expected_calibration_error(probs_after, dataset.test_labels, ECE_BINS)
    test_loss = float(-np.log(np.maximum(
        probs_after[np.arange(len(dataset.test_labels)), dataset.test_labels], 1e-300)).mean())
    net.temperature = temperature
    cm = confusion_matrix(dataset.test_labels, test_logits.argmax(axis=1), len(dataset.labels))
    seconds = time.perf_counter() - started

    history = [vars(h) for h in result.history]
    metadata = build_metadata(
        net,
        name=args.name or dataset.name,
        labels=list(dataset.labels),
        dataset={"name": dataset.name, "sha256": dataset.sha256, "train_size": len(train_images),
                 "val_size": len(val_images), "test_size": len(dataset.test_images)},
        metrics={"test_accuracy": test_accuracy, "test_loss": test_loss,
                 "val_accuracy": val_accuracy, "val_loss": val_loss,
                 "ece_before": ece_before, "ece_after": ece_after,
                 "per_class_accuracy": per_class_accuracy(cm)},
        training={"command": shlex.join(["python", "train.py", *argv]),
                  "config": {**config.as_dict(), "hidden": args.hidden, "dropout": args.dropout},
                  "seconds": round(seconds, 1), "epochs_run": len(history),
                  "best_epoch": result.best_epoch, "seed": args.seed,
                  "numpy": np.__version__, "python": platform.python_version(),
                  "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"},
    )

    def write(directory: Path) -> None:
        save_artifact(directory / ARTIFACT_FILE, net, metadata)
        write_model_card(directory, metadata, history, cm, plots=not args.no_plots)

    store = ArtifactStore(args.out, metadata.name)
    try:
        entry = store.publish(write)
    except OSError as exc:
        print(f"error: could not write the artifact under {store.dir}: {exc}\n"
              "No version was published (the partial files were removed).", file=sys.stderr)
        return 1
    print(f"temperature {temperature:.4f}; test ECE ({ECE_BINS} bins) {100 * ece_before:.2f}% before, "
          f"{100 * ece_after:.2f}% after calibration")
    print(f"test accuracy {100 * test_accuracy:.2f}% (best epoch {result.best_epoch}, "
          f"validation {100 * val_accuracy:.2f}%), {seconds:.0f}s in all")
    print(f"published {metadata.name} version {entry.version}: {entry.path}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    path = Path(args.artifact)
    if path.is_dir():
        path = path / ARTIFACT_FILE
    loaded = load_artifact(path)
    meta = loaded.metadata
    dataset = load_dataset(args.dataset or meta.dataset.name, args.data_dir,
                           download=not args.no_download, verify=not args.no_verify)
    if len(dataset.labels) != len(meta.labels):
        print(f"error: {dataset.name} has {len(dataset.labels)} classes, the artifact "
              f"{len(meta.labels)}", file=sys.stderr)
        return 2
    _, accuracy, logits = evaluate(loaded.net, dataset.test_images, dataset.test_labels)
    probs = softmax(logits.astype(np.float64) / meta.temperature)
    ece = expected_calibration_error(probs, dataset.test_labels, ECE_BINS)
    cm = confusion_matrix(dataset.test_labels, logits.argmax(axis=1), len(meta.labels))
    print(f"{path}: {meta.name}, {meta.dataset.name} model, evaluated on {dataset.name} test "
          f"({len(dataset.test_labels)} images)")
    print(f"accuracy {100 * accuracy:.2f}%   ECE ({ECE_BINS} bins, T={meta.temperature:.3f}) {100 * ece:.2f}%")
    print("per-class accuracy:")
    for label, acc, n in zip(meta.labels, per_class_accuracy(cm), cm.sum(axis=1)):
        print(f"  {label:>12}  {100 * acc:6.2f}%  (n={n})")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["evaluate"]:
            return run_evaluate(evaluate_parser().parse_args(argv[1:]))
        if argv[:1] == ["train"]:
            argv = argv[1:]
        return run_train(train_parser().parse_args(argv), argv)
    except (DatasetError, IDXError, InvalidArtifact) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing was published", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
