#!/usr/bin/env python3
"""Train a NumPy network and publish a new artifact version; or evaluate one.

    python train.py [--arch cnn|mlp] [--dataset mnist] [--data-dir DIR] [--epochs N] [--seed S]
    python train.py evaluate ARTIFACT [--data-dir DIR]
    python train.py export ARTIFACT --format onnx --out FILE [--check] [--data-dir DIR]

A thin CLI: it parses flags, then calls the ``model`` package (data -> extra
training digits -> network -> train -> calibrate -> evaluate -> publish) and
``evaluation`` (handwriting that is not MNIST's, as uploads). ``RECIPES``
holds each architecture's defaults: the CNN recipe made the bundled default
artifact, the MLP recipe the original one. Every value used is recorded in
the artifact's metadata and model card.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from model.artifact import InvalidArtifact, build_metadata, load_artifact, save_artifact
from model.augment import PRESETS, STYLE, AugmentConfig, Augmenter
from model.calibration import expected_calibration_error, fit_temperature
from model.data import PIXEL_SCALE, DATASETS, DatasetError, IDXError, load_dataset, scale_pixels, split_validation
from model.losses import softmax
from model.negatives import digit_pairs, draw_negative, negative_set
from model.network import DEFAULT_CNN, Network, cnn_layers, mlp_layers
from model.ood import CONFIDENCE_THRESHOLDS, Scorer, Verdicts, fit_scorer, predict
from model.optimizers import OPTIMIZERS, SCHEDULES
from model.report import confusion_matrix, per_class_accuracy, write_model_card
from model.store import ARTIFACT_FILE, ArtifactStore
from model.strokes import draw, extend_training_set
from model.training import EpochStats, TrainConfig, evaluate, train

DEFAULT_DATASET = "mnist"
DEFAULT_ARCH = "cnn"
DEFAULT_OUT = "artifacts"
DEFAULT_BATCH_SIZE = 128
DEFAULT_OPTIMIZER = "adamw"
DEFAULT_LR = 2e-3
DEFAULT_SCHEDULE = "onecycle"
DEFAULT_WEIGHT_DECAY = 1e-4
DEFAULT_VAL_SIZE = 5000
DEFAULT_SEED = 0
DEFAULT_PER_KIND = 5  # evaluations after training: images per source and kind of upload
ECE_BINS = 15
DEFAULT_TARGET_ACCURACY = 0.995
DEFAULT_FEEDBACK_HOLDOUT = 0.2
# Validation data for the digit score: held out from training, never a test split.
OOD_VAL_DRAWN = 2000  # stroke-drawn digits, and as many stroke-drawn non-digits
OOD_VAL_CLOTHES = 2000  # Fashion-MNIST training images kept out of training
OOD_VAL_PAIRS = 1000  # pairs of validation digits
OOD_GAUSSIAN_FIT = 10000  # training digits the Mahalanobis Gaussians are fitted on
# The share of each group of validation digits the verdict may call "not_a_digit".
FALSE_REJECT = {"mnist": 0.005, "styled": 0.01, "drawn": 0.01}


@dataclass(frozen=True)
class Recipe:
    """An architecture's defaults; a flag given on the command line wins."""

    epochs: int
    dropout: float
    average: float  # weight averaging decay (0 = off)
    synthetic: int  # stroke-drawn digits added to an MNIST training set
    edit_share: float  # share of MNIST's 1s and 7s added again with a flag/foot or crossbar
    styled: bool  # digit datasets train with augment.STYLE instead of the dataset's preset
    negatives: int = 0  # stroke-drawn non-digits (letters, symbols, doodles, scribbles), labelled "not a digit"
    clothes: int = 0  # Fashion-MNIST training images, labelled "not a digit"
    pairs: int = 0  # two MNIST training digits side by side, labelled "not a digit"


RECIPES = {
    "mlp": Recipe(epochs=60, dropout=0.0, average=0.0, synthetic=0, edit_share=0.0, styled=False),
    "cnn": Recipe(epochs=14, dropout=DEFAULT_CNN["dropout"], average=0.999, synthetic=10000,
                  edit_share=0.5, styled=True, negatives=4000, clothes=3000, pairs=1500),
}
DEFAULT_HIDDEN = "800"


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


def _ints(text: str) -> list[int]:
    return _hidden(text)


def _switches(text: str) -> list[int]:
    values = [s.strip() for s in text.split(",") if s.strip()]
    if not values or any(v not in ("0", "1") for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated 0s and 1s, got {text!r}")
    return [int(v) for v in values]


def recipe_value(args: argparse.Namespace, name: str):
    """Return flag ``name`` if given, else the architecture's recipe default."""
    value = getattr(args, name)
    if value is not None:
        return value
    recipe = RECIPES[args.arch]
    if name in ("synthetic", "edit_share", "negatives", "clothes", "pairs") and args.dataset != "mnist":
        return 0  # the strokes, edits and not-digits are about digits
    return getattr(recipe, name)


def augment_config(args: argparse.Namespace) -> AugmentConfig:
    """Return the augmentation preset (the dataset's, or STYLE for digits under a styled
    recipe) with any flags given applied."""
    preset = STYLE if RECIPES[args.arch].styled and args.dataset == "mnist" else PRESETS[args.dataset]
    overrides = {"rotate_deg": args.rotate, "scale": args.scale, "shear": args.shear,
                 "shift_px": args.shift, "elastic_alpha": args.elastic,
                 "thickness": args.thickness, "hflip": args.hflip, "aspect": args.aspect,
                 "nib": args.nib, "coarse": args.coarse, "cut": args.cut}
    return replace(preset, **{k: v for k, v in overrides.items() if v is not None})


def _pools_of(layers: list[dict]) -> list[int]:
    """Return, per convolution of a layer list, 1 if max pooling follows it, else 0."""
    return [int(i + 1 < len(layers) and layers[i + 1]["kind"] == "maxpool2d")
            for i, layer in enumerate(layers) if layer["kind"] == "conv2d"]


def build_network(args: argparse.Namespace, n_classes: int, rng: np.random.Generator) -> Network:
    """Return the freshly initialised network that ``--arch`` and its size flags describe."""
    dropout = recipe_value(args, "dropout")
    if args.arch == "mlp":
        return Network((28 * 28,), mlp_layers(args.hidden, n_classes, dropout), rng)
    if len(args.filters) != len(args.kernels) or (args.pools and len(args.pools) != len(args.filters)):
        raise argparse.ArgumentTypeError(f"--filters {args.filters}, --kernels {args.kernels} and "
                                         f"--pools {args.pools} need the same length")
    pools = args.pools
    return Network((1, 28, 28), cnn_layers(n_classes, args.filters, args.kernels, args.dense, dropout,
                                           None if pools is None else [bool(p) for p in pools]), rng)


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train.py",
        description="Train a NumPy network, calibrate it, and publish a new artifact version. "
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
    p.add_argument("--arch", choices=sorted(RECIPES), default=DEFAULT_ARCH,
                   help="convolutional network or multi-layer perceptron; each has its recipe of defaults: "
                        + "; ".join(f"{name}: {vars(r)}" for name, r in RECIPES.items()))
    p.add_argument("--filters", type=_ints, default=list(DEFAULT_CNN["filters"]),
                   help="cnn: filters of each convolution, comma-separated")
    p.add_argument("--kernels", type=_ints, default=list(DEFAULT_CNN["kernels"]),
                   help="cnn: kernel size of each convolution (odd), comma-separated")
    p.add_argument("--pools", type=_switches,
                   help="cnn: 1 to follow each convolution with 2x2 max pooling, 0 not, comma-separated "
                        "(default: after every convolution while the image stays at least 3 pixels on a side)")
    p.add_argument("--dense", type=int, default=DEFAULT_CNN["dense"],
                   help="cnn: units of the hidden dense layer (0 for none)")
    p.add_argument("--hidden", type=_hidden, default=_hidden(DEFAULT_HIDDEN),
                   help="mlp: hidden layer widths, comma-separated, e.g. 512,256")
    p.add_argument("--epochs", type=_positive_int, help="default: the recipe's")
    p.add_argument("--batch-size", type=_positive_int, default=DEFAULT_BATCH_SIZE)
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=DEFAULT_OPTIMIZER)
    p.add_argument("--lr", type=float, default=DEFAULT_LR, help="peak learning rate")
    p.add_argument("--schedule", choices=sorted(SCHEDULES), default=DEFAULT_SCHEDULE)
    p.add_argument("--weight-decay", type=float, default=DEFAULT_WEIGHT_DECAY)
    p.add_argument("--dropout", type=float, help="default: the recipe's")
    p.add_argument("--average", type=float,
                   help="decay of the weight average that is evaluated and kept, e.g. 0.999 (0: off; "
                        "default: the recipe's)")
    p.add_argument("--synthetic", type=int,
                   help="stroke-drawn digits to add to MNIST's training set (default: the recipe's)")
    p.add_argument("--edit-share", type=float,
                   help="share of MNIST's 1s and 7s added again with a flag/foot or crossbar "
                        "(default: the recipe's)")
    p.add_argument("--negatives", type=int,
                   help="stroke-drawn letters, symbols, doodles and scribbles to train as 'not a digit' "
                        "(default: the recipe's; with --clothes and --pairs all 0 the network has no such output)")
    p.add_argument("--clothes", type=int,
                   help="Fashion-MNIST training images to train as 'not a digit' (default: the recipe's)")
    p.add_argument("--pairs", type=int,
                   help="pairs of MNIST training digits side by side to train as 'not a digit' "
                        "(default: the recipe's)")
    p.add_argument("--feedback", metavar="DIR",
                   help="a feedback store (FEEDBACK_DIR of the service): fold its entries into training, "
                        "holding a share out to report accuracy on")
    p.add_argument("--feedback-holdout", type=float, default=DEFAULT_FEEDBACK_HOLDOUT,
                   help="share of the feedback entries held out for evaluation")
    p.add_argument("--target-accuracy", type=float, default=DEFAULT_TARGET_ACCURACY,
                   help="the verdict says 'uncertain' below the confidence at which validation digits "
                        "are right this often")
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
    augment.add_argument("--aspect", type=float, help="random width change, log scale (default: the preset)%(default).0s")
    augment.add_argument("--nib", type=float, help="share of pen changes with a flat nib (default: the preset)%(default).0s")
    augment.add_argument("--coarse", type=float, help="share of coarse captures, 8-16 px high (default: the preset)%(default).0s")
    augment.add_argument("--cut", type=float, help="share of digits cut by the picture's edge (default: the preset)%(default).0s")
    p.add_argument("--val-size", type=int, default=DEFAULT_VAL_SIZE)
    p.add_argument("--train-size", type=int, help="use only this many training images (quick runs)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--independent", type=int, default=DEFAULT_PER_KIND, metavar="N",
                   help="after training, evaluate on handwriting that is not MNIST's with N digits per "
                        "source and kind of upload (0: skip; digit datasets only)")
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
    p.add_argument("--independent", type=int, default=20, metavar="N",
                   help="digits per source of handwriting that is not MNIST's and kind of upload "
                        "(0: MNIST test only)")
    p.add_argument("--native-limit", type=int, default=None, metavar="N",
                   help="classify at most N digits of each source as drawn (default: all)")
    p.add_argument("--json", help="also write the independent evaluation to this JSON file")
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


def _drawing_progress(args: argparse.Namespace, total: int):
    """Return a callback showing the stroke-drawn digits' progress (None when quiet or none)."""
    if args.quiet or not total:
        return None
    from tqdm import tqdm

    bar = tqdm(total=total, desc="drawing digits", unit="digit", leave=False, dynamic_ncols=True)

    def progress(done: int) -> None:
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return progress


def _independent(predict, dataset, per_kind: int, quiet: bool, native_limit: int | None = 2000) -> dict:
    """Return the independent evaluation (``evaluation.independent``) of a digit model."""
    from evaluation.independent import evaluate as evaluate_independent
    from evaluation.independent import summary_lines

    def progress(part: str) -> None:
        if not quiet:
            print(f"  evaluating: {part}", file=sys.stderr)

    report = evaluate_independent(predict, (dataset.test_images, dataset.test_labels), per_kind=per_kind,
                                  native_limit=native_limit, progress=progress)
    print("\n".join(summary_lines(report)))
    return report


def _fold_feedback(args: argparse.Namespace, images: np.ndarray, labels: np.ndarray, n_classes: int):
    """Return the training set with the feedback entries appended (but a held-out share), the
    held-out entries, and the counts."""
    from model.feedback import load_feedback

    entries = [e for e in load_feedback(args.feedback) if e.label < n_classes]
    order = np.random.default_rng([args.seed, 6]).permutation(len(entries))
    n_out = int(round(args.feedback_holdout * len(entries)))
    heldout = [entries[i] for i in order[:n_out]]
    kept = [entries[i] for i in order[n_out:]]
    if kept:
        images = np.concatenate([images, np.stack([e.image for e in kept])])
        labels = np.concatenate([labels, np.array([e.label for e in kept], labels.dtype)])
    print(f"feedback from {args.feedback}: {len(entries)} entries, {len(kept)} trained on, "
          f"{len(heldout)} held out")
    return images, labels, heldout, {"entries": len(entries), "trained": len(kept), "heldout": len(heldout)}


def _feedback_accuracy(net: Network, n_digits: int, heldout: list, counts: dict) -> dict:
    """Return the accuracy on held-out feedback of this network and of the versions that answered."""
    out = dict(counts)
    if heldout:
        X = scale_pixels(np.stack([e.image for e in heldout]))
        y = np.array([e.label for e in heldout])
        out["heldout_accuracy"] = float((predict(net, X, n_digits, None)[0].argmax(axis=1) == y).mean())
        before = [e.predicted == e.label for e in heldout if e.predicted is not None]
        out["heldout_accuracy_before"] = float(np.mean(before)) if before else None
        print(f"held-out feedback: {100 * out['heldout_accuracy']:.2f}% right (the versions that answered: "
              + (f"{100 * out['heldout_accuracy_before']:.2f}%)" if before else "n/a)"))
    return out


def _clothes(args: argparse.Namespace, n_train: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Return Fashion-MNIST training images (train split only) to train on and to validate the
    digit score with, disjoint; (None, None) for other datasets or, when none are trained on,
    if Fashion-MNIST cannot be found."""
    if args.dataset != "mnist":
        return None, None
    try:
        fashion = load_dataset("fashion-mnist", args.data_dir, download=not args.no_download,
                               verify=not args.no_verify, progress=not args.quiet)
    except DatasetError as exc:
        if n_train:
            raise
        print(f"warning: no clothes to validate the digit score with ({exc})", file=sys.stderr)
        return None, None
    order = np.random.default_rng([args.seed, 4]).permutation(len(fashion.train_images))
    images = fashion.train_images[order]
    return images[OOD_VAL_CLOTHES:], images[:OOD_VAL_CLOTHES]


def _fit_digit_score(args: argparse.Namespace, net: Network, n_digits: int, val_images: np.ndarray,
                     val_labels: np.ndarray, clothes_val: np.ndarray | None, train_images: np.ndarray,
                     train_labels: np.ndarray) -> tuple[dict, dict, dict]:
    """Fit the digit score and the verdict's thresholds on validation data (``ood.fit_scorer``).

    Digits: the validation split as it is and restyled (``augment.STYLE``), and
    freshly drawn digits. Not-digits: freshly drawn ones, held-out clothes and
    pairs of validation digits. Nothing here was trained on.
    """
    rng = np.random.default_rng([args.seed, 3])
    styled = Augmenter(STYLE)(val_images, rng).reshape(len(val_images), -1)
    styled *= np.float32(PIXEL_SCALE)
    drawn_labels = rng.integers(0, n_digits, OOD_VAL_DRAWN)
    drawn = np.stack([draw(int(label), rng) for label in drawn_labels])
    groups = {"mnist": (scale_pixels(val_images), val_labels, FALSE_REJECT["mnist"]),
              "styled": (styled, val_labels, FALSE_REJECT["styled"]),
              "drawn": (scale_pixels(drawn), drawn_labels, FALSE_REJECT["drawn"])}
    negatives = {"drawn": scale_pixels(np.stack([draw_negative(rng) for _ in range(OOD_VAL_DRAWN)])),
                 "pairs": scale_pixels(digit_pairs(val_images, OOD_VAL_PAIRS, rng))}
    if clothes_val is not None:
        negatives["clothes"] = scale_pixels(clothes_val)
    pick = rng.choice(len(train_images), min(OOD_GAUSSIAN_FIT, len(train_images)), replace=False)
    return fit_scorer(net, n_digits, groups, negatives, scale_pixels(train_images[pick]), train_labels[pick],
                      args.target_accuracy)


def _notdigits(net: Network, n_digits: int, scorer: Scorer, raw_scorers: dict[str, Scorer], ood: dict,
               dataset, data_dir: str | None, per_kind: int, quiet: bool) -> dict:
    """Return the evaluation of digits against not-digits (``evaluation.notdigits``): the shipped
    score with its verdicts, and every method's AUROC on the same uploads."""
    from evaluation.notdigits import collect, report, summary_lines

    try:
        fashion_test = load_dataset("fashion-mnist", data_dir, download=False, progress=False).test_images
    except DatasetError:
        fashion_test = None
    collected = collect(dataset.test_images, dataset.test_labels, fashion_test, per_kind=per_kind,
                        progress=None if quiet else (lambda part: print(f"  evaluating: {part}", file=sys.stderr)))
    thresholds = Verdicts(**ood["thresholds"])
    result = report(lambda X: predict(net, X, n_digits, scorer), collected, thresholds)
    result["methods"] = {m: report(lambda X, s=s: predict(net, X, n_digits, s), collected)
                         for m, s in raw_scorers.items()}
    print("\n".join(summary_lines(result)))
    return result


def _evaluations(**parts) -> dict:
    """Return the result of each evaluation that finished; one that fails is reported and left out
    of the model card, never the reason a trained network is lost."""
    out = {}
    for name, run in parts.items():
        try:
            out[name] = run()
        except Exception as exc:  # noqa: BLE001 - an evaluation is a report, not a step of training
            print(f"warning: the {name} evaluation failed ({type(exc).__name__}: {exc}); "
                  "publishing without it", file=sys.stderr)
    return out


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

    extra_rng = np.random.default_rng([args.seed, 2])
    synthetic, edit_share = recipe_value(args, "synthetic"), recipe_value(args, "edit_share")
    train_images, train_labels, added = extend_training_set(
        train_images, train_labels, synthetic, edit_share, extra_rng, _drawing_progress(args, synthetic))
    if synthetic or edit_share:
        print(f"added {added['synthetic']} stroke-drawn digits and {added['edited']} edited 1s and 7s: "
              f"{len(train_images)} training images")

    n_digits = len(dataset.labels)
    feedback_heldout = None
    if args.feedback:
        train_images, train_labels, feedback_heldout, added["feedback"] = _fold_feedback(
            args, train_images, train_labels, n_digits)
    clothes_train, clothes_val = _clothes(args, recipe_value(args, "clothes"))
    not_digits = negative_set(recipe_value(args, "negatives"), clothes_train, recipe_value(args, "clothes"),
                              train_images[:added["mnist"]], recipe_value(args, "pairs"),
                              np.random.default_rng([args.seed, 5]))
    if len(not_digits):
        # Outlier exposure: one more output, "not a digit", and examples of it.
        train_images = np.concatenate([train_images, not_digits])
        train_labels = np.concatenate([train_labels, np.full(len(not_digits), n_digits, train_labels.dtype)])
        added["not_digits"] = len(not_digits)
        print(f"added {len(not_digits)} examples of 'not a digit': {len(train_images)} training images")

    epochs = recipe_value(args, "epochs")
    augment = None if args.no_augment else augment_config(args)
    config = TrainConfig(epochs=epochs, batch_size=args.batch_size, optimizer=args.optimizer,
                         lr=args.lr, schedule=args.schedule, weight_decay=args.weight_decay,
                         augment=augment, average=recipe_value(args, "average"), seed=args.seed)
    # One generator initialises the weights and then draws the dropout masks.
    net = build_network(args, n_digits + (1 if len(not_digits) else 0), np.random.default_rng([args.seed, 1]))
    print(f"{args.arch.upper()} {net.describe()} ({net.n_params:,} parameters), {args.optimizer} "
          f"lr {args.lr} {args.schedule}, batch {args.batch_size}, {epochs} epochs, "
          f"augment {'off' if augment is None else 'on'}, seed {args.seed}")

    on_batch, on_epoch = _progress(args, len(train_images) // args.batch_size, epochs)
    result = train(net, train_images, train_labels, val_images, val_labels, config,
                   on_batch=on_batch, on_epoch=on_epoch)

    # Calibrate on the validation split, then report on the untouched test split (digit outputs only).
    val_loss, val_accuracy, val_logits = evaluate(net, val_images, val_labels, n_digits)
    temperature = fit_temperature(val_logits, val_labels)
    _, test_accuracy, test_logits = evaluate(net, dataset.test_images, dataset.test_labels, n_digits)
    probs_before = softmax(test_logits.astype(np.float64))
    probs_after = softmax(test_logits.astype(np.float64) / temperature)
    ece_before = expected_calibration_error(probs_before, dataset.test_labels, ECE_BINS)
    ece_after = expected_calibration_error(probs_after, dataset.test_labels, ECE_BINS)
    test_loss = float(-np.log(np.maximum(
        probs_after[np.arange(len(dataset.test_labels)), dataset.test_labels], 1e-300)).mean())
    net.temperature = temperature
    cm = confusion_matrix(dataset.test_labels, test_logits.argmax(axis=1), n_digits)

    ood, ood_arrays, scorer, extra_metrics = None, {}, None, {}
    if feedback_heldout is not None:
        extra_metrics["feedback"] = _feedback_accuracy(net, n_digits, feedback_heldout, added["feedback"])
    if dataset.name == "mnist":
        ood, ood_arrays, raw_scorers = _fit_digit_score(args, net, n_digits, val_images, val_labels, clothes_val,
                                                        train_images[:added["mnist"]], train_labels[:added["mnist"]])
        scorer = Scorer(ood["method"], tuple(ood["platt"]),
                        (ood_arrays["ood.means"], ood_arrays["ood.precision"]) if ood_arrays else None)
        print(f"digit score: {ood['method']} (validation AUROC "
              f"{max(r['auroc'] for r in ood['comparison']):.4f}); not_a_digit below "
              f"{ood['thresholds']['not_a_digit_below']:.4f}, uncertain below "
              f"{ood['thresholds']['uncertain_below']:.4f}")
        if args.independent:
            extra_metrics.update(_evaluations(
                independent=lambda: _independent(lambda X: predict(net, X, n_digits, scorer)[0], dataset,
                                                 args.independent, args.quiet),
                notdigits=lambda: _notdigits(net, n_digits, scorer, raw_scorers, ood, dataset, args.data_dir,
                                             args.independent, args.quiet)))
    seconds = time.perf_counter() - started

    history = [vars(h) for h in result.history]
    metadata = build_metadata(
        net,
        name=args.name or dataset.name,
        ood=ood,
        ood_arrays=ood_arrays,
        labels=list(dataset.labels),
        dataset={"name": dataset.name, "sha256": dataset.sha256, "train_size": len(train_images),
                 "val_size": len(val_images), "test_size": len(dataset.test_images)},
        metrics={"test_accuracy": test_accuracy, "test_loss": test_loss,
                 "val_accuracy": val_accuracy, "val_loss": val_loss,
                 "ece_before": ece_before, "ece_after": ece_after,
                 "per_class_accuracy": per_class_accuracy(cm), **extra_metrics},
        training={"command": shlex.join(["python", "train.py", *argv]),
                  "config": {**config.as_dict(), "arch": args.arch, "dropout": recipe_value(args, "dropout"),
                             **({"hidden": args.hidden} if args.arch == "mlp" else
                                {"filters": args.filters, "kernels": args.kernels,
                                 "pools": _pools_of(net.spec), "dense": args.dense}),
                             "synthetic": synthetic, "edit_share": edit_share,
                             **{k: recipe_value(args, k) for k in ("negatives", "clothes", "pairs")},
                             "target_accuracy": args.target_accuracy,
                             **({"feedback": args.feedback, "feedback_holdout": args.feedback_holdout}
                                if args.feedback else {})},
                  "training_set": added,
                  "seconds": round(seconds, 1), "train_seconds": round(result.seconds, 1),
                  "epochs_run": len(history),
                  "best_epoch": result.best_epoch, "seed": args.seed,
                  "numpy": np.__version__, "python": platform.python_version(),
                  "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"},
    )

    def write(directory: Path) -> None:
        save_artifact(directory / ARTIFACT_FILE, net, metadata, ood_arrays)
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
          f"validation {100 * val_accuracy:.2f}%), {seconds:.0f}s in all ({result.seconds:.0f}s training)")
    independent = extra_metrics.get("independent")
    if independent:
        print(f"independent handwriting (not MNIST): {100 * independent['independent']['uploads_accuracy']:.2f}% "
              f"as uploads, {100 * independent['independent']['native_accuracy']:.2f}% as drawn "
              f"(mean over {', '.join(independent['independent']['sources'])})")
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
    _, accuracy, logits = evaluate(loaded.net, dataset.test_images, dataset.test_labels, len(meta.labels))
    probs = softmax(logits.astype(np.float64) / meta.temperature)
    ece = expected_calibration_error(probs, dataset.test_labels, ECE_BINS)
    cm = confusion_matrix(dataset.test_labels, logits.argmax(axis=1), len(meta.labels))
    print(f"{path}: {meta.name}, {meta.dataset.name} model, evaluated on {dataset.name} test "
          f"({len(dataset.test_labels)} images)")
    print(f"accuracy {100 * accuracy:.2f}%   ECE ({ECE_BINS} bins, T={meta.temperature:.3f}) {100 * ece:.2f}%")
    print("per-class accuracy:")
    for label, acc, n in zip(meta.labels, per_class_accuracy(cm), cm.sum(axis=1)):
        print(f"  {label:>12}  {100 * acc:6.2f}%  (n={n})")
    if args.independent and dataset.name == "mnist":
        print(f"\nhandwriting that is not MNIST's ({args.independent} digits per source and kind of upload):")
        report = _independent(loaded.predict_proba, dataset, args.independent, False, args.native_limit)
        kinds = list(next(iter(report["sources"].values()))["uploads"]["by_kind"]) if report["sources"] else []
        print("\naccuracy per kind of upload:")
        rows = ([("MNIST test", report["mnist_test"])] if "mnist_test" in report else [])
        rows += list(report["sources"].items())
        print(f"  {'kind':<22}" + "".join(f"{name[:12]:>13}" for name, _ in rows))
        for kind in kinds:
            print(f"  {kind:<22}" + "".join(f"{100 * r['uploads']['by_kind'][kind]:12.1f}%" for _, r in rows))
        print("\ndigits against not-digits, as uploads:")
        notdigits = _notdigits_of(loaded, dataset, args.data_dir, args.independent)
        if args.json:
            Path(args.json).write_text(json.dumps({**report, "notdigits": notdigits}, indent=1) + "\n")
            print(f"\nwrote {args.json}")
    return 0


def _notdigits_of(loaded, dataset, data_dir: str | None, per_kind: int) -> dict:
    """Return ``_notdigits`` for an artifact: its own score and verdicts if it has them, and the
    methods that need nothing fitted (msp, energy) for comparison."""
    meta, k = loaded.metadata, len(loaded.labels)
    raw = {m: Scorer(m, None) for m in ("msp", "energy")}
    if meta.ood is None:  # the verdicts a model without a score gets (service.digits: confidence)
        scorer = Scorer("msp", None)
        ood = {"thresholds": vars(CONFIDENCE_THRESHOLDS)}
    else:
        scorer, ood = loaded.scorer, meta.ood.model_dump()
        raw[meta.ood.method] = replace(scorer, platt=None)
    return _notdigits(loaded.net, k, scorer, raw, ood, dataset, data_dir, per_kind, False)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["evaluate"]:
            return run_evaluate(evaluate_parser().parse_args(argv[1:]))
        if argv[:1] == ["export"]:  # to ONNX, for standard runtimes (evaluation/export_cli.py)
            from evaluation.export_cli import main as export_main
            return export_main(argv[1:])
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
