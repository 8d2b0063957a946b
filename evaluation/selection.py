"""Choosing a recipe by what it does on handwriting it was not chosen on: leave one source out.

    python -m evaluation.selection --data-dir ../shared/datasets              # every candidate, 6 epochs each
    python -m evaluation.selection --candidates base,scanned --epochs 3       # a quicker look

Each candidate is the CNN recipe as it was before this choice (``BEFORE``:
``augment.STYLE``, no fragments) with some settings changed
(``CANDIDATES``); the bundled recipe (``model.recipes``) is the one chosen,
``scanned_more`` with fragments (which the digits' figures do not choose:
they are for ``/v1/read``, and cost nothing here). Each is trained the same short way (``--epochs``,
one seed) on the same training set as ``train.py`` would build, then judged
on every source of handwriting that is not MNIST's (``evaluation.handwriting``),
each as drawn and as scanning systems stored digits (``scans``), put into
MNIST's form by the service's preprocessing: one figure per source, the mean
over its styles.

Then the sources are the folds: for each source held out, the candidate with
the best mean over the *other* sources is the one that fold would choose, and
what counts is that choice's figure on the held-out source against the
baseline's. A change is adopted only if it helps on held-out sources, not
only on the sources it was chosen on. The table (every candidate on every
source, and each fold's choice) is printed, and written to
``--out`` as JSON with every figure; trained candidates are cached there
too, so a rerun only trains what is new. MNIST's test split is reported for
reference and never used to choose.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from model.data import DatasetError, load_dataset
from model.inference import Predictor
from model.augment import STYLE
from model.recipes import RECIPES
from model.training import evaluate as evaluate_split
from model.training import train
from model import trainset

from .card import text_table
from .handwriting import SOURCES, SourceUnavailable, load_source
from .independent import scanned

__all__ = ["BEFORE", "CANDIDATES", "choose", "main"]

# Settings changed from the CNN recipe, by candidate name (augmentation settings under "augment").
CANDIDATES: dict[str, dict] = {
    "base": {},
    "filled": {"augment": {"fill": 0.15}},
    "scanned": {"augment": {"fill": 0.15, "binarize": 0.1, "bold": 0.05, "coarse": 0.2}},
    "scanned_more": {"augment": {"fill": 0.25, "binarize": 0.15, "bold": 0.1, "coarse": 0.25}},
    "scanned_smooth": {"label_smoothing": 0.1, "augment": {"fill": 0.15, "binarize": 0.1, "bold": 0.05, "coarse": 0.2}},
    "scanned_wide": {"filters": (16, 32, 128), "augment": {"fill": 0.15, "binarize": 0.1, "bold": 0.05, "coarse": 0.2}},
    "scanned_fragments": {"fragments": 1500, "augment": {"fill": 0.15, "binarize": 0.1, "bold": 0.05, "coarse": 0.2}},
}
# The CNN recipe the candidates change: the bundled one without what this choice added.
BEFORE = replace(RECIPES["cnn"], augment=STYLE, fragments=0)
PER_SOURCE = 600  # digits of each source judged (a random sample, the same for every candidate)


def recipe_of(name: str, epochs: int):
    """Return the CNN recipe with candidate ``name``'s changes and ``epochs``."""
    changes = dict(CANDIDATES[name])
    recipe = BEFORE
    if "augment" in changes:
        recipe = replace(recipe, augment=replace(recipe.augment, **changes.pop("augment")))
    return replace(recipe, epochs=epochs, **changes)


def judge(name: str, epochs: int, data_dir: str | None, seed: int = 0) -> dict:
    """Train candidate ``name`` and return its figure on every source (and MNIST test)."""
    recipe = recipe_of(name, epochs)
    dataset = load_dataset("mnist", data_dir, download=False, progress=False)
    try:
        fashion = load_dataset("fashion-mnist", data_dir, download=False, progress=False)
    except DatasetError:
        fashion = None
    data = trainset.build(recipe, dataset, seed, fashion)
    net = recipe.network(data.n_outputs, np.random.default_rng([seed, 1]))
    started = time.perf_counter()
    train(net, data.images, data.labels, data.val_images, data.val_labels, recipe.training(seed))
    predictor = Predictor(net, data.n_digits)
    sources = {}
    for source in SOURCES:
        try:
            digits = load_source(source, PER_SOURCE, seed)
        except SourceUnavailable:
            continue
        styles = scanned(predictor, digits.images, digits.labels)
        sources[source] = {"accuracy": float(np.mean(list(styles.values()))), "styles": styles}
    return {"candidate": name, "changes": {k: v for k, v in CANDIDATES[name].items()}, "epochs": epochs,
            "seconds": round(time.perf_counter() - started, 1), "sources": sources,
            "mnist_test": evaluate_split(net, dataset.test_images, dataset.test_labels, data.n_digits)[1]}


def choose(results: dict[str, dict], baseline: str = "base") -> list[dict]:
    """Return, for each source held out, the candidate the other sources choose and what it does
    on the held-out source against ``baseline``."""
    sources = sorted(set.intersection(*(set(r["sources"]) for r in results.values())))
    folds = []
    for held_out in sources:
        others = [s for s in sources if s != held_out]
        chosen = max(results, key=lambda c: np.mean([results[c]["sources"][s]["accuracy"] for s in others]))
        folds.append({"held_out": held_out, "chosen": chosen,
                      "chosen_accuracy": results[chosen]["sources"][held_out]["accuracy"],
                      "baseline_accuracy": results[baseline]["sources"][held_out]["accuracy"]})
    return folds


def _report(results: dict[str, dict], folds: list[dict]) -> str:
    sources = sorted(set.intersection(*(set(r["sources"]) for r in results.values())))
    rows = []
    for name, r in results.items():
        figures = [r["sources"][s]["accuracy"] for s in sources]
        rows.append([name, *(f"{100 * f:.2f}%" for f in [*figures, np.mean(figures), r["mnist_test"]])])
    lines = [text_table(["candidate", *sources, "mean", "MNIST test"], rows), ""]
    lines.append("leave one source out: the candidate the other sources choose, on the source held out")
    for f in folds:
        delta = 100 * (f["chosen_accuracy"] - f["baseline_accuracy"])
        lines.append(f"  held out {f['held_out']:<13} chosen {f['chosen']:<16} {100 * f['chosen_accuracy']:.2f}% "
                     f"(baseline {100 * f['baseline_accuracy']:.2f}%, {delta:+.2f} points)")
    helped = sum(f["chosen_accuracy"] > f["baseline_accuracy"] for f in folds)
    lines.append(f"the choice helps on {helped} of {len(folds)} held-out sources")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--data-dir")
    parser.add_argument("--out", default="bench/out/selection", help="where figures (and the cache) go")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = args.candidates.split(",")
    if "base" not in names:
        names.insert(0, "base")
    results = {}
    for name in names:
        cached = out / f"{name}-{args.epochs}.json"
        if cached.is_file():
            results[name] = json.loads(cached.read_text())
            continue
        print(f"training {name} ({args.epochs} epochs)...", file=sys.stderr)
        results[name] = judge(name, args.epochs, args.data_dir)
        cached.write_text(json.dumps(results[name], indent=1) + "\n")
    folds = choose(results)
    print(_report(results, folds))
    (out / "selection.json").write_text(json.dumps({"results": results, "folds": folds}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
