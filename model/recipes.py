"""Training recipes: one typed object per way of training a network.

A ``Recipe`` holds every value one training run is made of: the network,
the optimiser, the training set's extra parts and the augmentation. Each
field is a flag of ``train.py`` (``add_flags`` derives them, with the help
text kept beside the field), so a setting and its default exist once, here:

    RECIPES["cnn"]      the bundled default: a small convolutional network, trained for
                        handwriting beyond MNIST's (stroke-drawn digits, styles, "not a digit")
    RECIPES["mlp"]      the original 784-800-10 perceptron (version 1)

``recipe.for_dataset(name)`` adapts a recipe to a dataset (the digit-only
parts are dropped for Fashion-MNIST, which gets its own augmentation), and
``with_flags`` applies what the command line changed. NumPy only.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Literal

import numpy as np

from .augment import PRESETS, SCANNED, AugmentConfig
from .network import DEFAULT_CNN, Network, cnn_layers, mlp_layers
from .optimizers import OPTIMIZERS, SCHEDULES
from .training import TrainConfig

__all__ = ["RECIPES", "Recipe", "add_flags", "with_flags"]


def _f(default, help: str, flag: str | None = None):
    """A field with its flag's help text (and its flag name, if not the field's)."""
    return field(default=default, metadata={"help": help, "flag": flag})


@dataclass(frozen=True)
class Recipe:
    """Everything one training run is made of (``train.py`` has a flag for each field)."""

    arch: Literal["cnn", "mlp"] = _f("cnn", "convolutional network or multi-layer perceptron")
    # -- the network --------------------------------------------------------------------------
    filters: tuple[int, ...] = _f(DEFAULT_CNN["filters"], "cnn: filters of each convolution")
    kernels: tuple[int, ...] = _f(DEFAULT_CNN["kernels"], "cnn: kernel size of each convolution (odd)")
    pools: tuple[int, ...] | None = _f(None, "cnn: 1 to follow each convolution with 2x2 max pooling, 0 not "
                                             "(default: after every convolution while the image stays at least "
                                             "3 pixels on a side)")
    dense: int = _f(DEFAULT_CNN["dense"], "cnn: units of the hidden dense layer (0 for none)")
    hidden: tuple[int, ...] = _f((800,), "mlp: hidden layer widths")
    dropout: float = _f(0.0, "dropout before the output layer (cnn) or after each hidden layer (mlp)")
    # -- the optimisation ----------------------------------------------------------------------
    epochs: int = _f(14, "passes over the training set")
    batch_size: int = _f(128, "examples per step")
    optimizer: str = _f("adamw", "optimizer: " + ", ".join(sorted(OPTIMIZERS)))
    lr: float = _f(2e-3, "peak learning rate")
    schedule: str = _f("onecycle", "learning-rate schedule: " + ", ".join(sorted(SCHEDULES)))
    weight_decay: float = _f(1e-4, "decoupled weight decay (weights only)")
    average: float = _f(0.0, "decay of the weight average that is evaluated and kept, e.g. 0.999 (0: off)")
    label_smoothing: float = _f(0.0, "share of each target spread over the other classes")
    # -- the training set ----------------------------------------------------------------------
    synthetic: int = _f(0, "stroke-drawn digits added to MNIST's training split (model.strokes)")
    edit_share: float = _f(0.0, "share of MNIST's 1s and 7s added again with a flag/foot or crossbar")
    negatives: int = _f(0, "stroke-drawn letters, symbols, doodles and scribbles trained as 'not a digit' "
                           "(with clothes, pairs and fragments all 0 the network has no such output)")
    clothes: int = _f(0, "Fashion-MNIST training images trained as 'not a digit'")
    pairs: int = _f(0, "pairs of MNIST training digits side by side trained as 'not a digit'")
    fragments: int = _f(0, "MNIST training digits with part of a neighbour attached (what a misplaced cut "
                           "through a number leaves) trained as 'not a digit'")
    augment: AugmentConfig | None = _f(SCANNED, "")  # flags per AugmentConfig field; --no-augment: None
    # -- validation and calibration ------------------------------------------------------------
    val_size: int = _f(5000, "training images held out for validation, calibration and the digit score")
    target_accuracy: float = _f(0.995, "the verdict says 'uncertain' below the confidence at which validation "
                                       "digits are right this often")
    independent: int = _f(5, "after training, evaluate on handwriting that is not MNIST's and on not-digits "
                             "with this many images per source and kind of upload (0: skip)")

    def for_dataset(self, name: str) -> Recipe:
        """Return this recipe for dataset ``name``: strokes, edits and not-digits are about digits,
        so another dataset trains without them, with its own augmentation preset."""
        if name == "mnist":
            return self
        return replace(self, synthetic=0, edit_share=0.0, negatives=0, clothes=0, pairs=0, fragments=0,
                       augment=None if self.augment is None else PRESETS[name])

    @property
    def not_digits(self) -> int:
        """Return how many examples of "not a digit" the training set gets (0: no such output)."""
        return self.negatives + self.clothes + self.pairs + self.fragments

    def network(self, n_outputs: int, rng: np.random.Generator) -> Network:
        """Return the freshly initialised network this recipe describes."""
        if self.arch == "mlp":
            return Network((28 * 28,), mlp_layers(self.hidden, n_outputs, self.dropout), rng)
        pools = None if self.pools is None else [bool(p) for p in self.pools]
        return Network((1, 28, 28), cnn_layers(n_outputs, self.filters, self.kernels, self.dense, self.dropout,
                                               pools), rng)

    def training(self, seed: int) -> TrainConfig:
        """Return the training loop's configuration."""
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, optimizer=self.optimizer, lr=self.lr,
                           schedule=self.schedule, weight_decay=self.weight_decay, augment=self.augment,
                           average=self.average, label_smoothing=self.label_smoothing, seed=seed)

    def as_dict(self) -> dict:
        """Return every value, for the artifact's metadata (the network's size fields of its kind only)."""
        out = dataclasses.asdict(self)
        out["augment"] = self.augment.as_dict() if self.augment else None
        for name in ("filters", "kernels", "pools", "dense") if self.arch == "mlp" else ("hidden",):
            out.pop(name)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


RECIPES = {
    # The original MLP recipe (artifacts/mnist/1): affine, elastic and stroke-width augmentation.
    "mlp": Recipe(arch="mlp", epochs=60, augment=PRESETS["mnist"], independent=0),
    # The bundled default: handwriting beyond MNIST's, as written and as scanned, and "not a digit"
    # (fragments: what a misplaced cut through a whole number leaves, for /v1/read).
    "cnn": Recipe(arch="cnn", epochs=14, dropout=DEFAULT_CNN["dropout"], average=0.999, synthetic=10000,
                  edit_share=0.5, negatives=4000, clothes=3000, pairs=1500, fragments=1500, augment=SCANNED),
}


# -- flags ------------------------------------------------------------------------------------

_AUGMENT_FLAGS = {"rotate_deg": "rotate", "shift_px": "shift", "elastic_alpha": "elastic"}


def _parse_ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    return values


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
        return value
    return parse


def _flag_type(annotation, name: str):
    """Return (argparse type, extra add_argument options) for a field's annotation."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is bool:
        return None, {"action": argparse.BooleanOptionalAction}
    if origin is Literal:
        return None, {"choices": list(args)}
    if annotation is int:
        return (_positive(int) if name in ("epochs", "batch_size") else int), {}
    if annotation is float:
        return float, {}
    if annotation is str:
        return str, {}
    return _parse_ints, {"metavar": "N,N,..."}  # tuple[int, ...] (possibly | None)


def _shown(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _escape(text: str) -> str:
    return text.replace("%", "%%")  # argparse formats help strings with %


def _fields(cls) -> dict[str, dataclasses.Field]:
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in fields(cls)}


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Add a flag for every ``Recipe`` field and every augmentation setting (default None: the
    recipe's value; ``--arch`` picks the recipe)."""
    for name, (f, annotation) in _fields(Recipe).items():
        if name == "augment":
            continue
        kind, extra = _flag_type(annotation, name)
        if name == "arch":
            parser.add_argument("--arch", choices=sorted(RECIPES), default="cnn",
                                help="the recipe: " + "; ".join(f"{n}: {RECIPES[n].arch} network, "
                                                                 f"{RECIPES[n].epochs} epochs" for n in RECIPES))
            continue
        defaults = "; ".join(f"{n}: {_shown(getattr(r, name))}" for n, r in RECIPES.items())
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None,
                            help=_escape(f"{f.metadata['help']} (default: the recipe's, {defaults})"), **extra)
    group = parser.add_argument_group("augmentation", _escape(
        "each defaults to the recipe's (the CNN's: " + ", ".join(f"{k}={v}" for k, v in SCANNED.as_dict().items()) + ")"))
    group.add_argument("--no-augment", action="store_true", help="train on the images as they are")
    for name, (f, annotation) in _fields(AugmentConfig).items():
        kind, extra = _flag_type(annotation, name)
        flag = _AUGMENT_FLAGS.get(name, name).replace("_", "-")
        if not extra:
            extra = {"metavar": flag.upper().replace("-", "_")}
        group.add_argument(f"--{flag}", dest=f"augment_{name}", type=kind, default=None,
                           help=_escape(f.metadata.get("help") or name.replace("_", " ")), **extra)


def with_flags(args: argparse.Namespace) -> Recipe:
    """Return the recipe ``args.arch`` names, for ``args.dataset``, with the flags given applied."""
    recipe = RECIPES[args.arch].for_dataset(getattr(args, "dataset", "mnist"))
    changed = {name: getattr(args, name) for name in _fields(Recipe)
               if name not in ("arch", "augment") and getattr(args, name, None) is not None}
    augment = {name: getattr(args, f"augment_{name}") for name in _fields(AugmentConfig)
               if getattr(args, f"augment_{name}", None) is not None}
    recipe = replace(recipe, **changed)
    if getattr(args, "no_augment", False):
        return replace(recipe, augment=None)
    if augment:
        recipe = replace(recipe, augment=replace(recipe.augment or PRESETS["mnist"], **augment))
    if recipe.arch == "cnn" and (len(recipe.kernels) != len(recipe.filters)
                                 or (recipe.pools is not None and len(recipe.pools) != len(recipe.filters))):
        raise argparse.ArgumentTypeError(f"--filters {list(recipe.filters)}, --kernels {list(recipe.kernels)} "
                                         f"and --pools {recipe.pools} need the same length")
    return recipe
