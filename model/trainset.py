"""The training set: MNIST's training split, what is made from it, feedback, and "not a digit".

``build`` assembles what one run trains on, as a recipe (``recipes.Recipe``)
asks, every part drawn from generators derived from one seed:

    MNIST's training split       less a validation split (``val_size``), or the first ``train_size``
    stroke-drawn digits          ``synthetic`` of them (``strokes``)
    edited 1s and 7s             ``edit_share`` of MNIST's, written the continental way
    feedback                     users' corrections (``feedback``), less a held-out share
    "not a digit"                stroke-drawn non-digits, Fashion-MNIST training clothes, pairs and
                                 fragments of MNIST training digits (``negatives``), labelled with
                                 one class more than there are digits

``scoring_validation`` returns what the digit score is fitted and its
thresholds chosen on (``ood.fit_scorer``): validation digits as they are,
restyled and freshly drawn, and not-digits nobody trained on. Nothing here
reads an image that is not MNIST's or Fashion-MNIST's training split (the
README's data policy). NumPy only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .augment import STYLE, Augmenter
from .data import PIXEL_SCALE, Dataset, scale_pixels, split_validation
from .feedback import FeedbackEntry
from .negatives import digit_fragments, digit_pairs, draw_negative, negative_set
from .recipes import Recipe
from .strokes import draw, extend_training_set

__all__ = ["CLOTHES_HELD_OUT", "TrainingSet", "build", "scoring_validation"]

CLOTHES_HELD_OUT = 2000  # Fashion-MNIST training images kept out of training, to validate the score with
# Validation data for the digit score (all held out from training, never a test split):
SCORE_DRAWN = 2000  # stroke-drawn digits, and as many stroke-drawn non-digits
SCORE_PAIRS = 1000  # pairs of validation digits
SCORE_FRAGMENTS = 1000  # fragments of validation digits
# The share of each group of validation digits the verdict may call "not_a_digit".
FALSE_REJECT = {"mnist": 0.005, "styled": 0.01, "drawn": 0.01}


@dataclass
class TrainingSet:
    """What one run trains and validates on; the images uint8 (n, 28, 28)."""

    images: np.ndarray
    labels: np.ndarray  # digits 0..n_digits-1, and n_digits for "not a digit"
    n_digits: int
    val_images: np.ndarray
    val_labels: np.ndarray
    n_mnist: int  # the first n_mnist images are MNIST's own training digits
    counts: dict = field(default_factory=dict)  # how many of each part (for the model card)
    heldout_feedback: list[FeedbackEntry] | None = None  # feedback held out to report accuracy on
    clothes_val: np.ndarray | None = None  # Fashion-MNIST training images not trained on

    @property
    def n_outputs(self) -> int:
        """Return the network's outputs: the digits, and "not a digit" when it has examples."""
        return self.n_digits + (1 if self.counts.get("not_digits") else 0)


def build(recipe: Recipe, dataset: Dataset, seed: int, fashion: Dataset | None = None,
          feedback: list[FeedbackEntry] | None = None, feedback_holdout: float = 0.2,
          train_size: int | None = None, progress: Callable[[int], None] | None = None) -> TrainingSet:
    """Return the training set ``recipe`` asks for (``fashion``: Fashion-MNIST, for the clothes;
    ``feedback``: stored entries to fold in; ``progress``: called with stroke-drawn digits made)."""
    images, labels, val_images, val_labels = split_validation(dataset.train_images, dataset.train_labels,
                                                              recipe.val_size, seed)
    if train_size:
        images, labels = images[:train_size], labels[:train_size]
    n_digits, n_mnist = len(dataset.labels), len(images)
    images, labels, counts = extend_training_set(images, labels, recipe.synthetic, recipe.edit_share,
                                                 np.random.default_rng([seed, 2]), progress)
    heldout = None
    if feedback is not None:
        entries = [e for e in feedback if e.label < n_digits]
        order = np.random.default_rng([seed, 6]).permutation(len(entries))
        n_out = int(round(feedback_holdout * len(entries)))
        heldout = [entries[i] for i in order[:n_out]]
        kept = [entries[i] for i in order[n_out:]]
        if kept:
            images = np.concatenate([images, np.stack([e.image for e in kept])])
            labels = np.concatenate([labels, np.array([e.label for e in kept], labels.dtype)])
        counts["feedback"] = {"entries": len(entries), "trained": len(kept), "heldout": len(heldout)}
    clothes_train = clothes_val = None
    if fashion is not None:
        order = np.random.default_rng([seed, 4]).permutation(len(fashion.train_images))
        shuffled = fashion.train_images[order]
        clothes_train, clothes_val = shuffled[CLOTHES_HELD_OUT:], shuffled[:CLOTHES_HELD_OUT]
    elif recipe.clothes:
        counts["clothes_missing"] = True  # said in the model card: no Fashion-MNIST, no clothes
    rng = np.random.default_rng([seed, 5])
    not_digits = negative_set(recipe.negatives, clothes_train, recipe.clothes, images[:n_mnist], recipe.pairs, rng)
    if recipe.fragments:
        not_digits = np.concatenate([not_digits, digit_fragments(images[:n_mnist], recipe.fragments,
                                                                 np.random.default_rng([seed, 7]))])
    if len(not_digits):
        images = np.concatenate([images, not_digits])
        labels = np.concatenate([labels, np.full(len(not_digits), n_digits, labels.dtype)])
        counts["not_digits"] = len(not_digits)
    return TrainingSet(images, labels, n_digits, val_images, val_labels, n_mnist, counts, heldout, clothes_val)


def scoring_validation(data: TrainingSet, seed: int) -> tuple[dict, dict]:
    """Return (digit groups, not-digit families) to fit the digit score on (``ood.fit_scorer``).

    Digits, as (float32 inputs, labels, the share the verdict may reject): the
    validation split as it is and restyled (``augment.STYLE``), and freshly
    drawn digits. Not-digits, float32 inputs by family: freshly drawn ones,
    pairs and fragments of validation digits, and held-out clothes. Nothing
    here was trained on.
    """
    rng = np.random.default_rng([seed, 3])
    val = data.val_images
    styled = Augmenter(STYLE)(val, rng).reshape(len(val), -1)
    styled *= np.float32(PIXEL_SCALE)
    drawn_labels = rng.integers(0, data.n_digits, SCORE_DRAWN)
    drawn = np.stack([draw(int(label), rng) for label in drawn_labels])
    groups = {"mnist": (scale_pixels(val), data.val_labels, FALSE_REJECT["mnist"]),
              "styled": (styled, data.val_labels, FALSE_REJECT["styled"]),
              "drawn": (scale_pixels(drawn), drawn_labels, FALSE_REJECT["drawn"])}
    negatives = {"drawn": scale_pixels(np.stack([draw_negative(rng) for _ in range(SCORE_DRAWN)])),
                 "pairs": scale_pixels(digit_pairs(val, SCORE_PAIRS, rng)),
                 "fragments": scale_pixels(digit_fragments(val, SCORE_FRAGMENTS, rng))}
    if data.clothes_val is not None:
        negatives["clothes"] = scale_pixels(data.clothes_val)
    return groups, negatives
