"""Model cards and plots written beside each artifact, and the tables they share with the CLI.

``write_model_card`` produces ``model-card.json`` (everything, machine-readable),
``model-card.md`` (the same for people) and two PNGs: training/validation
curves and the test-set confusion matrix. matplotlib is imported lazily with
the headless Agg backend, so nothing here needs a display.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from model.artifact import ArtifactMetadata

from . import independent as independent_report

__all__ = ["confusion_matrix", "markdown_table", "per_class_accuracy", "record_export", "text_table",
           "write_model_card"]

CURVES_PNG = "curves.png"
CONFUSION_PNG = "confusion.png"
EXPORTS_HEADING = "## Exports"


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """Return the (k, k) count matrix with true classes as rows."""
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def per_class_accuracy(cm: np.ndarray) -> list[float]:
    """Return the recall of each class from a confusion matrix."""
    totals = cm.sum(axis=1)
    return [float(cm[i, i] / totals[i]) if totals[i] else 0.0 for i in range(len(cm))]


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """Return a table as aligned plain text (the first column left, the others right)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in [header, *rows])


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Return a table as Markdown lines (the first column left, the others right, as ``text_table``)."""
    return (["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
            + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def _plot_curves(history: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], label="train (augmented)")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="Loss", yscale="log")
    ax_acc.plot(epochs, [100 * h["train_accuracy"] for h in history], label="train (augmented)")
    ax_acc.plot(epochs, [100 * h["val_accuracy"] for h in history], label="validation")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    ax_acc.set_ylim(max(80.0, min(100 * h["val_accuracy"] for h in history) - 1), 100)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_confusion(cm: np.ndarray, labels: list[str], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * k, 0.8 + 0.6 * k))
    ax.imshow(np.log1p(cm), cmap="Blues")
    threshold = np.log1p(cm).max() / 2
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if np.log1p(cm[i, j]) > threshold else "black")
    ax.set_xticks(range(k), labels, rotation=45 if max(map(len, labels)) > 2 else 0, ha="right")
    ax.set_yticks(range(k), labels)
    ax.set(xlabel="predicted", ylabel="true", title=f"Test confusion matrix (n={cm.sum()})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_model_card(directory: Path, metadata: ArtifactMetadata, history: list[dict],
                     confusion: np.ndarray, plots: bool = True) -> None:
    """Write model-card.json, model-card.md and (optionally) the PNG plots into ``directory``."""
    card = json.loads(metadata.model_dump_json())
    card["history"] = history
    card["confusion_matrix"] = confusion.tolist()
    (directory / "model-card.json").write_text(json.dumps(card, indent=2) + "\n")
    if plots:
        _plot_curves(history, directory / CURVES_PNG)
        _plot_confusion(confusion, metadata.labels, directory / CONFUSION_PNG)
    (directory / "model-card.md").write_text(_markdown(metadata, plots))


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _markdown(meta: ArtifactMetadata, plots: bool) -> str:
    m, t = meta.metrics, meta.training
    lines = [
        f"# Model card: {meta.name}",
        "",
        f"- Created: {meta.created_at.isoformat()}",
        f"- Dataset: {meta.dataset.name} ({meta.dataset.train_size} train / "
        f"{meta.dataset.val_size} validation / {meta.dataset.test_size} test)",
        f"- Architecture: {meta.architecture.kind.upper()} {meta.architecture.build().describe()} "
        f"(input {'x'.join(map(str, meta.architecture.input_shape))})",
        f"- Input: {meta.input.shape[0]}x{meta.input.shape[1]} {meta.input.polarity}, "
        f"pixels x {meta.input.scale:.6g}",
        f"- Calibration temperature: {meta.temperature:.4f}",
        f"- Weights SHA-256: `{meta.weights_sha256}`",
        "",
        "## Metrics",
        "",
        "| metric | value |",
        "| --- | --- |",
        f"| test accuracy | {_pct(m.test_accuracy)} |",
        f"| test loss (calibrated) | {m.test_loss if m.test_loss is None else f'{m.test_loss:.4f}'} |",
        f"| validation accuracy | {_pct(m.val_accuracy)} |",
        f"| test ECE (15 bins) before calibration | {_pct(m.ece_before)} |",
        f"| test ECE (15 bins) after calibration | {_pct(m.ece_after)} |",
        "",
    ]
    if m.per_class_accuracy:
        lines += ["| class | test accuracy |", "| --- | --- |"]
        lines += [f"| {label} | {_pct(a)} |" for label, a in zip(meta.labels, m.per_class_accuracy)]
        lines.append("")
    independent = getattr(m, "independent", None)
    if independent:
        lines += _independent_section(independent)
    if meta.ood is not None:
        lines += _digit_score_section(meta, getattr(m, "notdigits", None))
    feedback = getattr(m, "feedback", None)
    if feedback:
        lines += ["## Feedback from users", "",
                  f"{feedback['entries']} entries: {feedback['trained']} trained on, {feedback['heldout']} held out.",
                  "", "| held-out feedback | accuracy |", "| --- | --- |",
                  f"| this version | {_pct(feedback.get('heldout_accuracy'))} |",
                  f"| the versions that answered them | {_pct(feedback.get('heldout_accuracy_before'))} |", ""]
    lines += ["## Training", ""]
    if "command" in t:
        lines += ["```", str(t["command"]), "```", ""]
    for key in ("seconds", "epochs_run", "best_epoch", "seed", "numpy", "blas_threads"):
        if key in t:
            lines.append(f"- {key}: {t[key]}")
    parts = t.get("training_set", {})
    if parts:
        lines.append("- training set: " + ", ".join(f"{k} {v}" for k, v in parts.items()
                                                  if isinstance(v, int) and not isinstance(v, bool)))
    if parts.get("clothes_missing"):
        lines.append("- Fashion-MNIST was not found: trained without its clothes as examples of 'not a digit' "
                     "(and the digit score validated without them)")
    if "config" in t:
        lines += ["", "```json", json.dumps(t["config"], indent=2), "```"]
    lines += ["", "## Data checksums (SHA-256 of decompressed files)", ""]
    lines += [f"- `{name}`: `{digest}`" for name, digest in meta.dataset.sha256.items()]
    if plots:
        lines += ["", "## Plots", "", f"![training curves]({CURVES_PNG})", "",
                  f"![confusion matrix]({CONFUSION_PNG})"]
    return "\n".join(lines) + "\n"


def _independent_section(report: dict) -> list[str]:
    """Return the model card's section on handwriting that is not MNIST's (evaluation.independent)."""
    lines = ["## Handwriting that is not MNIST's", "",
             "Evaluation only (never trained on, nor used to choose a model or an epoch; the recipe's "
             "augmentation was chosen on them leaving one source out, `evaluation.selection`): each "
             "source's digits put into "
             "MNIST's form by the service's preprocessing (*as drawn*), and a sample rendered as every kind "
             f"of upload ({report.get('per_kind')} per kind) and sent through the service's decoding and "
             "preprocessing (*as uploads*), and every digit as old scanning systems stored digits (*as "
             "scanned*: stretched to fill a cell, one bit per pixel, 12-16 pixels; `evaluation/scans.py`). "
             "Confident errors: wrong with confidence >= 0.9.", ""]
    lines += markdown_table(*independent_report.table(report))
    for header, rows in (independent_report.kind_table(report), independent_report.scanned_table(report)):
        if rows:
            lines += [""] + markdown_table(header, rows)
    return lines + [""]


METHOD_NAMES = {"msp": "maximum softmax probability (baseline)", "energy": "energy (log-sum-exp of the logits)",
                "mahalanobis": "Mahalanobis distance of the penultimate features",
                "outlier": "outlier exposure: p(a digit) from the 'not a digit' output"}


def _digit_score_section(meta: ArtifactMetadata, notdigits: dict | None) -> list[str]:
    """Return the model card's section on the digit score: the methods compared, the one kept,
    its thresholds and what they do on digits and not-digits sent as uploads."""
    ood = meta.ood
    families = [k[len("auroc_"):] for k in ood.comparison[0] if k.startswith("auroc_")] if ood.comparison else []
    lines = ["## Is it a digit? (digit_score and verdict)", "",
             f"Kept: **{ood.method}**, `digit_score = sigmoid({ood.platt[0]:.4g} * raw + {ood.platt[1]:.4g})`; "
             f"verdict `not_a_digit` below {ood.thresholds.not_a_digit_below:.4f}, else `uncertain` when the top "
             f"probability is below {ood.thresholds.uncertain_below:.4f}. Chosen on validation data (MNIST's "
             "validation split as it is and restyled, freshly drawn digits; drawn not-digits, Fashion-MNIST "
             "training images kept out of training, pairs of validation digits).", "",
             "AUROC (digits against not-digits) of each method on that validation data:", "",
             "| method | AUROC | FPR at 95% TPR | " + " | ".join(families) + " |",
             "| --- | --- | --- |" + " --- |" * len(families)]
    for row in ood.comparison:
        lines.append(f"| {METHOD_NAMES.get(row['method'], row['method'])} | {row['auroc']:.4f} | "
                     f"{_pct(row['fpr_at_95_tpr'])} | " + " | ".join(f"{row['auroc_' + f]:.4f}" for f in families)
                     + " |")
    lines.append("")
    if notdigits:
        fams = list(notdigits["auroc_by_family"])
        lines += ["Evaluation only (`evaluation/notdigits.py`: families drawn unlike any training example, "
                  "Fashion-MNIST's test split; every image sent as uploads of every kind through the service's "
                  "preprocessing):", "",
                  "| method | AUROC | " + " | ".join(fams) + " |", "| --- | --- |" + " --- |" * len(fams)]
        for method, r in notdigits.get("methods", {}).items():
            lines.append(f"| {METHOD_NAMES.get(method, method)} | {r['auroc']:.4f} | "
                         + " | ".join(f"{r['auroc_by_family'][f]:.4f}" for f in fams) + " |")
        lines += ["", "| with the verdicts | value |", "| --- | --- |",
                  f"| false rejects, MNIST test | {_pct(notdigits['false_reject_mnist'])} |",
                  f"| false rejects, other handwriting | {_pct(notdigits['false_reject_other'])} |",
                  f"| not-digits answered `digit` | {_pct(notdigits['notdigits_answered_digit'])} |",
                  f"| other handwriting answered `digit` | {_pct(notdigits['answered_digit_other'])} |",
                  f"| accuracy of those | {_pct(notdigits['accuracy_when_digit_other'])} |", ""]
    return lines


def record_export(directory: Path, facts: dict) -> None:
    """Record an export (``model.export.export_onnx``'s facts, with ``parity`` if checked) in the
    model card of ``directory``: ``exports`` in model-card.json, one per format (a new export of a
    format replaces the old one), and an "Exports" section at the end of model-card.md, rewritten."""
    directory = Path(directory)
    card_path = directory / "model-card.json"
    card = json.loads(card_path.read_text())
    exports = [e for e in card.get("exports", []) if e.get("format") != facts["format"]] + [facts]
    card["exports"] = exports
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    md_path = directory / "model-card.md"
    lines = md_path.read_text().rstrip("\n").split("\n")
    if EXPORTS_HEADING in lines:  # drop the old section: up to the next "## " heading or the end
        start = lines.index(EXPORTS_HEADING)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines = lines[:start] + lines[end:]
    while lines and not lines[-1]:
        lines.pop()
    md_path.write_text("\n".join(lines + [""] + _exports_section(exports)) + "\n")


def _tensors(specs: list[dict]) -> str:
    """Return "`name` FP32 [N, 10], ..." for tensor specs (-1: the batch dimension)."""
    def shape(dims: list[int]) -> str:
        return "[" + ", ".join("N" if d == -1 else str(d) for d in dims) + "]"

    return ", ".join(f"`{t['name']}` {t['datatype']} {shape(t['shape'])}" for t in specs)


def _exports_section(exports: list[dict]) -> list[str]:
    """Return the model card's section on the exports of this version (``record_export``)."""
    lines = [EXPORTS_HEADING, ""]
    for e in exports:
        lines += [f"- **{e['format'].upper()}**: `{e['file']}`, {e['bytes']:,} bytes, "
                  f"SHA-256 `{e['sha256']}`; opset {e['opset']} (IR version {e['ir_version']}), "
                  f"onnx {e['onnx']}",
                  f"- inputs {_tensors(e['inputs'])}; outputs {_tensors(e['outputs'])}"]
        if "command" in e:
            lines.append(f"- made by `{e['command']}`")
        parity = e.get("parity")
        if parity:
            verdict = "passed" if parity["passed"] else "FAILED"
            lines += ["", f"Parity with the service's own answers (onnxruntime {parity['onnxruntime']}, CPU; "
                          f"tolerance {parity['tolerance']:g}: {verdict}):", "",
                      "| data | images | max abs diff, probabilities | max abs diff, digit score "
                      "| same argmax |",
                      "| --- | ---: | ---: | ---: | ---: |"]
            rows = (("test", f"{parity['dataset']} test set"), ("uploads", "preprocessed uploads"))
            for key, label in rows:
                if key in parity:
                    r = parity[key]
                    lines.append(f"| {label} | {r['n']} | {r['max_abs_diff_probabilities']:.2e} | "
                                 f"{r['max_abs_diff_digit_score']:.2e} | {r['argmax_agree']} of {r['n']} |")
        lines.append("")
    return lines
