"""Whether an input is a digit the model knows: scores, their calibration, the verdict.

Every prediction also says how much its input looks like a handwritten digit
the model can read (``digit_score`` in [0, 1]) and a verdict: ``digit``,
``uncertain`` (a digit, but the model is torn between two) or
``not_a_digit``. Four raw scores are implemented and compared (train.py puts
the comparison in the model card); higher always means "more like a digit":

    msp          the maximum softmax probability over the digits (Hendrycks & Gimpel 2017)
    energy       log-sum-exp of the digit logits (Liu et al. 2020)
    mahalanobis  minus the smallest Mahalanobis distance of the penultimate features to a class
                 mean, one covariance shared by the classes (Lee et al. 2018)
    outlier      log p(digit) from a network trained with an extra "not a digit" output on
                 examples of things that are not digits (outlier exposure, Hendrycks et al. 2019)

A raw score becomes ``digit_score = sigmoid(a * raw + b)``, with ``a`` and
``b`` fitted on validation digits and non-digits (Platt scaling): monotone,
so it ranks exactly as the raw score does, and 0.5 where the two are equally
likely on that data. The verdict's thresholds are chosen on validation data
too, never on a test set (``choose_thresholds``). NumPy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CONFIDENCE_THRESHOLDS", "METHODS", "Verdicts", "auroc", "calibrated", "choose_thresholds", "fit_gaussians", "fit_platt",
           "fit_scorer", "fpr_at_tpr", "raw_scores", "Scorer", "verdicts"]

METHODS = ("msp", "energy", "mahalanobis", "outlier")
VERDICTS = ("digit", "uncertain", "not_a_digit")


def _logsumexp(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]


def raw_scores(method: str, logits: np.ndarray, n_digits: int, temperature: float = 1.0,
               features: np.ndarray | None = None, gaussians: tuple[np.ndarray, np.ndarray] | None = None
               ) -> np.ndarray:
    """Return the raw "digit-ness" of each row (higher: more like a known digit), float64 (n,).

    Parameters
    ----------
    logits : (n, n_digits) or, with an outlier output, (n, n_digits + 1).
    features : (n, d) penultimate activations, for ``mahalanobis``.
    gaussians : (means (k, d), shared precision (d, d)) from ``fit_gaussians``.
    """
    z = logits.astype(np.float64)
    digits = z[:, :n_digits] / temperature
    if method == "msp":
        return np.exp(digits.max(axis=1) - _logsumexp(digits))
    if method == "energy":
        return _logsumexp(digits)
    if method == "outlier":
        if z.shape[1] != n_digits + 1:
            raise ValueError("the outlier score needs a network with a 'not a digit' output")
        return _logsumexp(z[:, :n_digits]) - _logsumexp(z)  # log p(any digit)
    if method == "mahalanobis":
        if features is None or gaussians is None:
            raise ValueError("the mahalanobis score needs features and fitted gaussians")
        means, precision = gaussians
        # (x - m)' P (x - m) = x'Px - 2 x'Pm + m'Pm for every class mean m: one (n, d) x (d, d)
        # product for all classes, not one per class.
        X = features.astype(np.float64)
        XP = X @ precision
        distances = (np.einsum("nd,nd->n", XP, X)[:, None] - 2.0 * XP @ means.T
                     + np.einsum("kd,de,ke->k", means, precision, means)[None, :])
        return -distances.min(axis=1)
    raise ValueError(f"unknown method {method!r}; known: {METHODS}")


def fit_gaussians(features: np.ndarray, labels: np.ndarray, n_classes: int,
                  shrinkage: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Return class means (k, d) and the shared precision matrix (d, d) of ``features``.

    The covariance is shrunk towards its diagonal's mean (``shrinkage``), so
    it stays invertible when some features are nearly constant (dead ReLUs).
    """
    X = features.astype(np.float64)
    means = np.stack([X[labels == c].mean(axis=0) for c in range(n_classes)])
    centred = X - means[labels]
    cov = centred.T @ centred / len(X)
    target = np.trace(cov) / len(cov)
    cov = (1.0 - shrinkage) * cov + shrinkage * target * np.eye(len(cov))
    return means, np.linalg.inv(cov)


def fit_platt(raw: np.ndarray, is_digit: np.ndarray, iterations: int = 100) -> tuple[float, float]:
    """Return (a, b) of ``sigmoid(a * raw + b)`` fitted by maximum likelihood (Newton's method),
    with the two classes weighted equally."""
    x = raw.astype(np.float64)
    y = is_digit.astype(np.float64)
    mu, sd = x.mean(), x.std() or 1.0
    x = (x - mu) / sd  # fitted on a standard scale, converted back below
    w = np.where(y == 1, 0.5 / max(y.sum(), 1), 0.5 / max(len(y) - y.sum(), 1))
    a, b = 1.0, 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(a * x + b)))
        g = np.array([(w * (p - y) * x).sum(), (w * (p - y)).sum()])
        s = w * p * (1 - p)
        H = np.array([[(s * x * x).sum(), (s * x).sum()], [(s * x).sum(), s.sum()]]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(H, g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    return float(a / sd), float(b - a * mu / sd)


def calibrated(raw: np.ndarray, a: float, b: float) -> np.ndarray:
    """Return ``sigmoid(a * raw + b)`` in [0, 1], float32 (numerically stable)."""
    t = np.clip(a * raw.astype(np.float64) + b, -60.0, 60.0)
    return (1.0 / (1.0 + np.exp(-t))).astype(np.float32)


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Return the area under the ROC curve: P(score of a positive > score of a negative),
    ties counting half (the Mann-Whitney statistic)."""
    scores = np.concatenate([positive, negative])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    sorted_scores = scores[order]
    # Average the ranks of ties.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    for start, count in zip(first[counts > 1], counts[counts > 1]):
        ranks[order[start:start + count]] = ranks[order[start:start + count]].mean()
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@dataclass(frozen=True)
class Verdicts:
    """The two thresholds of the verdict (both on [0, 1])."""

    not_a_digit_below: float  # digit_score under this: "not_a_digit"
    uncertain_below: float  # otherwise, a top probability under this: "uncertain"


# For a model without a fitted score (artifacts made before it): its confidence (the maximum
# softmax probability) stands in for the digit score, it never says "not_a_digit" (it cannot
# tell), and a top probability under 0.9 is "uncertain".
CONFIDENCE_THRESHOLDS = Verdicts(not_a_digit_below=0.0, uncertain_below=0.9)


def choose_thresholds(digit_groups: dict[str, tuple[np.ndarray, float]], top_probs: np.ndarray,
                      correct: np.ndarray, target_accuracy: float = 0.995) -> Verdicts:
    """Return thresholds chosen on validation digits.

    ``digit_groups`` maps a group of validation digits to (their digit scores,
    the share of them that may be rejected): ``not_a_digit_below`` is the
    lowest of the groups' quantiles, so no group loses more than its share.
    ``uncertain_below`` is the lowest top probability such that the accepted
    digits (all groups, in the order of ``top_probs`` and ``correct``)
    answered "digit" above it are right at least ``target_accuracy`` of the time.
    """
    reject = min(float(np.quantile(scores, share)) for scores, share in digit_groups.values())
    accepted = np.concatenate([scores for scores, _ in digit_groups.values()]) >= reject
    probs, right = top_probs[accepted], correct[accepted]
    order = np.argsort(probs, kind="stable")[::-1]  # most confident first
    running = np.cumsum(right[order]) / np.arange(1, len(order) + 1)
    ok = np.flatnonzero(running >= target_accuracy)
    uncertain = float(probs[order][ok[-1]]) if ok.size else 1.0
    return Verdicts(not_a_digit_below=reject, uncertain_below=min(uncertain, 0.999))


def verdicts(digit_scores: np.ndarray, top_probs: np.ndarray, thresholds: Verdicts) -> list[str]:
    """Return the verdict of each answer."""
    out = []
    for score, p in zip(digit_scores.tolist(), top_probs.tolist()):
        if score < thresholds.not_a_digit_below:
            out.append("not_a_digit")
        elif p < thresholds.uncertain_below:
            out.append("uncertain")
        else:
            out.append("digit")
    return out


def fpr_at_tpr(positive: np.ndarray, negative: np.ndarray, tpr: float = 0.95) -> float:
    """Return the share of negatives scored above the threshold that keeps ``tpr`` of positives."""
    threshold = np.quantile(positive, 1.0 - tpr)
    return float((negative >= threshold).mean())


@dataclass(frozen=True)
class Scorer:
    """A fitted digit score: ``sigmoid(a * raw + b)`` of one method's raw score."""

    method: str
    platt: tuple[float, float] | None  # None: the raw score itself (to compare methods by rank)
    gaussians: tuple[np.ndarray, np.ndarray] | None = None  # mahalanobis: (means, precision)

    def __call__(self, logits: np.ndarray, n_digits: int, temperature: float,
                 features: np.ndarray | None = None) -> np.ndarray:
        raw = raw_scores(self.method, logits, n_digits, temperature, features, self.gaussians)
        return raw if self.platt is None else calibrated(raw, *self.platt)


def fit_scorer(net, n_digits: int, digit_groups: dict[str, tuple[np.ndarray, np.ndarray, float]],
               negatives: dict[str, np.ndarray], gaussian_inputs: np.ndarray, gaussian_labels: np.ndarray,
               target_accuracy: float = 0.995) -> tuple[dict, dict[str, np.ndarray], dict[str, Scorer]]:
    """Compare every method on validation data, keep the best, and fit its score and verdict.

    Parameters
    ----------
    net : the trained ``Network`` (temperature set); with ``n_digits + 1``
        outputs when trained with a "not a digit" output.
    digit_groups : validation digits by group: (float32 (n, 784), labels, the
        share of the group the verdict may call "not_a_digit").
    negatives : validation non-digits by family, float32 (m, 784) each.
    gaussian_inputs, gaussian_labels : training digits the Mahalanobis
        Gaussians are fitted on.

    Returns
    -------
    (the artifact's ``ood`` block as a dict, with the comparison of the methods
    on this data; the arrays the chosen method needs; every method's raw
    ``Scorer``, to compare them on other data)
    """
    outlier_output = net.n_outputs == n_digits + 1
    T = net.temperature
    digits = {g: net.infer(X, features=True) for g, (X, _, _) in digit_groups.items()}
    labels = np.concatenate([y for _, y, _ in digit_groups.values()])
    negative_outputs = {family: net.infer(x, features=True) for family, x in negatives.items()}
    gaussians = fit_gaussians(net.infer(gaussian_inputs, features=True)[1], gaussian_labels, n_digits)
    comparison, raws = [], {}
    for method in METHODS:
        if method == "outlier" and not outlier_output:
            continue
        raw_d = {g: raw_scores(method, lg, n_digits, T, ft, gaussians) for g, (lg, ft) in digits.items()}
        raw_n = {f: raw_scores(method, lg, n_digits, T, ft, gaussians) for f, (lg, ft) in negative_outputs.items()}
        all_d, all_n = np.concatenate(list(raw_d.values())), np.concatenate(list(raw_n.values()))
        row = {"method": method, "auroc": auroc(all_d, all_n), "fpr_at_95_tpr": fpr_at_tpr(all_d, all_n)}
        row.update({f"auroc_{f}": auroc(all_d, r) for f, r in raw_n.items()})
        comparison.append(row)
        raws[method] = (raw_d, all_n)
    best = max(comparison, key=lambda r: r["auroc"])["method"]
    raw_d, raw_n = raws[best]
    all_d = np.concatenate(list(raw_d.values()))
    everything = np.concatenate([all_d, raw_n])
    a, b = fit_platt(everything, np.r_[np.ones(len(all_d)), np.zeros(len(raw_n))])
    if not a > 0:
        # Not even the best method ranks digits above not-digits here (a model that has not
        # learnt the difference): keep a valid, increasing map, the raw score standardised; the
        # comparison's AUROCs (below 0.5) say what it is worth.
        spread = float(everything.std()) or 1.0
        a, b = 1.0 / spread, -float(everything.mean()) / spread
    z = np.concatenate([lg for lg, _ in digits.values()])[:, :n_digits].astype(np.float64) / T
    probs = np.exp(z - z.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    groups = {g: (calibrated(raw_d[g], a, b), share) for g, (_, _, share) in digit_groups.items()}
    chosen = choose_thresholds(groups, probs.max(axis=1), probs.argmax(axis=1) == labels, target_accuracy)
    block = {"method": best, "platt": [a, b], "outlier_output": outlier_output,
             "thresholds": {"not_a_digit_below": chosen.not_a_digit_below,
                            "uncertain_below": chosen.uncertain_below},
             "comparison": comparison}
    arrays = ({"ood.means": gaussians[0].astype(np.float32), "ood.precision": gaussians[1].astype(np.float32)}
              if best == "mahalanobis" else {})
    raw_scorers = {row["method"]: Scorer(row["method"], None, gaussians if row["method"] == "mahalanobis" else None)
                   for row in comparison}
    return block, arrays, raw_scorers
